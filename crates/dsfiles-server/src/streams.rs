//! Slots for Server-Sent Event streams, counted per API token and overall.
//!
//! **Rule:** a stream takes its slot before it starts and the slot is released by a guard
//! that lives inside the stream, so the counts are exactly the open streams: a client that
//! disconnects, a job that ends and a service that stops all drop the guard. One token cannot
//! take every slot (`max_sse_streams_per_token`), and all tokens together cannot exhaust
//! memory or file descriptors (`max_sse_streams`).

use std::sync::{Arc, Mutex};

use crate::jobs::lock;

/// Which configured API token authenticated a request (its position in the list), put in the
/// request's extensions by `routes::require_token`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller(pub usize);

/// Which cap refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// This token holds `max` streams.
    Token { max: usize },
    /// All tokens together hold `max` streams.
    Total { max: usize },
}

#[derive(Debug)]
struct Counts {
    total: usize,
    /// Indexed by [`Caller`].
    per_token: Vec<usize>,
}

/// The stream slots of the service.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_token: usize,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    counts: Arc<Mutex<Counts>>,
    caller: usize,
}

impl StreamSlots {
    /// Slots for `tokens` API tokens.
    pub(crate) fn new(tokens: usize, max_total: usize, max_per_token: usize) -> StreamSlots {
        StreamSlots {
            counts: Arc::new(Mutex::new(Counts {
                total: 0,
                per_token: vec![0; tokens],
            })),
            max_total,
            max_per_token,
        }
    }

    /// A slot for `caller`, unless a cap is reached.
    pub(crate) fn acquire(&self, caller: Caller) -> Result<StreamSlot, Full> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.max_total {
            return Err(Full::Total {
                max: self.max_total,
            });
        }
        let Some(held) = counts.per_token.get_mut(caller.0) else {
            // Not a configured token: nothing can be charged to it.
            return Err(Full::Token { max: 0 });
        };
        if *held >= self.max_per_token {
            return Err(Full::Token {
                max: self.max_per_token,
            });
        }
        *held += 1;
        counts.total += 1;
        Ok(StreamSlot {
            counts: self.counts.clone(),
            caller: caller.0,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_token.get_mut(self.caller) {
            *held = held.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_and_all_together_are_capped_and_slots_come_back() {
        let slots = StreamSlots::new(3, 3, 2);
        let a1 = slots.acquire(Caller(0)).expect("a1");
        let _a2 = slots.acquire(Caller(0)).expect("a2");
        assert_eq!(
            slots.acquire(Caller(0)).map(drop),
            Err(Full::Token { max: 2 })
        );
        let _b1 = slots.acquire(Caller(1)).expect("b1");
        assert_eq!(
            slots.acquire(Caller(2)).map(drop),
            Err(Full::Total { max: 3 })
        );
        drop(a1);
        let _c1 = slots.acquire(Caller(2)).expect("a slot came back");
        assert_eq!(
            slots.acquire(Caller(9)).map(drop),
            Err(Full::Total { max: 3 })
        );
        assert_eq!(lock(&slots.counts).per_token, [1, 1, 1]);
    }
}
