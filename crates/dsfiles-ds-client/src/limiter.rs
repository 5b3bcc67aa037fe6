//! Client-side request rate limit: at most `limit` requests in any sliding window.
//!
//! DS counts requests per token in fixed one-minute windows. Keeping at most `limit`
//! requests in *every* 60 s sliding window keeps under the limit in any fixed window too,
//! without knowing where DS's windows start. The log holds one `Instant` per recent request
//! (400 by default), so memory stays tiny. It uses `tokio::time`, hence tokio's paused clock
//! in tests.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: usize,
    window: Duration,
    /// Send times of the requests of the current window, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// `limit` requests per `window`; `None` when `limit` is 0 (no limiter).
    pub(crate) fn new(limit: u32, window: Duration) -> Option<RateLimiter> {
        let limit = usize::try_from(limit).ok().filter(|&l| l > 0)?;
        Some(RateLimiter {
            limit,
            window,
            sent: Mutex::new(VecDeque::with_capacity(limit)),
        })
    }

    /// Waits until one more request fits in the window, and records it. Waiters are served
    /// in order (tokio's `Mutex` is fair).
    pub(crate) async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            sent.pop_front();
        }
        if sent.len() >= self.limit
            && let Some(&oldest) = sent.front()
        {
            let wake = oldest + self.window;
            tracing::debug!(
                wait_ms = wake.duration_since(now).as_millis() as u64,
                "client-side rate limit reached, waiting"
            );
            tokio::time::sleep_until(wake).await;
            sent.pop_front();
        }
        sent.push_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_requests_in_a_window() {
        let Some(limiter) = RateLimiter::new(3, Duration::from_secs(60)) else {
            panic!("a limit of 3 gives a limiter");
        };
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..7 {
            limiter.acquire().await;
            times.push(start.elapsed().as_secs());
        }
        assert_eq!(times, [0, 0, 0, 60, 60, 60, 120]);
    }

    #[tokio::test(start_paused = true)]
    async fn spaced_requests_never_wait() {
        let Some(limiter) = RateLimiter::new(2, Duration::from_secs(60)) else {
            panic!("a limit of 2 gives a limiter");
        };
        let start = Instant::now();
        for i in 0..5u64 {
            tokio::time::sleep(Duration::from_secs(31)).await;
            limiter.acquire().await;
            assert_eq!(start.elapsed().as_secs(), 31 * (i + 1));
        }
    }

    #[test]
    fn zero_means_no_limiter() {
        assert!(RateLimiter::new(0, Duration::from_secs(60)).is_none());
    }
}
