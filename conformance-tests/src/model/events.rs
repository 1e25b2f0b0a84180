//! The events operations send: fresh ones built from a generated description, and re-sent batches
//! changed as generated.

use bytes::Bytes;
use sekiban_core::{EventData, Metadata};

use super::ops::{Alter, Ev};

/// The event types fresh events are drawn from.
const TYPES: [&str; 4] = ["Placed", "Shipped", "Cancelled", "Noted"];

/// A new event with a fresh id from a generated description.
pub(super) fn fresh(ev: &Ev) -> EventData {
    let metadata = match ev.meta % 4 {
        0 => Metadata::default(),
        1 => Metadata {
            correlation_id: Some(format!("corr-{}", ev.meta)),
            causation_id: Some(format!("cause-{}", ev.meta / 4)),
            ..Metadata::default()
        },
        2 => Metadata {
            actor: Some(format!("user-{}", ev.meta)),
            ..Metadata::default()
        },
        _ => Metadata {
            extra: [
                ("k".to_string(), format!("v{}", ev.meta)),
                ("z".into(), String::new()),
            ]
            .into_iter()
            .collect(),
            ..Metadata::default()
        },
    };
    EventData::new(
        TYPES[usize::from(ev.ty) % TYPES.len()],
        Bytes::from(ev.data.clone()),
    )
    .with_schema_version(1 + u32::from(ev.schema % 3))
    .with_metadata(metadata)
}

/// `batch` changed as `alter` says (the result may be empty, or unchanged for a one-event swap).
pub(super) fn altered(
    batch: &[EventData],
    next: Option<&[EventData]>,
    alter: &Alter,
) -> Vec<EventData> {
    let mut b = batch.to_vec();
    let new = || EventData::new("Extra", Bytes::from_static(b"{}"));
    let at = |k: u8, len: usize| usize::from(k) % len.max(1);
    match alter {
        Alter::Data(k) => {
            let i = at(*k, b.len());
            let mut data = b[i].data.to_vec();
            data.push(b'!');
            b[i].data = Bytes::from(data);
        }
        Alter::Type(k) => {
            let i = at(*k, b.len());
            b[i].event_type.push('X');
        }
        Alter::Schema(k) => {
            let i = at(*k, b.len());
            b[i].schema_version += 1;
        }
        Alter::Metadata(k) => {
            let i = at(*k, b.len());
            let actor = b[i].metadata.actor.take().unwrap_or_default();
            b[i].metadata.actor = Some(format!("{actor}~"));
        }
        Alter::DropFirst => {
            b.remove(0);
        }
        Alter::DropLast => {
            b.pop();
        }
        Alter::AddFresh => b.push(new()),
        Alter::PrependFresh => b.insert(0, new()),
        Alter::Swap => {
            let last = b.len() - 1;
            b.swap(0, last);
        }
        Alter::WithNext => match next {
            Some(next) => b.extend(next.iter().cloned()),
            None => b.push(new()),
        },
    }
    b
}
