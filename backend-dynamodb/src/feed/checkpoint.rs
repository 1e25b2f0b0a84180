//! The feed's checkpoint: the stream's ARN, and per shard the record before the first item not
//! handed out (or the part of a record handed out); during a replay's scan, the pass and the
//! item before the first not handed out.
//!
//! `ddb1;ARN;SHARD=POS,…[;cut=T]` after the scan, `ddb1;ARN;;SINCE,CUT,PHASE,POS` during it.

use std::collections::HashMap;

use sekiban_core::{Checkpoint, Result, StoreError};

use super::{Pos, Source, State};
use crate::replay::{Phase, Scan};

fn encode_pos(p: &Pos) -> String {
    match p {
        Pos::Trim => "trim".into(),
        Pos::After(seq) => format!("after:{seq}"),
        Pos::Since(t) => format!("since:{t}"),
        Pos::Part {
            after,
            record,
            skip,
        } => {
            format!("part:{}:{record}:{skip}", after.as_deref().unwrap_or(""))
        }
    }
}

/// The position before the first item of `source` not handed out yet, given where its reader
/// is (`last` read, `skip` of a record partly handed out before a resume, `start` before any).
fn position(
    st: &State,
    source: Source,
    start: &Pos,
    last: &Option<String>,
    skip: &Option<(String, usize)>,
) -> Pos {
    match st.queue.iter().find(|u| u.source == source) {
        Some(u) if u.done > 0 => Pos::Part {
            after: u.after.clone(),
            record: u.record.clone(),
            skip: u.done,
        },
        Some(u) => u.after.clone().map_or(start.clone(), Pos::After),
        None => match skip {
            // A partly handed-out record not read again yet.
            Some((record, skip)) => Pos::Part {
                after: last.clone(),
                record: record.clone(),
                skip: *skip,
            },
            None => last.clone().map_or(start.clone(), Pos::After),
        },
    }
}

/// The checkpoint after what has been handed out, of the shards `mine` says this reader reads
/// (a split's other workers keep theirs).
pub(super) fn checkpoint(st: &State, mine: impl Fn(&str) -> bool) -> Checkpoint {
    if let Some(scan) = &st.scan {
        let pos = position(st, Source::Scan, &Pos::Trim, &scan.last, &scan.skip);
        return Checkpoint::new(format!(
            "ddb1;{};;{},{},{},{}",
            st.arn,
            scan.since,
            scan.cut,
            // Where the first item not handed out is, or the scan's place after its page.
            st.queue
                .iter()
                .find(|u| u.source == Source::Scan)
                .map_or(scan.phase, |u| u.phase) as u8,
            encode_pos(&pos)
        ));
    }
    let parts: Vec<String> = st
        .shards
        .iter()
        .enumerate()
        .filter(|(i, sh)| {
            if !mine(&sh.id) {
                return false;
            }
            // A shard read to its end and handed out leaves once its children are in.
            let done = sh.closed
                && sh.skip.is_none()
                && !st.queue.iter().any(|u| u.source == Source::Shard(*i));
            let children = st
                .shards
                .iter()
                .any(|c| c.parent.as_deref() == Some(sh.id.as_str()));
            !(done && children)
        })
        .map(|(i, sh)| {
            let pos = position(st, Source::Shard(i), &sh.start, &sh.last, &sh.skip);
            format!("{}={}", sh.id, encode_pos(&pos))
        })
        .collect();
    let cut = if st.cut > 0 {
        format!(";cut={}", st.cut)
    } else {
        String::new()
    };
    Checkpoint::new(format!("ddb1;{};{}{cut}", st.arn, parts.join(",")))
}

/// A decoded checkpoint: the stream ARN, each shard's position, the scan pass it is in, and the
/// last scan's cut.
pub(super) type Decoded = (String, HashMap<String, Pos>, Option<Scan>, u64);

pub(super) fn decode(c: &Checkpoint) -> Result<Decoded> {
    let bad = |why: &str| StoreError::InvalidCheckpoint {
        reason: format!("{c}: {why}; use a checkpoint this store's feed handed out"),
    };
    let mut parts = c.as_str().splitn(4, ';');
    if parts.next() != Some("ddb1") {
        return Err(bad("not a DynamoDB feed checkpoint"));
    }
    let arn = parts
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("no stream"))?;
    let mut shards = HashMap::new();
    let parse_pos = |pos: &str| {
        Ok(match pos.split(':').collect::<Vec<_>>().as_slice() {
            ["trim"] => Pos::Trim,
            ["after", seq] if !seq.is_empty() => Pos::After((*seq).to_string()),
            ["since", t] => Pos::Since(t.parse().map_err(|_| bad("a malformed time"))?),
            ["part", after, record, skip] if !record.is_empty() => Pos::Part {
                after: (!after.is_empty()).then(|| (*after).to_string()),
                record: (*record).to_string(),
                skip: skip.parse().map_err(|_| bad("a malformed count"))?,
            },
            _ => return Err(bad("a malformed position")),
        })
    };
    for entry in parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|e| !e.is_empty())
    {
        let (id, pos) = entry
            .split_once('=')
            .ok_or_else(|| bad("a malformed shard"))?;
        shards.insert(id.to_string(), parse_pos(pos)?);
    }
    let time = |t: &str| t.parse::<u64>().map_err(|_| bad("a malformed time"));
    let (scan, cut) = match parts.next() {
        None => (None, 0),
        Some(cut) if cut.starts_with("cut=") => (None, time(&cut[4..])?),
        Some(scan) => {
            let f: Vec<&str> = scan.splitn(4, ',').collect();
            let [since, cut, phase, pos] = f.as_slice() else {
                return Err(bad("a malformed scan position"));
            };
            let phase = match *phase {
                "0" => Phase::Waiting,
                "1" => Phase::Delivering,
                "2" => Phase::Stopped,
                _ => return Err(bad("a malformed scan position")),
            };
            let (last, skip) = match parse_pos(pos)? {
                Pos::Trim => (None, None),
                Pos::After(k) => (Some(k), None),
                Pos::Part {
                    after,
                    record,
                    skip,
                } => (after, Some((record, skip))),
                Pos::Since(_) => return Err(bad("a malformed scan position")),
            };
            let scan = Scan::resumed(time(since)?, time(cut)?, phase, last, skip)?;
            (Some(scan), 0)
        }
    };
    Ok((arn.to_string(), shards, scan, cut))
}

#[cfg(test)]
mod tests {
    use super::super::shard;
    use super::*;

    /// A checkpoint leaves out a shard read to its end once its children are in it, and one
    /// another worker reads, and keeps the scan's place and cut.
    #[test]
    fn checkpoints_round_trip() {
        let mut st = State::new(None);
        st.arn = "arn:s".into();
        st.shards = vec![
            shard("a".into(), None, "a".into(), Pos::Trim, false),
            shard("b".into(), Some("a".into()), "a".into(), Pos::Trim, false),
            shard("x".into(), None, "x".into(), Pos::Trim, false),
        ];
        st.shards[0].closed = true;
        st.shards[1].last = Some("42".into());
        st.cut = 7;
        let cp = checkpoint(&st, |id| id != "x");
        let (arn, pos, scan, cut) = decode(&cp).expect("decodes");
        assert_eq!(arn, "arn:s");
        assert!(!pos.contains_key("a"), "{cp}");
        assert!(!pos.contains_key("x"), "{cp}");
        assert_eq!(pos.get("b"), Some(&Pos::After("42".into())));
        assert!(scan.is_none());
        assert_eq!(cut, 7);
        st.scan = Some(Scan::new(3, 9));
        let cp = checkpoint(&st, |_| true);
        let (_, _, scan, _) = decode(&cp).expect("decodes");
        let scan = scan.expect("a scan position");
        assert_eq!((scan.since, scan.cut, scan.last), (3, 9, None));
        for bad in [
            "ddb1;arn;;x",
            "ddb1;arn;a=after:1;cut=z",
            "ddb1;arn;;1,2,7,trim",
        ] {
            assert!(decode(&Checkpoint::new(bad)).is_err(), "{bad}");
        }
    }
}
