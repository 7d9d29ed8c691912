//! The link model without I/O, on a clock the caller supplies (time since any origin).
//!
//! Bytes read from the sender join the bottleneck queue; the wire serialises them one after the
//! other at the link's rate (a byte starts when the ones before it have finished), in segments
//! of about half a millisecond of wire time, and each segment arrives `delay` after its last
//! byte left the queue (store and forward, as a router does per packet). The queue is the bytes
//! accepted but not yet serialised; while it is full the caller must not read, so the sender's
//! TCP is pushed back. Arrivals keep the stream's order.

use std::collections::VecDeque;
use std::time::Duration;

use crate::spec::LinkSpec;

/// The packet size for loss: a TCP segment on an Ethernet path.
pub const MSS: u64 = 1448;
/// The largest segment: bounds how late the first byte of a segment arrives (store and forward).
const MAX_SEG: u64 = 64 * 1024;
/// What the model holds without a rate (a pure delay line still needs a bound).
pub const UNSHAPED_WINDOW: u64 = 4 << 20;

#[derive(Debug)]
struct Seg {
    arrive: Duration,
    len: u64,
}

/// One direction of a link.
#[derive(Debug)]
pub struct Shaper {
    spec: LinkSpec,
    /// When the wire has serialised everything accepted so far.
    wire_free: Duration,
    /// Accepted and not yet taken, in stream order.
    segs: VecDeque<Seg>,
    last_arrival: Duration,
    /// Bytes accepted since the start of the stream.
    offset: u64,
    held: u64,
    lost: u64,
}

impl Shaper {
    pub fn new(spec: LinkSpec) -> Shaper {
        Shaper {
            spec,
            wire_free: Duration::ZERO,
            segs: VecDeque::new(),
            last_arrival: Duration::ZERO,
            offset: 0,
            held: 0,
            lost: 0,
        }
    }

    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// Changes the link at `now`; the backlog carries over and drains at the new rate, bytes
    /// already serialised keep their arrival times.
    pub fn set_spec(&mut self, now: Duration, spec: LinkSpec) {
        let backlog = self.backlog(now);
        self.spec = spec;
        self.wire_free = now + self.ser(backlog);
    }

    /// Wire time of `n` bytes.
    fn ser(&self, n: u64) -> Duration {
        if self.spec.rate_bps == 0 {
            return Duration::ZERO;
        }
        let ns = (n as u128 * 8_000_000_000).div_ceil(self.spec.rate_bps as u128);
        Duration::from_nanos(ns as u64)
    }

    /// Bytes accepted and not yet serialised at `now`.
    pub fn backlog(&self, now: Duration) -> u64 {
        let left = self.wire_free.saturating_sub(now);
        (left.as_nanos() * self.spec.rate_bps as u128).div_ceil(8_000_000_000) as u64
    }

    /// The size of a segment on the wire: about 0.5 ms of it, at least one packet.
    pub fn seg_size(&self) -> u64 {
        if self.spec.rate_bps == 0 {
            return MAX_SEG;
        }
        (self.spec.rate_bps / 8 / 2000).clamp(MSS, MAX_SEG)
    }

    /// The queue's bound; at least one segment, so that a link always moves.
    pub fn queue_bytes(&self) -> u64 {
        self.spec.queue_bytes.max(self.seg_size())
    }

    /// How much the model holds at most: the queue, what is on the wire (rate × delay, and the
    /// stalls of lost packets), a segment of slack. It bounds memory when the receiver does not
    /// read, as its TCP window would.
    pub fn limit(&self) -> u64 {
        if self.spec.rate_bps == 0 {
            return UNSHAPED_WINDOW;
        }
        let penalty = self.spec.loss.map_or(Duration::ZERO, |l| l.penalty);
        let on_wire = (self.spec.rate_bps as u128 * (self.spec.delay + penalty).as_nanos()
            / 8_000_000_000) as u64;
        self.queue_bytes() + on_wire + 2 * self.seg_size()
    }

    /// Accepted, not yet taken.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Segments delayed as lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How many bytes the caller may read from the sender at `now`.
    pub fn room(&self, now: Duration) -> u64 {
        let by_queue = if self.spec.rate_bps == 0 {
            u64::MAX
        } else {
            self.queue_bytes().saturating_sub(self.backlog(now))
        };
        by_queue.min(self.limit().saturating_sub(self.held))
    }

    /// What the caller should wait for before reading: a segment's worth of room (reading
    /// byte by byte as the queue drains would cost a wake-up per byte).
    pub fn need(&self) -> u64 {
        self.seg_size().min(self.queue_bytes())
    }

    /// When the queue will have drained enough for `need` bytes to be read, if the queue is
    /// what stands in the way (room held back by the limit returns with the next arrival).
    pub fn room_at(&self, need: u64) -> Option<Duration> {
        if self.spec.rate_bps == 0 {
            return None;
        }
        let keep = self.queue_bytes().saturating_sub(need);
        Some(self.wire_free.saturating_sub(self.ser(keep)))
    }

    /// `n` bytes read from the sender at `now`.
    pub fn push(&mut self, now: Duration, n: u64) {
        let seg = self.seg_size();
        let mut left = n;
        while left > 0 {
            let len = left.min(seg);
            let start = self.wire_free.max(now);
            let end = start + self.ser(len);
            self.wire_free = end;
            let mut arrive = end + self.spec.delay;
            if let Some(loss) = self.spec.loss {
                if lost_in(loss.prob, loss.seed, self.offset, len) {
                    // The resent copy arrives after the stall and took wire time again.
                    arrive += loss.penalty;
                    self.wire_free += self.ser(len);
                    self.lost += 1;
                }
            }
            // One stream: nothing overtakes what was sent before it.
            arrive = arrive.max(self.last_arrival);
            self.last_arrival = arrive;
            match self.segs.back_mut() {
                // Segments arriving together are one for the caller.
                Some(last) if last.arrive == arrive => last.len += len,
                _ => self.segs.push_back(Seg { arrive, len }),
            }
            self.offset += len;
            self.held += len;
            left -= len;
        }
    }

    /// When the next bytes arrive.
    pub fn next_due(&self) -> Option<Duration> {
        self.segs.front().map(|s| s.arrive)
    }

    /// Takes the bytes that have arrived by `now` (the oldest held bytes, in order): how many.
    pub fn take_due(&mut self, now: Duration) -> u64 {
        let mut n = 0;
        while let Some(s) = self.segs.front() {
            if s.arrive > now {
                break;
            }
            n += s.len;
            self.segs.pop_front();
        }
        self.held -= n;
        n
    }
}

/// Whether a packet starting in `[offset, offset + len)` is lost: packet `k` (bytes from
/// `k·MSS`) is lost when a hash of (`seed`, `k`) falls below `prob`.
fn lost_in(prob: f64, seed: u64, offset: u64, len: u64) -> bool {
    let first = offset.div_ceil(MSS);
    let last = (offset + len - 1) / MSS;
    (first..=last).any(|k| {
        let u = (splitmix(seed ^ splitmix(k)) >> 11) as f64 / (1u64 << 53) as f64;
        u < prob
    })
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Loss, Profile};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 8 Mbit/s = 1 byte per µs, 10 ms one way, a 10 kB queue.
    fn link() -> LinkSpec {
        LinkSpec {
            rate_bps: 8_000_000,
            delay: ms(10),
            queue_bytes: 10_000,
            loss: None,
        }
    }

    /// Takes everything, in order of arrival: (time, bytes).
    fn drain(s: &mut Shaper) -> Vec<(Duration, u64)> {
        let mut out = Vec::new();
        while let Some(t) = s.next_due() {
            out.push((t, s.take_due(t)));
        }
        out
    }

    #[test]
    fn a_segment_arrives_after_its_serialisation_and_the_delay() {
        let mut s = Shaper::new(link());
        s.push(ms(1), 1000);
        assert_eq!(
            s.next_due(),
            Some(ms(1) + Duration::from_micros(1000) + ms(10))
        );
        assert_eq!(s.take_due(ms(11)), 0, "not before it has arrived");
        assert_eq!(s.take_due(ms(12)), 1000);
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn bytes_leave_back_to_back_at_the_rate() {
        let mut s = Shaper::new(link());
        let seg = s.seg_size();
        assert_eq!(seg, MSS, "0.5 ms at 1 B/µs is less than a packet");
        s.push(Duration::ZERO, 3 * seg);
        let got = drain(&mut s);
        let want: Vec<_> = (1..=3)
            .map(|i| (Duration::from_micros(i * seg) + ms(10), seg))
            .collect();
        assert_eq!(got, want);
        // A byte pushed once the wire is idle again starts at once.
        s.push(ms(100), 1);
        assert_eq!(s.next_due(), Some(ms(110) + Duration::from_micros(1)));
    }

    #[test]
    fn the_queue_is_what_is_not_serialised_and_its_bound_stops_reading() {
        let mut s = Shaper::new(link());
        assert_eq!(s.room(Duration::ZERO), 10_000);
        s.push(Duration::ZERO, 10_000);
        assert_eq!(s.backlog(Duration::ZERO), 10_000);
        assert_eq!(s.room(Duration::ZERO), 0, "full: the caller stops reading");
        // 4 ms later 4,000 bytes are on the wire, in flight.
        assert_eq!(s.backlog(ms(4)), 6_000);
        assert_eq!(s.room(ms(4)), 4_000);
        assert_eq!(
            s.held(),
            10_000,
            "serialised bytes are still held until they arrive"
        );
        // The caller waits for a segment's worth of room, and is told when.
        let at = s.room_at(s.need()).unwrap();
        assert_eq!(at, Duration::from_micros(MSS));
        assert_eq!(s.room(at), MSS);
    }

    #[test]
    fn a_small_write_after_a_backlog_arrives_after_all_of_it() {
        let mut s = Shaper::new(link());
        s.push(Duration::ZERO, 10_000);
        s.push(Duration::from_micros(1), 100);
        let got = drain(&mut s);
        assert_eq!(got.iter().map(|g| g.1).sum::<u64>(), 10_100);
        let (t, n) = *got.last().unwrap();
        assert_eq!(n, 100);
        assert_eq!(t, Duration::from_micros(10_100) + ms(10));
    }

    #[test]
    fn a_shorter_delay_never_lets_bytes_overtake() {
        let mut s = Shaper::new(link());
        s.push(Duration::ZERO, 100);
        s.set_spec(
            Duration::from_micros(200),
            LinkSpec {
                delay: ms(1),
                ..link()
            },
        );
        s.push(Duration::from_micros(200), 100);
        let got = drain(&mut s);
        assert_eq!(got, vec![(Duration::from_micros(100) + ms(10), 200)]);
    }

    #[test]
    fn a_new_rate_drains_the_backlog_at_that_rate() {
        let mut s = Shaper::new(link());
        s.push(Duration::ZERO, 8_000);
        s.set_spec(
            ms(2),
            LinkSpec {
                rate_bps: 16_000_000,
                ..link()
            },
        );
        assert_eq!(s.backlog(ms(2)), 6_000);
        assert_eq!(s.backlog(ms(4)), 2_000, "now 2 bytes per µs");
    }

    #[test]
    fn without_a_rate_it_is_a_delay_line_bounded_in_bytes() {
        let mut s = Shaper::new(LinkSpec {
            delay: ms(300),
            ..LinkSpec::default()
        });
        s.push(ms(1), 5);
        assert_eq!(s.next_due(), Some(ms(301)));
        assert_eq!(s.room(ms(1)), UNSHAPED_WINDOW - 5);
        assert_eq!(s.room_at(1), None, "room comes back with arrivals");
        let mut plain = Shaper::new(LinkSpec::default());
        plain.push(ms(7), 64);
        assert_eq!(plain.take_due(ms(7)), 64, "unshaped: due at once");
    }

    #[test]
    fn the_limit_holds_the_queue_and_the_bytes_in_flight() {
        let mut s = Shaper::new(link());
        // A receiver that takes nothing: the queue drains onto the wire, then the limit stops
        // the reading (10 ms in flight at 1 B/µs is 10,000 bytes).
        let mut now = Duration::ZERO;
        let mut pushed = 0;
        while s.room(now) > 0 && now < ms(100) {
            let n = s.room(now);
            s.push(now, n);
            pushed += n;
            now += Duration::from_micros(500);
        }
        assert!(pushed <= s.limit());
        assert!(s.limit() <= 10_000 + 10_000 + 2 * MSS);
        assert_eq!(s.room(ms(1000)), 0, "full until something is taken");
        s.take_due(ms(1000));
        assert!(s.room(ms(1000)) > 0);
    }

    #[test]
    fn profiles_have_a_50_ms_queue() {
        let s = Profile::Slow.spec();
        assert_eq!(
            (s.rate_bps, s.delay, s.queue_bytes),
            (10_000_000, ms(50), 62_500)
        );
        let s = Profile::Medium.spec();
        assert_eq!(
            (s.rate_bps, s.delay, s.queue_bytes),
            (40_000_000, ms(20), 250_000)
        );
        let s = Profile::Fast.spec();
        assert_eq!(
            (s.rate_bps, s.delay, s.queue_bytes),
            (1_000_000_000, ms(1), 6_250_000)
        );
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.key()), Some(p));
        }
        // At 1 Gbit/s a segment is 0.5 ms of wire time: 62,500 bytes.
        assert_eq!(Shaper::new(Profile::Fast.spec()).seg_size(), 62_500);
    }

    fn lossy(seed: u64) -> LinkSpec {
        link().with_loss(Loss {
            prob: 0.05,
            seed,
            penalty: ms(200),
        })
    }

    /// Pushes `total` bytes in pieces of `piece`, the wire never idle, and lists the stream
    /// offsets at which the arrival times jump by the penalty.
    fn stalls(spec: LinkSpec, total: u64, piece: u64) -> (Vec<u64>, u64) {
        let mut s = Shaper::new(spec);
        let mut off = 0;
        while off < total {
            let n = piece.min(total - off);
            s.push(Duration::ZERO, n);
            off += n;
        }
        let mut at = Vec::new();
        let mut off = 0;
        let mut prev = Duration::ZERO;
        for (t, n) in drain(&mut s) {
            if t >= prev + ms(100) && off > 0 {
                at.push(off);
            }
            prev = t;
            off += n;
        }
        (at, s.lost())
    }

    #[test]
    fn loss_stalls_the_stream_at_the_same_places_on_every_run() {
        let (a, lost) = stalls(lossy(7), 200_000, 10_000);
        assert!(lost > 0 && !a.is_empty());
        assert_eq!(
            stalls(lossy(7), 200_000, 10_000),
            (a.clone(), lost),
            "replayable"
        );
        assert_ne!(
            stalls(lossy(8), 200_000, 10_000).0,
            a,
            "another seed, other losses"
        );
        // About 5 % of the 138 packets.
        assert!((2..=20).contains(&lost), "{lost}");
    }

    #[test]
    fn a_lost_segment_holds_back_what_follows_and_costs_wire_time() {
        let mut s = Shaper::new(lossy(7));
        let mut now = Duration::ZERO;
        let mut clean = Shaper::new(link());
        while s.lost() == 0 {
            s.push(now, MSS);
            clean.push(now, MSS);
            now += Duration::from_micros(MSS);
        }
        // The wire is busy one segment longer: the resent copy.
        assert_eq!(s.backlog(now), clean.backlog(now) + MSS);
        let got = drain(&mut s);
        let want = drain(&mut clean);
        let (lost_at, _) = *got.last().unwrap();
        assert_eq!(lost_at, want.last().unwrap().0 + ms(200));
        // The next segment, sent at once, waits for the resent one.
        s.push(now, 1);
        assert!(s.next_due().unwrap() >= lost_at);
    }
}
