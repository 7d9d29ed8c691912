//! The chaos test's seeded random schedule of faults: what happens when, drawn once from the
//! seed before anything starts, so that a printed seed replays the same schedule.

use std::fmt;

/// A tiny deterministic generator (xorshift64).
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Mixed first, so that neighbouring seeds (2 and 3) draw different schedules.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of a node, restarted under its name `down_ms` later.
    Kill { node: usize, down_ms: u64 },
    /// SIGSTOP of a node for `ms`, then SIGCONT (shorter or longer than `node_timeout_ms`).
    Freeze { node: usize, ms: u64 },
    /// `CLIENT KILL TYPE normal` at the primary, `times` times 300 ms apart.
    RedisDrops { times: u32 },
    /// The primary restarted, with its data or empty.
    RedisRestart { keep_data: bool },
    /// `SENTINEL FAILOVER`: the replica becomes the primary.
    Failover,
    /// Every link between the nodes cut (both ends reset).
    LinksCut,
    /// The network of a node's clients blips: their connections are reset; they resume.
    Blip { node: usize },
    /// SIGTERM of each node in turn, restarted before the next (unless `CRVM_CHAOS_ROLLING=0`).
    Rolling,
}

impl Fault {
    /// The fault's kind, for the figures (a freeze is short or long against `timeout_ms`).
    pub fn kind(&self, timeout_ms: u64) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill -9",
            Fault::Freeze { ms, .. } if *ms < timeout_ms => "freeze short",
            Fault::Freeze { .. } => "freeze long",
            Fault::RedisDrops { .. } => "redis drops",
            Fault::RedisRestart { keep_data: true } => "redis restart",
            Fault::RedisRestart { keep_data: false } => "redis empty",
            Fault::Failover => "failover",
            Fault::LinksCut => "links cut",
            Fault::Blip { .. } => "client blip",
            Fault::Rolling => "rolling",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { node, down_ms } => write!(f, "kill -9 n{} (down {down_ms} ms)", node + 1),
            Fault::Freeze { node, ms } => write!(f, "SIGSTOP n{} for {ms} ms", node + 1),
            Fault::RedisDrops { times } => write!(f, "CLIENT KILL TYPE normal x{times}"),
            Fault::RedisRestart { keep_data } => write!(
                f,
                "redis primary restarted {}",
                if *keep_data { "with its data" } else { "empty" }
            ),
            Fault::Failover => write!(f, "SENTINEL FAILOVER"),
            Fault::LinksCut => write!(f, "node links cut"),
            Fault::Blip { node } => write!(f, "network blip of n{}'s clients", node + 1),
            Fault::Rolling => write!(f, "rolling restart (SIGTERM each node in turn)"),
        }
    }
}

/// A fault and when it starts (ms after the traffic started).
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub at_ms: u64,
    pub fault: Fault,
}

/// How long a fault keeps the schedule busy, roughly (faults run one at a time).
fn length_ms(f: &Fault, timeout_ms: u64) -> u64 {
    match f {
        Fault::Kill { down_ms, .. } => down_ms + 1500,
        Fault::Freeze { ms, .. } => ms + 500,
        Fault::RedisDrops { times } => *times as u64 * 300,
        Fault::RedisRestart { .. } => 1000,
        Fault::Failover => 5000,
        Fault::LinksCut | Fault::Blip { .. } => 200,
        Fault::Rolling => 3 * (timeout_ms + 2000),
    }
}

/// A random fault of the given kind number (0..8).
fn draw(rng: &mut Rng, kind: u64, nodes: usize, timeout_ms: u64) -> Fault {
    let node = rng.below(nodes as u64) as usize;
    match kind {
        0 => Fault::Kill {
            node,
            down_ms: rng.range(500, 3000),
        },
        1 => Fault::Freeze {
            node,
            ms: rng.range(timeout_ms / 5, timeout_ms / 2),
        },
        2 => Fault::Freeze {
            node,
            ms: rng.range(timeout_ms * 3 / 2, timeout_ms * 2),
        },
        3 => Fault::RedisDrops {
            times: rng.range(1, 6) as u32,
        },
        4 => Fault::RedisRestart { keep_data: true },
        5 => Fault::RedisRestart { keep_data: false },
        6 => Fault::Failover,
        7 => Fault::LinksCut,
        8 => Fault::Blip { node },
        _ => Fault::Rolling,
    }
}

/// The schedule for `secs` seconds: every kind once (in a seeded order), then random ones until
/// the time is filled; a pause of 1 to 4 s after each, so that traffic runs between faults.
pub fn plan(seed: u64, secs: u64, nodes: usize, timeout_ms: u64, rolling: bool) -> Vec<Planned> {
    let mut rng = Rng::new(seed);
    let kinds = if rolling { 10 } else { 9 };
    let mut first: Vec<u64> = (0..kinds).collect();
    for i in (1..first.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        first.swap(i, j);
    }
    let mut out = Vec::new();
    // Some traffic first.
    let mut t = 2000;
    let end = secs * 1000;
    let mut i = 0;
    loop {
        let kind = if i < first.len() {
            first[i]
        } else {
            rng.below(kinds)
        };
        i += 1;
        let fault = draw(&mut rng, kind, nodes, timeout_ms);
        let len = length_ms(&fault, timeout_ms);
        // Each kind at least once, even past the nominal length; then until it is filled.
        if t + len > end && i > first.len() {
            break;
        }
        out.push(Planned { at_ms: t, fault });
        t += len + rng.range(1000, 4000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule_and_every_kind_comes() {
        let a = plan(42, 120, 3, 3000, false);
        let b = plan(42, 120, 3, 3000, false);
        assert_eq!(
            a.iter().map(|p| (p.at_ms, p.fault)).collect::<Vec<_>>(),
            b.iter().map(|p| (p.at_ms, p.fault)).collect::<Vec<_>>()
        );
        for kind in [
            "kill -9",
            "freeze short",
            "freeze long",
            "failover",
            "redis empty",
        ] {
            assert!(a.iter().any(|p| p.fault.kind(3000) == kind), "{kind}");
        }
        assert!(!a.iter().any(|p| p.fault == Fault::Rolling));
        let other = plan(43, 120, 3, 3000, false);
        assert_ne!(
            a.iter().map(|p| p.fault).collect::<Vec<_>>(),
            other.iter().map(|p| p.fault).collect::<Vec<_>>()
        );
        assert!(plan(42, 120, 3, 3000, true)
            .iter()
            .any(|p| p.fault == Fault::Rolling));
    }
}
