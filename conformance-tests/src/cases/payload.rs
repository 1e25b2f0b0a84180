//! Rule 4, bytes: what was written comes back exactly.

use std::collections::BTreeMap;

use bytes::Bytes;
use sekiban_core::{EventData, ExpectedVersion, FeedStart, Metadata, Version};

use crate::{
    CaseResult, Harness, catch_up_settled, check_eq, check_events, events, feed_events, read_all,
};

/// JSON with odd whitespace and key order, non-JSON binary, empty data, unicode: byte-for-byte.
pub async fn payload_bytes_round_trip(h: &Harness) -> CaseResult {
    let s = h.new_stream("payload");
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255, 0xC3, 0x28]).collect();
    let sent = vec![
        EventData::new(
            "Json",
            "{ \"z\" :1,\n\t\"a\":  [ 2 ,3 ] , \"m\" : {\"y\":null,\"b\":true} }  ",
        ),
        EventData::new("Binary", Bytes::from(binary)),
        EventData::new("Empty", Bytes::new()),
        EventData::new(
            "Unicode",
            "{\"name\":\"Grüße, 世界 🦀\",\"esc\":\"\\u00e9\"}",
        ),
        EventData::new("Ünïcödé-Typ 型", "\"just a string\"").with_schema_version(7),
        EventData::new("Big", Bytes::from(vec![b'x'; 64 * 1024])),
    ];
    h.store
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await?;
    check_events(
        &read_all(&*h.store, &s).await?,
        &sent,
        Version(1),
        "payloads",
    )
}

/// Empty, full and unicode metadata come back exactly, through reads and the feed: keys that
/// differ only in case stay apart, an empty key and empty values stay, nothing changes case.
pub async fn metadata_round_trip(h: &Harness) -> CaseResult {
    let s = h.new_stream("payload");
    let mut extra = BTreeMap::new();
    extra.insert("tenant-region".to_string(), "eu-west-1".to_string());
    extra.insert("ключ".to_string(), "значение ✓".to_string());
    extra.insert("Ключ".to_string(), "ЗНАЧЕНИЕ".to_string());
    extra.insert("empty".to_string(), String::new());
    extra.insert(String::new(), "the empty key".to_string());
    extra.insert("Key".to_string(), "MiXeD VaLuE".to_string());
    extra.insert("key".to_string(), "lower".to_string());
    extra.insert("KEY".to_string(), "UPPER".to_string());
    extra.insert("json-ish".to_string(), "{\"a\": 1}".to_string());
    let full = Metadata {
        correlation_id: Some("corr-1".into()),
        causation_id: Some("cause-2".into()),
        actor: Some("user:ada@example.com".into()),
        extra,
    };
    let only_actor = Metadata {
        actor: Some(String::new()),
        ..Metadata::default()
    };
    let mut sent = events("m", 3);
    sent[1] = sent[1].clone().with_metadata(full);
    sent[2] = sent[2].clone().with_metadata(only_actor);
    h.store
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await?;
    let stored = read_all(&*h.store, &s).await?;
    check_events(&stored, &sent, Version(1), "metadata")?;
    check_eq!(stored[0].metadata, Metadata::default(), "empty metadata");
    let fed = feed_events(
        &catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 3).await?,
    );
    check_events(&fed, &sent, Version(1), "metadata on the feed")
}

/// `stream_version` is 0 for a missing stream and the head after each append.
pub async fn stream_version_tracks_head(h: &Harness) -> CaseResult {
    let s = h.new_stream("order");
    check_eq!(
        h.store.stream_version(&s).await?,
        Version(0),
        "missing stream"
    );
    let mut head = 0;
    for n in [1usize, 4, 2] {
        h.store
            .append(&s, ExpectedVersion::Any, events("v", n))
            .await?;
        head += n as u64;
        check_eq!(
            h.store.stream_version(&s).await?,
            Version(head),
            "after appending {n}"
        );
    }
    Ok(())
}
