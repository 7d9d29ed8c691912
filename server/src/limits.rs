//! Defences against abusive clients that the protocol alone does not give: a request-rate
//! bucket per connection, and failed-login counters per source address and per tenant.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u64, burst: u64) -> Bucket {
        Bucket {
            tokens: burst as f64,
            rate: rate as f64,
            burst: burst as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Failures per key in fixed one-minute windows.
#[derive(Debug)]
struct Counter<K> {
    limit: u64,
    windows: HashMap<K, (Instant, u64)>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept at most; beyond it expired windows are dropped (an attacker rotating addresses
/// cannot grow the map without bound: when all are live, the oldest are dropped).
const MAX_KEYS: usize = 100_000;

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: u64) -> Self {
        Counter {
            limit,
            windows: HashMap::new(),
        }
    }

    fn blocked(&self, key: &K, now: Instant) -> bool {
        self.windows
            .get(key)
            .is_some_and(|(start, n)| now < *start + WINDOW && *n >= self.limit)
    }

    fn fail(&mut self, key: &K, now: Instant) {
        if self.windows.len() >= MAX_KEYS && !self.windows.contains_key(key) {
            self.windows.retain(|_, (start, _)| now < *start + WINDOW);
            if self.windows.len() >= MAX_KEYS {
                self.windows.clear();
            }
        }
        let w = self.windows.entry(key.clone()).or_insert((now, 0));
        if now >= w.0 + WINDOW {
            *w = (now, 0);
        }
        w.1 += 1;
    }
}

/// Refuses logins from a source, or into a tenant, that failed too often this minute.
#[derive(Debug)]
pub struct LoginLimiter {
    sources: Mutex<Counter<IpAddr>>,
    tenants: Mutex<Counter<String>>,
}

impl LoginLimiter {
    pub fn new(per_source: u64, per_tenant: u64) -> LoginLimiter {
        LoginLimiter {
            sources: Mutex::new(Counter::new(per_source)),
            tenants: Mutex::new(Counter::new(per_tenant)),
        }
    }

    /// Whether a login from `ip` into `tenant` may be tried now.
    pub fn allowed(&self, ip: IpAddr, tenant: &str) -> bool {
        let now = Instant::now();
        !self.sources.lock().blocked(&ip, now)
            && !self.tenants.lock().blocked(&tenant.to_owned(), now)
    }

    /// Records a failed login.
    pub fn failed(&self, ip: IpAddr, tenant: &str) {
        let now = Instant::now();
        self.sources.lock().fail(&ip, now);
        self.tenants.lock().fail(&tenant.to_owned(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 3);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn failures_block_their_source_and_tenant_for_the_window() {
        let l = LoginLimiter::new(3, 5);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.allowed(a, "t"));
            l.failed(a, "t");
        }
        assert!(!l.allowed(a, "t"), "source over its limit");
        assert!(
            !l.allowed(a, "other"),
            "a blocked source is blocked for every tenant"
        );
        assert!(l.allowed(b, "t"), "other sources still may");
        l.failed(b, "t");
        l.failed(b, "t");
        assert!(!l.allowed(b, "t"), "tenant over its limit");
        assert!(l.allowed(b, "u"));
        let mut c = Counter::new(1);
        let t0 = Instant::now();
        c.fail(&1, t0);
        assert!(c.blocked(&1, t0));
        assert!(!c.blocked(&1, t0 + WINDOW), "the window passes");
    }
}
