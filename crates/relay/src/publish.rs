//! [`Publisher`]: where a source puts its frames for the [`Server`](crate::Server) to serve.

use framing::{DEFAULT_MAX_MESSAGE_LEN, Frame, LENGTH_PREFIX_LEN};
use tokio::sync::watch;

use crate::Latest;

/// A frame no receiver with the same limit would accept. It was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "skipped a {len}-byte frame: receivers accept at most {max} bytes and would drop the \
     connection (make the source's frames smaller, or raise --max-frame-bytes here and on \
     every receiver)"
)]
pub struct FrameTooLarge {
    /// The frame's message length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// The sending side of a stream's newest frame. Publishing never waits, whatever the viewers
/// do: a newer frame simply replaces the one before.
#[derive(Debug)]
pub struct Publisher {
    latest: watch::Sender<Option<Frame>>,
    max_frame_len: usize,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher::new(DEFAULT_MAX_MESSAGE_LEN)
    }
}

impl Publisher {
    /// A stream with no frame yet, whose frames may be up to `max_frame_len` bytes long (the
    /// message length, as receivers check it: [`framing::DEFAULT_MAX_MESSAGE_LEN`] unless
    /// they were told otherwise).
    pub fn new(max_frame_len: usize) -> Publisher {
        Publisher { latest: watch::Sender::new(None), max_frame_len }
    }

    /// Makes `frame` the newest frame. A frame above the limit is refused here, at the source,
    /// rather than put on the wire where every receiver would drop its connection for it.
    pub fn publish(&self, frame: Frame) -> Result<(), FrameTooLarge> {
        let len = frame.wire_len() - LENGTH_PREFIX_LEN;
        if len > self.max_frame_len {
            return Err(FrameTooLarge { len, max: self.max_frame_len });
        }
        self.latest.send_replace(Some(frame));
        Ok(())
    }

    /// Forgets the newest frame, so that a viewer who joins later is not handed a stale one.
    pub fn clear(&self) {
        self.latest.send_replace(None);
    }

    /// A receiver of the newest frame, for a [`Server`](crate::Server).
    pub fn subscribe(&self) -> Latest {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use framing::{Encoding, FrameHeader};

    fn frame(payload: usize) -> Frame {
        let header =
            FrameHeader { seq: 1, capture_us: 2, encoding: Encoding::Jpeg, width: 1, height: 1 };
        Frame::new(header, b"", Bytes::from(vec![0; payload]))
    }

    #[test]
    fn frames_up_to_the_limit_are_published_and_larger_ones_refused() {
        let publisher = Publisher::new(1000);
        let latest = publisher.subscribe();
        let fits = frame(1000 - (frame(0).wire_len() - LENGTH_PREFIX_LEN));
        publisher.publish(fits.clone()).expect("a frame of exactly the limit is published");
        let err = publisher.publish(frame(2000)).expect_err("a larger one is refused");
        assert_eq!(err.max, 1000);
        assert_eq!(latest.borrow().as_ref(), Some(&fits), "the refused frame replaced nothing");
    }
}
