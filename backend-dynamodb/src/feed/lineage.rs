//! The stream's shards as a family: parents before children, which shards a resumed reader
//! has drained, and each shard's lineage root (what a split of workers hashes).

use std::collections::{HashMap, HashSet};

use super::Pos;

/// A shard listing: (id, parent).
pub(super) type Listing = Vec<(String, Option<String>)>;

/// A shard listing ordered parents before their children; a parent no longer listed (trimmed)
/// counts as read.
pub(super) fn parents_first(listed: Listing) -> Listing {
    let ids: HashSet<&String> = listed.iter().map(|(id, _)| id).collect();
    let mut ordered: Listing = Vec::new();
    let mut placed: HashSet<String> = HashSet::new();
    while ordered.len() < listed.len() {
        let before = ordered.len();
        for (id, parent) in &listed {
            let ready = parent
                .as_ref()
                .is_none_or(|p| !ids.contains(p) || placed.contains(p));
            if !placed.contains(id) && ready {
                placed.insert(id.clone());
                ordered.push((id.clone(), parent.clone()));
            }
        }
        if ordered.len() == before {
            // A cycle, which the service never lists: the rest in listing order, not dropped.
            for (id, parent) in &listed {
                if placed.insert(id.clone()) {
                    ordered.push((id.clone(), parent.clone()));
                }
            }
        }
    }
    ordered
}

/// Whether a listed shard absent from a checkpoint was read to its end before: one of its
/// descendants is in the checkpoint (a drained shard leaves the checkpoint once its children
/// are in it). Otherwise it is new since, and read from its oldest record.
pub(super) fn drained(
    id: &str,
    listed: &[(String, Option<String>)],
    positions: &HashMap<String, Pos>,
) -> bool {
    let mut frontier = vec![id.to_string()];
    let mut visited = HashSet::new();
    while let Some(p) = frontier.pop() {
        for (child, parent) in listed {
            if parent.as_deref() == Some(p.as_str()) && visited.insert(child.clone()) {
                if positions.contains_key(child) {
                    return true;
                }
                frontier.push(child.clone());
            }
        }
    }
    false
}

/// A shard's lineage root: its oldest ancestor in the listing (itself when its parent is not
/// listed). A split of workers gives a shard to the worker its root hashes to, so a shard's
/// children stay with the worker that read it.
pub(super) fn root_of(id: &str, listed: &[(String, Option<String>)]) -> String {
    let mut root = id;
    for _ in 0..listed.len() {
        let parent = listed
            .iter()
            .find(|(i, _)| i == root)
            .and_then(|(_, p)| p.as_deref())
            .filter(|p| listed.iter().any(|(i, _)| i == p));
        match parent {
            Some(p) => root = p,
            None => break,
        }
    }
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn listing(pairs: &[(&str, Option<&str>)]) -> Listing {
        pairs
            .iter()
            .map(|(id, p)| (id.to_string(), p.map(str::to_string)))
            .collect()
    }

    fn ids(l: &[(String, Option<String>)]) -> Vec<&str> {
        l.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Streams may list a child before its parent; a split gives two children; the root's
    /// parent may be trimmed already.
    #[test]
    fn lineage_puts_parents_first() {
        let l = listing(&[
            ("c1", Some("b")),
            ("b", Some("a")),
            ("c2", Some("b")),
            ("a", Some("trimmed")),
            ("d", None),
            ("e", Some("d")),
        ]);
        let o = parents_first(l);
        let pos = |id: &str| ids(&o).iter().position(|x| *x == id).expect("listed");
        assert_eq!(o.len(), 6, "{o:?}");
        for (child, parent) in [("b", "a"), ("c1", "b"), ("c2", "b"), ("e", "d")] {
            assert!(pos(parent) < pos(child), "{parent} after {child}: {o:?}");
        }
        // A cycle (never listed by the service) loses no shard.
        let o = parents_first(listing(&[("x", Some("y")), ("y", Some("x"))]));
        assert_eq!(o.len(), 2);
    }

    /// Roll-overs and splits keep their root; a child of a shard no longer listed is a root.
    #[test]
    fn each_lineage_has_one_root() {
        let l = listing(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("c2", Some("b")),
            ("d", None),
            ("e", Some("d")),
            ("f", Some("gone")),
        ]);
        for (id, root) in [
            ("a", "a"),
            ("b", "a"),
            ("c", "a"),
            ("c2", "a"),
            ("e", "d"),
            ("f", "f"),
        ] {
            assert_eq!(root_of(id, &l), root, "{id}");
        }
        // A cycle (never listed by the service) ends.
        let cycle = listing(&[("x", Some("y")), ("y", Some("x"))]);
        assert!(["x", "y"].contains(&root_of("x", &cycle).as_str()));
    }

    /// Resumed, a listed shard missing from the checkpoint is new (read from its oldest record)
    /// unless a descendant is in the checkpoint (it was drained and left it).
    #[test]
    fn resume_tells_drained_shards_from_new_ones() {
        let l = listing(&[
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", Some("b")),
        ]);
        let pos: HashMap<String, Pos> = [("c".to_string(), Pos::After("9".into()))].into();
        assert!(
            drained("a", &l, &pos),
            "a grandparent of a checkpointed shard"
        );
        assert!(drained("b", &l, &pos), "a parent of a checkpointed shard");
        assert!(
            !drained("d", &l, &pos),
            "a sibling born after the checkpoint"
        );
        let old: HashMap<String, Pos> = [("a".to_string(), Pos::After("1".into()))].into();
        assert!(
            !drained("b", &l, &old),
            "a child of a checkpointed shard is new"
        );
    }
}
