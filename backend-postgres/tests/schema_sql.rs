//! `infra/postgres/schema.sql`, the schema as one SQL script for DBAs who apply SQL themselves,
//! is what `schema_sql` generates from the embedded migrations (a migration added without
//! regenerating it fails here), and applied to a server it gives a schema the store opens.

use futures::StreamExt;
use sekiban_core::{EventData, EventStore, ExpectedVersion, ReadOptions, StreamId};
use sekiban_postgres::{PostgresEventStore, schema_sql};

mod common;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/postgres/schema.sql");

#[test]
fn the_sql_file_is_the_embedded_migrations() {
    let generated = schema_sql("sekiban");
    if std::env::var_os("SEKIBAN_WRITE_SCHEMA_SQL").is_some() {
        std::fs::write(FILE, &generated).expect("write infra/postgres/schema.sql");
    }
    let file = std::fs::read_to_string(FILE).expect("infra/postgres/schema.sql");
    assert!(
        file == generated,
        "infra/postgres/schema.sql differs from the embedded migrations: regenerate it with \
         SEKIBAN_WRITE_SCHEMA_SQL=1 cargo nextest run -p sekiban-postgres --test schema_sql"
    );
}

#[tokio::test]
async fn the_script_gives_a_schema_the_store_opens() {
    let schema = format!("{}_sql", common::schema());
    let (client, connection) = tokio_postgres::connect(&common::url(), tokio_postgres::NoTls)
        .await
        .expect("a connection");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop a leftover schema");
    client
        .batch_execute(&schema_sql(&schema))
        .await
        .expect("the script applies");
    let mut config = common::config();
    config.schema = schema.clone();
    let store = PostgresEventStore::connect(config)
        .await
        .expect("the store opens the schema the script made");
    let s = StreamId::new("t", "c", "1").unwrap();
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![EventData::new("A", "{}")],
        )
        .await
        .unwrap();
    assert_eq!(store.read(&s, ReadOptions::forward()).count().await, 1);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("drop the schema");
}
