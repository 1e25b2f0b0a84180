//! The store's statements: each one's name and text written once, in the `statements!` list;
//! the preparation on every pooled connection, [`statement_texts`] and the look-ups by [`Sql`]
//! all follow that one list.

use sekiban_core::DeleteMode;
use sekiban_core::backend::sql::{LogKind, POINTER_COLUMNS};

const EVENT_COLUMNS: &str = "l.version, l.event_id, l.event_type, l.schema_version, l.data, l.metadata::text, l.recorded_at";
const KEY: &str = "tenant = $1 AND category = $2 AND stream_id = $3";

/// Declares the statements, each as `Variant "name" => text` (an expression of the quoted schema,
/// bound to the identifier given first), in the order a pooled connection prepares them: the
/// enum [`Sql`] (whose discriminants are that order), [`Sql::ALL`], [`Sql::name`] and
/// [`Sql::text_for`] all come from the one list.
macro_rules! statements {
    ($s:ident => $( $(#[$doc:meta])* $which:ident $name:literal => $text:expr, )*) => {
        /// The store's statements by name; a pooled connection holds them prepared in this
        /// order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Sql {
            $( $(#[$doc])* $which, )*
        }

        impl Sql {
            /// Every statement, in declaration order: `which as usize` is `which`'s index.
            pub(super) const ALL: &'static [Sql] = &[$(Sql::$which,)*];

            /// The statement's name (what [`statement_texts`] and errors call it).
            pub(super) fn name(self) -> &'static str {
                match self {
                    $(Sql::$which => $name,)*
                }
            }

            /// The statement's text for the (quoted) schema `s`.
            fn text_for(self, $s: &str) -> String {
                match self {
                    $(Sql::$which => $text,)*
                }
            }
        }
    };
}

statements! { s =>
    /// Any, NoStream, Exact(0): the head row is inserted, or updated under `Any`.
    AppendNew "append_new" => format!(
        "WITH head AS ( \
           INSERT INTO {s}.streams AS st (tenant, category, stream_id, version, last_tx) \
           VALUES ($1, $2, $3, $4::bigint, pg_current_xact_id()::text::bigint) \
           ON CONFLICT (tenant, category, stream_id) DO UPDATE \
             SET version = st.version + $4::bigint, \
                 last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint) \
             WHERE $5::bool AND NOT st.erased \
           RETURNING st.version, st.last_tx), \
         ins AS ( \
           INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version, event_id, event_type, \
             schema_version, data, metadata, append_first, append_last) \
           SELECT head.last_tx, 0, $1, $2, $3, head.version - $4::bigint + e.n, e.id, e.typ, e.sv, e.data, \
             e.meta::jsonb, head.version - $4::bigint + 1, head.version \
           FROM head, unnest($6::uuid[], $7::text[], $8::int[], $9::bytea[], $10::text[]) \
             WITH ORDINALITY AS e(id, typ, sv, data, meta, n)) \
         SELECT version FROM head"
    ),
    /// Exact(v > 0), StreamExists (v = -1): the existing head row is updated, or nothing.
    AppendExisting "append_existing" => format!(
        "WITH head AS ( \
           UPDATE {s}.streams st SET version = st.version + $4::bigint, \
             last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint) \
           WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT st.erased \
             AND (st.version = $5::bigint OR ($5::bigint < 0 AND st.version > 0)) \
           RETURNING st.version, st.last_tx), \
         ins AS ( \
           INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version, event_id, event_type, \
             schema_version, data, metadata, append_first, append_last) \
           SELECT head.last_tx, 0, $1, $2, $3, head.version - $4::bigint + e.n, e.id, e.typ, e.sv, e.data, \
             e.meta::jsonb, head.version - $4::bigint + 1, head.version \
           FROM head, unnest($6::uuid[], $7::text[], $8::int[], $9::bytea[], $10::text[]) \
             WITH ORDINALITY AS e(id, typ, sv, data, meta, n)) \
         SELECT version FROM head"
    ),
    /// Why an append was refused: the head and whether the stream is erased, and the stored
    /// events among the append's ids (for a re-send).
    AppendRefused "append_refused" => format!(
        "SELECT (SELECT version FROM {s}.streams WHERE {KEY}), (SELECT erased FROM {s}.streams WHERE {KEY}), \
           {EVENT_COLUMNS}, l.append_first, l.append_last \
         FROM (SELECT 1) one LEFT JOIN {s}.log l ON l.tenant = $1 AND l.category = $2 AND l.stream_id = $3 \
           AND l.kind = 0 AND l.event_id = ANY($4::uuid[])"
    ),
    /// The head version, and whether the stream is erased.
    Version "version" => format!("SELECT version, erased FROM {s}.streams WHERE {KEY}"),
    /// A page of a stream, forward ([`read`]).
    ReadForward "read_forward" => read(s, true),
    /// A page of a stream, backward ([`read`]).
    ReadBackward "read_backward" => read(s, false),
    /// The current snapshot's xmin.
    Xmin "xmin" => "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint".into(),
    /// Step 2 of a snapshot save: the pointer, replaced unless older or out of the stream.
    SavePointer "save_pointer" => format!(
        "WITH old AS (SELECT version, hidden_upto, erased, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY} FOR UPDATE), \
         upd AS (UPDATE {s}.streams st SET snapshot_version = $4, snapshot_type = $5, snapshot_schema = $6, \
           snapshot_state = $7, snapshot_blob = $8 \
           FROM old WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT old.erased \
             AND $4 <= old.version AND $4 > old.hidden_upto \
             AND (old.snapshot_version IS NULL OR old.snapshot_version <= $4) RETURNING 1) \
         SELECT old.version, old.hidden_upto, old.erased, {POINTER_COLUMNS}, (SELECT count(*) FROM upd) FROM old"
    ),
    /// The snapshot pointer.
    LoadPointer "load_pointer" => format!(
        "SELECT erased, version, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY}"
    ),
    /// A soft delete ([`delete`]).
    SoftDelete "soft_delete" => delete(s, false),
    /// A hard delete ([`delete`]).
    HardDelete "hard_delete" => delete(s, true),
    /// A consumer's checkpoint and etag.
    LoadCheckpoint "load_checkpoint" => format!(
        "SELECT checkpoint, etag FROM {s}.checkpoints WHERE name = $1"
    ),
    /// A checkpoint saved under a new name with the etag `$3` the store drew for this save. A
    /// save tried again after its reply was lost finds its own row (etag `$3`, seen by the
    /// statement's snapshot, taken before its insert) and answers it; someone else's row
    /// answers nothing: a conflict.
    InsertCheckpoint "insert_checkpoint" => format!(
        "WITH ins AS (INSERT INTO {s}.checkpoints (name, checkpoint, etag) VALUES ($1, $2, $3) \
           ON CONFLICT (name) DO NOTHING RETURNING etag) \
         SELECT etag FROM ins UNION ALL SELECT etag FROM {s}.checkpoints WHERE name = $1 AND etag = $3"
    ),
    /// A checkpoint saved over the one with the etag `$3`, under the etag `$4` the store drew
    /// for this save; a save tried again after its reply was lost finds its own etag and
    /// answers it, as [`Sql::InsertCheckpoint`] does.
    UpdateCheckpoint "update_checkpoint" => format!(
        "WITH upd AS (UPDATE {s}.checkpoints SET checkpoint = $2, etag = $4 WHERE name = $1 AND etag = $3 RETURNING etag) \
         SELECT etag FROM upd UNION ALL SELECT etag FROM {s}.checkpoints WHERE name = $1 AND etag = $4"
    ),
    /// A checkpoint deleted.
    DeleteCheckpoint "delete_checkpoint" => format!("DELETE FROM {s}.checkpoints WHERE name = $1"),
    /// A page of streams starts at the key after the previous page, in the primary key: one
    /// statement per shape, so a generic plan keeps every bound in its index condition (an
    /// optional category in one statement would be a filter there, and a listing of a small
    /// category would scan the tenant's later categories).
    ListStreams "list_streams" => format!(
        "SELECT category, stream_id, version, hidden_upto, erased FROM {s}.streams \
         WHERE tenant = $1 AND (category, stream_id) > ($2, $3) \
         ORDER BY category, stream_id LIMIT $4"
    ),
    /// After ($3, $4) in (category, stream_id) order, compared by the server (its collation
    /// orders the key): the whole category when $3 sorts before it, after $4 when $3 is the
    /// category, nothing when $3 sorts after it.
    ListCategory "list_category" => format!(
        "SELECT category, stream_id, version, hidden_upto, erased FROM {s}.streams \
         WHERE tenant = $1 AND category = $2 AND $3::text <= $2 \
           AND stream_id > CASE WHEN $3::text = $2 THEN $4::text ELSE '' END \
         ORDER BY stream_id LIMIT $5"
    ),
    /// One notification per tenant on the channel `$1`.
    Notify "notify" => "SELECT pg_notify($1, t) FROM unnest($2::text[]) t".into(),
    /// A feed poll of every tenant and category ([`feed`]).
    Feed "feed" => feed(s, ""),
    /// A feed poll of one tenant.
    FeedTenant "feed_tenant" => feed(s, " AND l.tenant = $4"),
    /// A feed poll of one category.
    FeedCategory "feed_category" => feed(s, " AND l.category = $4"),
    /// A feed poll of one tenant's category.
    FeedTenantCategory "feed_tenant_category" => feed(s, " AND l.tenant = $4 AND l.category = $5"),
}

/// A page: first a row of the stream's own (its head version, and its soft-deleted-up-to
/// version in the last column, -1 when erased; no row: no stream), then its events in order
/// from the (stream, version) index, with the last column NULL. Nothing about the stream is
/// repeated on the event rows.
///
/// The index scan is bounded where the page starts — `from`, and going forward the
/// soft-deleted prefix too — and ends at the LIMIT. The bounds at the page's far end (`$5`,
/// and going backward the soft-deleted prefix) are applied after the LIMIT: the rows they drop
/// form the tail of the ordered scan, so the page is the same, and the planner never sees a
/// range whose one end is unknown when it plans (the soft-deleted bound comes from the
/// stream's row): for such a range it assumes 0.5 % of the table, expects a handful of rows and
/// picks a bitmap scan and a sort that read every row of the range, i.e. the whole stream from
/// `from` on, for every page.
fn read(s: &str, forward: bool) -> String {
    let hidden = "(SELECT hidden_upto FROM st WHERE NOT erased)";
    let (start, order, far) = if forward {
        (
            format!("l.version > {hidden} AND l.version >= $4"),
            "ASC",
            "page.version <= $5".to_string(),
        )
    } else {
        (
            "l.version <= $4".to_string(),
            "DESC",
            format!("page.version >= $5 AND page.version > {hidden}"),
        )
    };
    format!(
        "WITH st AS (SELECT version, hidden_upto, erased FROM {s}.streams WHERE {KEY}) \
         SELECT version, NULL::uuid, NULL::text, NULL::int, NULL::bytea, NULL::text, NULL::timestamptz, \
           CASE WHEN erased THEN -1 ELSE hidden_upto END FROM st \
         UNION ALL \
         SELECT * FROM (SELECT {EVENT_COLUMNS}, NULL::bigint FROM {s}.log l WHERE l.tenant = $1 \
           AND l.category = $2 AND l.stream_id = $3 AND l.kind = 0 AND {start} \
           ORDER BY l.version {order} LIMIT $6) page WHERE {far}"
    )
}

/// A feed poll walks the (tx, position) index from its position and stops at the LIMIT,
/// whatever the statistics. Whether a row's stream hides it (soft-deleted events) is looked up
/// per row read (a primary-key probe of the stream's row, NULL when it has none, like an inner
/// join). A join there instead gives the planner a row estimate it cannot make (one row), so it
/// plans a hash join of every row after the position and a sort: each poll of a reader far
/// behind would read the whole rest of the log.
fn feed(s: &str, filter: &str) -> String {
    format!(
        "WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) \
         SELECT snap.xmin, f.* FROM snap LEFT JOIN LATERAL ( \
           SELECT l.tx, l.global_position, l.kind, l.tenant, l.category, l.stream_id, {EVENT_COLUMNS} \
           FROM {s}.log l \
           WHERE (l.tx, l.global_position) > ($1, $2) AND l.tx < snap.xmin{filter} \
             AND (SELECT l.kind <> 0 OR l.version > st.hidden_upto FROM {s}.streams st \
               WHERE st.tenant = l.tenant AND st.category = l.category AND st.stream_id = l.stream_id) \
           ORDER BY l.tx, l.global_position LIMIT $3) f ON true"
    )
}

/// A delete in one statement: the stream's row loses its snapshot pointer and hides its events
/// (soft) or is marked erased and its events are deleted (hard), and a marker goes into the log;
/// it answers whether the stream was already erased, the dropped pointer, whether a marker
/// was written and the version the stream was hidden up to before. A delete with nothing left to do (a stream erased already, or soft-deleted with
/// no event since) writes nothing, so a delete tried again after its reply was lost has one
/// effect and one marker.
fn delete(s: &str, hard: bool) -> String {
    let (erase, kind, del, todo) = if hard {
        (
            ", erased = true",
            LogKind::Deleted(DeleteMode::Hard).code(),
            format!(
                ", del AS (DELETE FROM {s}.log WHERE {KEY} AND kind = 0 AND EXISTS (SELECT 1 FROM upd))"
            ),
            "",
        )
    } else {
        (
            ", hidden_upto = st.version",
            LogKind::Deleted(DeleteMode::Soft).code(),
            String::new(),
            " AND old.version > old.hidden_upto",
        )
    };
    format!(
        "WITH old AS (SELECT version, hidden_upto, erased, {POINTER_COLUMNS} FROM {s}.streams WHERE {KEY} FOR UPDATE), \
         upd AS (UPDATE {s}.streams st SET snapshot_version = NULL, snapshot_type = NULL, snapshot_schema = NULL, \
           snapshot_state = NULL, snapshot_blob = NULL, last_tx = greatest(st.last_tx, pg_current_xact_id()::text::bigint){erase} \
           FROM old WHERE st.tenant = $1 AND st.category = $2 AND st.stream_id = $3 AND NOT old.erased{todo} \
           RETURNING st.version, st.last_tx){del}, \
         mark AS (INSERT INTO {s}.log (tx, kind, tenant, category, stream_id, version) \
           SELECT last_tx, {kind}, $1, $2, $3, version FROM upd RETURNING 1) \
         SELECT old.erased, {POINTER_COLUMNS}, (SELECT count(*) FROM mark), old.hidden_upto FROM old"
    )
}

/// The statements, formatted once with the schema, in [`Sql::ALL`] order.
pub(super) struct Statements(Vec<String>);

impl Statements {
    /// Every statement's text for the quoted schema `s`.
    pub(super) fn new(s: &str) -> Self {
        Statements(Sql::ALL.iter().map(|which| which.text_for(s)).collect())
    }

    /// The text of one statement.
    pub(super) fn text(&self, which: Sql) -> &str {
        // Built from `Sql::ALL`, whose order is the discriminants'.
        self.0.get(which as usize).map_or("", String::as_str)
    }
}

/// The store's statements for `schema`, by name (see [`crate::statement_texts`]).
pub(crate) fn statement_texts(schema: &str) -> Vec<(&'static str, String)> {
    let s = quote(schema);
    Sql::ALL
        .iter()
        .map(|which| (which.name(), which.text_for(&s)))
        .collect()
}

/// A quoted identifier.
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}
