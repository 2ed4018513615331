//! [`Backoff`]: capped exponential pauses between retries. The accept loop, the cache-server's
//! upstream link and the client's link all pace their retries with it.

use std::time::Duration;

/// Pauses that start at `initial` and double after every failure, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First pause after a failure.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    next: Duration,
}

impl Backoff {
    /// Pauses from `initial`, doubling, to at most `max` (at least `initial`).
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        let max = if max.as_nanos() < initial.as_nanos() { initial } else { max };
        Backoff { initial, max, next: initial }
    }

    /// The pause to wait now; the one after it is twice as long (up to `max`).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Starts over from `initial` (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for [`Backoff::next_pause`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        let pauses: Vec<_> = (0..5).map(|_| b.next_pause()).collect();
        assert_eq!(pauses, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.next_pause(), ms(50));
        assert_eq!(Backoff::new(ms(50), ms(10)).max, ms(50), "the cap is at least the start");
    }
}
