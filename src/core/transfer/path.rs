//! How much of one outgoing stream may be in flight, and in what chunks: sized from the path
//! the stream's bytes take (sender → server → receiver and back, node links included), as
//! measured from the receiver's acknowledgements. Sans-IO: every call is given the time.
//!
//! A window larger than the path can carry does not make a transfer faster, it only fills the
//! queues on the way (a router's, the kernels' buffers), and an invite behind those queues
//! waits for all of them. So the window is a little more than the path's bandwidth-delay
//! product: [`GAIN`] × the highest delivery rate seen lately × the lowest round trip seen on
//! this stream, and at least [`MIN_QUEUE_TIME`] of the delivery rate (a fast path whose round
//! trip is mostly processing needs that much in flight to keep every process busy). It never
//! goes below [`MIN_CHUNKS`] chunks nor above the protocol's [`xfer::WINDOW`] (the memory the
//! server grants one stream); one round trip in [`PROBE_EVERY`] its time-based floor is a
//! quarter larger, to find room a busy machine's path may have regained. Chunks follow the delivery rate too: at most [`CHUNK_TIME`] of
//! it, so that a control frame written after one waits that long at most, and at least
//! [`MIN_CHUNK`] bytes; a power of two, at a stream offset that is a multiple of it (see
//! [`Path::chunk`]).
//!
//! Delivery rate samples are taken as BBR takes them: when an acknowledgement covers a chunk,
//! the bytes acknowledged since the acknowledgement that was the newest when that chunk was
//! sent, over the time since then (or over the time those bytes took to be written, if that
//! was longer: bunched acknowledgements must not look like a faster path). The round trip is the time from writing a chunk to the
//! acknowledgement that covers it. The lowest round trip is kept for the stream's life rather
//! than a recent interval: the window always queues a little ([`GAIN`] > 1), so every later
//! sample includes that queue, and forgetting the older minimum would let the window ratchet
//! upwards.

use crvm_proto::msg::xfer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window over the bandwidth-delay product: the excess waits in the bottleneck's queue, so an
/// invite behind it waits (GAIN − 1) round trips at most.
pub(crate) const GAIN: f64 = 1.5;
/// The window holds at least this much of the delivery rate.
pub(crate) const MIN_QUEUE_TIME: Duration = Duration::from_millis(3);
/// At least this many chunks fit in the window, so that the receiver (which acknowledges at
/// least every [`xfer::ACK_CHUNKS`] chunks) always has enough to acknowledge.
pub(crate) const MIN_CHUNKS: u64 = 4;
/// A chunk carries at most this much of the delivery rate…
pub(crate) const CHUNK_TIME: Duration = Duration::from_millis(4);
/// …and at least this many bytes (a frame's overhead is 24 bytes).
pub(crate) const MIN_CHUNK: usize = 16 * 1024;
/// Before any measurement: chunks of this size…
const FIRST_CHUNK: usize = 32 * 1024;
/// …and this window.
const FIRST_WINDOW: u64 = 128 * 1024;
/// One round trip in this many the [`MIN_QUEUE_TIME`] part of the window is a quarter larger
/// ([`PROBE_GAIN`]): if the path has room the delivery rate rises and the window follows; if
/// not, the extra drains in the next round. Without it a window limited by late processes
/// (whose delivery rate is what the window lets through) could only shrink. Only that part:
/// where the product rules, the bottleneck is a link, whose queue would only grow.
const PROBE_EVERY: u128 = 8;
const PROBE_GAIN: f64 = 1.25;
/// The delivery rate is the highest sample of the last two spans of this length.
const RATE_SPAN: Duration = Duration::from_millis(500);

/// A chunk written and not yet acknowledged.
struct Sent {
    /// The stream offset just past its last byte.
    end: u64,
    at: Instant,
    /// What was acknowledged when it was written, when that acknowledgement came, and when
    /// the newest chunk it covered had been written.
    acked: u64,
    acked_at: Instant,
    acked_sent_at: Instant,
}

/// The path estimate of one outgoing stream.
pub(crate) struct Path {
    flight: VecDeque<Sent>,
    /// The stream offset past the last chunk written, and that chunk's length.
    sent_end: u64,
    last_chunk: u64,
    start: Instant,
    acked: u64,
    /// When `acked` last grew (or the first chunk was written), and when the newest chunk it
    /// covers had been written.
    acked_at: Option<(Instant, Instant)>,
    min_rtt: Option<Duration>,
    /// Highest delivery rate (bytes/s) in the current span and the one before.
    rate_now: (Instant, f64),
    rate_before: f64,
}

impl Path {
    pub fn new(now: Instant) -> Self {
        Path {
            flight: VecDeque::new(),
            sent_end: 0,
            last_chunk: 0,
            start: now,
            acked: 0,
            acked_at: None,
            min_rtt: None,
            rate_now: (now, 0.0),
            rate_before: 0.0,
        }
    }

    /// The delivery rate in bytes per second (0 before the first sample).
    pub fn rate(&self) -> f64 {
        self.rate_now.1.max(self.rate_before)
    }

    #[cfg(test)]
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// The size of the next chunk: a power of two (the bounds are), and no larger than the
    /// largest power of two that divides the stream offset it starts at. Every chunk thus
    /// starts at a multiple of its own size, and so does every write of the receiver's: the
    /// page cache stores a write that is aligned to its size in one large folio, where one
    /// that is not (even by a page) takes several small ones (docs/DESIGN.md, "Windows that
    /// follow the path", has the figures, and why a VM can reverse them).
    pub fn chunk(&self) -> usize {
        let rate = self.rate();
        let by_rate = if rate <= 0.0 {
            FIRST_CHUNK
        } else {
            ((rate * CHUNK_TIME.as_secs_f64()) as usize).clamp(MIN_CHUNK, xfer::CHUNK)
        };
        // Halved until the offset it starts at is a multiple of it, but never below the least
        // chunk (chunks of these sizes never leave an offset that it does not divide).
        let mut size = 1usize << by_rate.ilog2();
        while size > MIN_CHUNK && !self.sent_end.is_multiple_of(size as u64) {
            size /= 2;
        }
        size
    }

    /// Bytes that may be in flight (written and not acknowledged) at `now`.
    pub fn window(&self, now: Instant) -> u64 {
        // The receiver acknowledges every 2 chunks of the size it last received: the window
        // always holds that and the next chunk, however the chunk size has changed meanwhile,
        // so that a sender waiting for room always gets an acknowledgement.
        let floor = MIN_CHUNKS * (self.chunk() as u64).max(self.last_chunk);
        let (rate, Some(rtt)) = (self.rate(), self.min_rtt) else {
            return FIRST_WINDOW.max(floor);
        };
        let bdp = GAIN * rate * rtt.as_secs_f64();
        let queue = rate * MIN_QUEUE_TIME.as_secs_f64();
        let round = rtt.max(Duration::from_millis(1)).as_nanos();
        let probe = now.saturating_duration_since(self.start).as_nanos() / round % PROBE_EVERY
            == PROBE_EVERY - 1;
        let gain = if probe { PROBE_GAIN } else { 1.0 };
        (bdp.max(gain * queue) as u64).clamp(floor, xfer::WINDOW)
    }

    /// A chunk ending at stream offset `end` was written at `now`.
    pub fn sent(&mut self, end: u64, now: Instant) {
        self.last_chunk = end.saturating_sub(self.sent_end);
        self.sent_end = end;
        let (acked_at, acked_sent_at) = *self.acked_at.get_or_insert((now, now));
        self.flight.push_back(Sent {
            end,
            at: now,
            acked: self.acked,
            acked_at,
            acked_sent_at,
        });
    }

    /// The receiver has acknowledged `bytes` of the stream, heard at `now`.
    pub fn acked(&mut self, bytes: u64, now: Instant) {
        if bytes <= self.acked {
            return;
        }
        let mut newest = None;
        while self.flight.front().is_some_and(|s| s.end <= bytes) {
            newest = self.flight.pop_front();
        }
        self.acked = bytes;
        let Some(s) = newest else {
            self.acked_at = Some((now, self.acked_at.map_or(now, |a| a.1)));
            return;
        };
        self.acked_at = Some((now, s.at));
        let rtt = now.saturating_duration_since(s.at);
        if !rtt.is_zero() {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        // Over the longer of the acknowledging and the sending interval: acknowledgements
        // that arrive bunched together do not make the path look faster than it was fed.
        let acking = now.saturating_duration_since(s.acked_at);
        let sending = s.at.saturating_duration_since(s.acked_sent_at);
        let span = acking.max(sending);
        if !span.is_zero() {
            self.rate_sample((bytes - s.acked) as f64 / span.as_secs_f64(), now);
        }
    }

    fn rate_sample(&mut self, rate: f64, now: Instant) {
        let (since, max) = self.rate_now;
        if now.saturating_duration_since(since) >= RATE_SPAN {
            // A new span; the old one's maximum counts for one more span, then is forgotten.
            let stale = now.saturating_duration_since(since) >= 2 * RATE_SPAN;
            self.rate_before = if stale { 0.0 } else { max };
            self.rate_now = (now, rate);
        } else if rate > max {
            self.rate_now.1 = rate;
        }
    }
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
