//! Tenants never mix: same category and id under two tenants are two streams.

use sekiban_core::{ExpectedVersion, FeedItem, FeedStart, StreamId, Version};

use crate::{
    CaseResult, Harness, catch_up_settled, check, check_eq, check_events, events, read_all,
};

fn twin(h: &Harness, s: &StreamId) -> Result<StreamId, crate::CaseFailure> {
    Ok(h.other_tenant_stream(s)?)
}

/// Reads and versions of one tenant's stream never show another tenant's events.
pub async fn tenant_isolation_in_reads(h: &Harness) -> CaseResult {
    let a = h.stream("account", "same-id");
    let b = twin(h, &a)?;
    let ea = events("tenant-a", 2);
    let eb = events("tenant-b", 3);
    h.store
        .append(&a, ExpectedVersion::NoStream, ea.clone())
        .await?;
    h.store
        .append(&b, ExpectedVersion::NoStream, eb.clone())
        .await?;
    check_events(&read_all(&*h.store, &a).await?, &ea, Version(1), "tenant a")?;
    check_events(&read_all(&*h.store, &b).await?, &eb, Version(1), "tenant b")?;
    check_eq!(
        h.store.stream_version(&a).await?,
        Version(2),
        "tenant a version"
    );
    check_eq!(
        h.store.stream_version(&b).await?,
        Version(3),
        "tenant b version"
    );
    Ok(())
}

/// A feed filtered by tenant delivers that tenant's events only.
pub async fn tenant_isolation_in_feed(h: &Harness) -> CaseResult {
    let a = h.stream("account", "same-id");
    let b = twin(h, &a)?;
    h.store
        .append(&b, ExpectedVersion::NoStream, events("tenant-b", 3))
        .await?;
    h.store
        .append(&a, ExpectedVersion::NoStream, events("tenant-a", 2))
        .await?;
    h.store
        .append(&b, ExpectedVersion::Any, events("tenant-b2", 1))
        .await?;
    let batches = catch_up_settled(&*h.store, FeedStart::Beginning, h.feed_opts(false), 2).await?;
    let items: Vec<&FeedItem> = batches.iter().flat_map(|b| &b.items).collect();
    check!(
        items.iter().all(|i| i.stream().tenant() == h.tenant),
        "feed for tenant {} delivered {:?}",
        h.tenant,
        items
            .iter()
            .map(|i| i.stream().to_string())
            .collect::<Vec<_>>()
    );
    check_eq!(items.len(), 2, "events of tenant a on its feed");
    Ok(())
}
