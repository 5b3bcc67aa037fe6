//! Which waiting dossier starts next: the one announcing the most bytes among those listed
//! within [`LOOKAHEAD`] of the oldest waiting one (that one included), the earliest listed on a
//! tie.
//!
//! Why largest first: a run ends when its last download does, so a large dossier listed last
//! (a 200 MB scan in the final page) would download alone at the end, on one connection, its
//! MD5 in a lane of its own; started early, it runs side by side with the small ones, and the
//! MD5 engine's lanes stay fuller (measured on the bench's 2.2 GB case, where three 200 MiB
//! files come last: about 0.4 s of CPU and of wall time less in calm runs).
//!
//! **Invariant: fewer than `LOOKAHEAD` dossiers listed after a dossier start before it.** Only
//! dossiers listed within `LOOKAHEAD` of the oldest waiting one compete, so once those listed
//! after it have started, it is alone in the window and starts. The dossiers in flight are
//! therefore always among `LOOKAHEAD + max_in_flight` consecutive ones of the listing: a full
//! listing's shard reads stay in order as [`crate::shards`] needs them (a span holds about a
//! thousand dossiers, two are held), and no dossier starves.
//!
//! The size is what DS announces (`byteSizeBigInt`, anywhere in the dossier's answer): a
//! guess that costs one walk of the dossier, never trusted for anything but this order.

use std::collections::VecDeque;

use serde_json::Value;

use crate::shards::Access;

/// How far after the oldest waiting dossier others may compete with it (about one page).
pub(super) const LOOKAHEAD: u64 = 100;

/// A dossier waiting for a task.
pub(super) struct Waiting {
    pub dossier: Value,
    pub access: Access,
    /// What DS announces for its files, in bytes.
    bytes: u64,
    /// Its place in the order dossiers joined the queue.
    seq: u64,
}

/// The dossiers waiting for a task, in the order they were listed.
#[derive(Default)]
pub(super) struct Queue {
    waiting: VecDeque<Waiting>,
    joined: u64,
}

impl Queue {
    pub fn push(&mut self, dossier: Value, access: Access) {
        let bytes = announced_bytes(&dossier);
        self.push_sized(dossier, access, bytes);
    }

    fn push_sized(&mut self, dossier: Value, access: Access, bytes: u64) {
        let seq = self.joined;
        self.joined += 1;
        self.waiting.push_back(Waiting {
            dossier,
            access,
            bytes,
            seq,
        });
    }

    /// The dossier to start next (see the module doc).
    pub fn pop(&mut self) -> Option<Waiting> {
        let oldest = self.waiting.front()?.seq;
        let mut best: Option<(usize, u64)> = None;
        let window = self
            .waiting
            .iter()
            .take_while(|w| w.seq - oldest < LOOKAHEAD);
        for (i, w) in window.enumerate() {
            if best.is_none_or(|(_, bytes)| w.bytes > bytes) {
                best = Some((i, w.bytes));
            }
        }
        self.waiting.remove(best.map_or(0, |(i, _)| i))
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// The sum of every `byteSizeBigInt` (a JSON string, as DS sends it) in `value`; anything
/// unreadable counts 0.
pub(super) fn announced_bytes(value: &Value) -> u64 {
    match value {
        Value::Object(fields) => fields
            .iter()
            .map(|(name, v)| match (name.as_str(), v) {
                ("byteSizeBigInt", Value::String(size)) => size.parse().unwrap_or(0),
                _ => announced_bytes(v),
            })
            .fold(0, u64::saturating_add),
        Value::Array(items) => items
            .iter()
            .map(announced_bytes)
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn queue(sizes: &[u64]) -> Queue {
        let mut queue = Queue::default();
        for &bytes in sizes {
            queue.push_sized(Value::from(bytes), Access::Sequential, bytes);
        }
        queue
    }

    /// The sizes in the order `queue` starts them.
    fn started(mut queue: Queue) -> Vec<u64> {
        std::iter::from_fn(|| queue.pop().map(|w| w.bytes)).collect()
    }

    #[test]
    fn the_largest_within_the_window_starts_first() {
        let mut beyond = vec![2; LOOKAHEAD as usize];
        beyond.push(1_000);
        // (sizes as listed, the first started, what)
        let cases: Vec<(Vec<u64>, Option<u64>, &str)> = vec![
            (vec![], None, "nothing waits"),
            (vec![5], Some(5), "one"),
            (vec![1, 9, 3], Some(9), "the largest"),
            (
                vec![0, 0],
                Some(0),
                "unknown sizes keep the listing's order",
            ),
            (
                beyond,
                Some(2),
                "a dossier past the window does not compete",
            ),
        ];
        for (sizes, expected, what) in cases {
            assert_eq!(queue(&sizes).pop().map(|w| w.bytes), expected, "{what}");
        }
        assert_eq!(
            started(queue(&[4, 9, 9, 1])),
            [9, 9, 4, 1],
            "ties: listing order"
        );
    }

    #[test]
    fn fewer_than_lookahead_later_dossiers_start_before_one() {
        // Every dossier listed after the first is larger: it is passed over as often as the
        // rule allows, and no more.
        let sizes: Vec<u64> = (0..3 * LOOKAHEAD).collect();
        let order = started(queue(&sizes));
        let position = order.iter().position(|&bytes| bytes == 0);
        assert_eq!(position, Some(LOOKAHEAD as usize - 1));
        // Here a dossier's size is its place in the listing.
        for (i, &listed) in order.iter().enumerate() {
            let overtaken_by = order[..i].iter().filter(|&&other| other > listed).count();
            assert!(
                (overtaken_by as u64) < LOOKAHEAD,
                "dossier {listed}: {overtaken_by}"
            );
        }
    }

    #[test]
    fn announced_bytes_sum_every_file_of_the_dossier() {
        let file = |size: &str| json!({"filename": "a.pdf", "byteSizeBigInt": size});
        let dossier = json!({
            "number": 12,
            "champs": [
                {"files": [file("100"), file("20")]},
                {"rows": [{"champs": [{"files": [file("3")]}]}]},
                {"files": [file("not a number"), {"byteSizeBigInt": 7}]}
            ],
            "messages": [{"attachments": [file("18446744073709551615")]}],
            "attestation": file("1")
        });
        assert_eq!(announced_bytes(&dossier), u64::MAX);
        assert_eq!(announced_bytes(&dossier["champs"]), 123);
        assert_eq!(announced_bytes(&json!({"number": 1})), 0);
    }
}
