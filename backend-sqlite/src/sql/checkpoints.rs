//! Consumers' checkpoints.

use super::*;

/// A consumer's checkpoint and etag.
pub(crate) fn load_checkpoint(c: &Conn, name: &str) -> Result<Option<(Checkpoint, Etag)>> {
    c.one(
        OpKind::Checkpoint,
        "SELECT checkpoint, etag FROM sekiban_checkpoints WHERE name = ?1",
        [name],
        |r| {
            Ok((
                Checkpoint::new(r.get::<_, String>(0)?),
                Etag(r.get::<_, i64>(1)?.to_string()),
            ))
        },
    )
}

/// Saves a checkpoint if the stored etag is `expected`.
pub(crate) fn save_checkpoint(
    c: &Conn,
    name: &str,
    checkpoint: &Checkpoint,
    expected: Option<&Etag>,
) -> Result<Etag> {
    let current = load_checkpoint(c, name)?.map(|(_, e)| e);
    if current.as_ref() != expected {
        return Err(StoreError::CheckpointConflict {
            name: name.to_string(),
        });
    }
    // From the clock in microseconds, growing by at least one: a name deleted and saved anew
    // never hands out an etag it handed out before.
    let last = current.and_then(|e| e.0.parse::<i64>().ok()).unwrap_or(0);
    let next = (last + 1).max(now_micros());
    c.exec(
        OpKind::Checkpoint,
        name.len() + checkpoint.as_str().len(),
        "INSERT INTO sekiban_checkpoints (name, checkpoint, etag) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, etag = excluded.etag",
        params![name, checkpoint.as_str(), next],
    )?;
    Ok(Etag(next.to_string()))
}

/// Deletes a checkpoint (nothing when there is none).
pub(crate) fn delete_checkpoint(c: &Conn, name: &str) -> Result<()> {
    c.exec(
        OpKind::Checkpoint,
        name.len(),
        "DELETE FROM sekiban_checkpoints WHERE name = ?1",
        [name],
    )?;
    Ok(())
}
