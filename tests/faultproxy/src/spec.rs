//! What a link is: the settings of one direction ([`LinkSpec`]), the loss model ([`Loss`]) and
//! the named profiles of issue 21 ([`Profile`]).

use std::fmt;
use std::time::Duration;

/// A direction through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → upstream.
    Up,
    /// Upstream → client.
    Down,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }
}

/// Random loss. The proxy relays one TCP stream into another, so a byte cannot vanish; a lost
/// packet shows the receiving application what a retransmission does: the stream stops at the
/// hole for `penalty` (set it to the round trip for a fast retransmit, to 200 ms or more for a
/// retransmission timeout), everything behind waits (one TCP stream, in order), and the resent
/// copy takes wire time again. What it does not do: make the endpoints' TCP shrink its
/// congestion window, as a real loss would (their TCP runs over loopback and never sees it).
///
/// Which packets are lost depends only on `seed` and their place in the stream (packets of
/// [`MSS`](crate::shape::MSS) bytes by stream offset), not on timing or how the bytes were
/// read: a run replays exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loss {
    /// Probability that a packet is lost, in [0, 1].
    pub prob: f64,
    pub seed: u64,
    /// How long the stream stalls at a lost packet.
    pub penalty: Duration,
}

/// One direction of an emulated link. The default passes bytes unshaped (the proxy's behaviour
/// before links existed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkSpec {
    /// Bits per second the wire serialises; 0 = no rate limit (and no queue).
    pub rate_bps: u64,
    /// One-way propagation delay, added after serialisation.
    pub delay: Duration,
    /// The bottleneck queue: bytes accepted but not yet serialised. When it is full the proxy
    /// stops reading from the sender, so the sender's TCP is pushed back. At least one segment
    /// is always admitted.
    pub queue_bytes: u64,
    pub loss: Option<Loss>,
}

impl LinkSpec {
    /// A link of `rate_bps` and `delay` whose queue holds `queue` worth of bytes at that rate.
    pub fn new(rate_bps: u64, delay: Duration, queue: Duration) -> LinkSpec {
        LinkSpec {
            rate_bps,
            delay,
            queue_bytes: (rate_bps as u128 * queue.as_nanos() / 8_000_000_000) as u64,
            loss: None,
        }
    }

    pub fn with_loss(self, loss: Loss) -> LinkSpec {
        LinkSpec {
            loss: Some(loss),
            ..self
        }
    }

    /// True when the link does anything at all.
    pub fn is_shaped(&self) -> bool {
        self.rate_bps > 0 || !self.delay.is_zero() || self.loss.is_some()
    }
}

/// The links of issue 21, the same in both directions, each with a 50 ms bottleneck queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// 10 Mbit/s, 50 ms one way (a weak mobile or home link).
    Slow,
    /// 40 Mbit/s, 20 ms one way (broadband, office Wi-Fi).
    Medium,
    /// 1 Gbit/s, 1 ms one way (a LAN or a data centre).
    Fast,
}

/// The queue of every profile, in time at the link's rate.
pub const PROFILE_QUEUE: Duration = Duration::from_millis(50);

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Slow, Profile::Medium, Profile::Fast];

    pub fn spec(self) -> LinkSpec {
        let (rate, delay_ms) = match self {
            Profile::Slow => (10_000_000, 50),
            Profile::Medium => (40_000_000, 20),
            Profile::Fast => (1_000_000_000, 1),
        };
        LinkSpec::new(rate, Duration::from_millis(delay_ms), PROFILE_QUEUE)
    }

    /// The short name of the line protocol and of bench rows.
    pub fn key(self) -> &'static str {
        match self {
            Profile::Slow => "10m50",
            Profile::Medium => "40m20",
            Profile::Fast => "1g1",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.key() == s)
    }
}

impl From<Profile> for LinkSpec {
    fn from(p: Profile) -> LinkSpec {
        p.spec()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.spec();
        write!(
            f,
            "{} Mbit/s, {} ms one way, {} ms queue",
            s.rate_bps / 1_000_000,
            s.delay.as_millis(),
            PROFILE_QUEUE.as_millis()
        )
    }
}
