//! Client-generated IDs (calls, transfer tasks, part files): 128 bits in hex, unique without
//! coordination and not guessable by other users.
//!
//! An ID is a counter hashed with two secret keys (the standard library's `RandomState`, SipHash
//! seeded from the kernel once per process), 64 bits each: unpredictable to anyone without the
//! keys, and distinct unless both keyed hashes collide at once. Making one costs no system call
//! — a burst of cmds makes one per cmd.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The process's keys: two independently seeded hashers.
fn keys() -> &'static (RandomState, RandomState) {
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    KEYS.get_or_init(|| (RandomState::new(), RandomState::new()))
}

/// The `n`th 128-bit ID value of this process.
fn value(n: u64) -> u128 {
    let (a, b) = keys();
    let half = |k: &RandomState| {
        let mut h = k.build_hasher();
        h.write_u64(n);
        h.finish()
    };
    (u128::from(half(a)) << 64) | u128::from(half(b))
}

/// A fresh unpredictable 64-bit value (reconnect jitter).
pub(crate) fn random_u64() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 63);
    value(NEXT.fetch_add(1, Ordering::Relaxed)) as u64
}

/// A new ID: `prefix` followed by 32 lowercase hex digits (well under the 63-byte limit).
pub(crate) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let v = value(NEXT.fetch_add(1, Ordering::Relaxed));
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Written into a fixed array and appended once: pushing 32 chars one by one cost a cmd
    // more than the hashing did.
    let mut hex = [0u8; 32];
    for (i, d) in hex.iter_mut().enumerate() {
        *d = HEX[((v >> (4 * (31 - i))) & 0xf) as usize];
    }
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    id.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_hex() {
        let a = new_id("c-");
        let b = new_id("c-");
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a.starts_with("c-"));
        let many: HashSet<String> = (0..100_000).map(|_| new_id("")).collect();
        assert_eq!(many.len(), 100_000);
    }
}
