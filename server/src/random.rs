//! The OS random source, for everything a client must not guess: meeting IDs and passwords,
//! generated user IDs.

/// Fills `buf` from the OS. The OS source failing means the machine cannot run a server safely,
/// so that is treated as fatal rather than falling back to something predictable.
pub fn fill(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random source failed");
}

/// A uniformly random `u64`.
pub fn next_u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}

/// A uniformly random number in `0..n` (`n > 0`), without modulo bias.
pub fn below(n: u64) -> u64 {
    assert!(n > 0, "empty range");
    // Reject the top partial bucket so that every residue is equally likely.
    let zone = u64::MAX - (u64::MAX - n + 1) % n;
    loop {
        let r = next_u64();
        if r <= zone {
            return r % n;
        }
    }
}

/// `len` random lowercase hex digits.
pub fn hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(below(16) as u32, 16).unwrap())
        .collect()
}

/// `len` random decimal digits (leading zeros included).
pub fn digits(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(below(10) as u32, 10).unwrap())
        .collect()
}

/// Lowest meeting ID handed out: IDs are 8–10 digits, never small enough to enumerate by hand.
pub const MEETING_ID_MIN: i32 = 10_000_000;

/// A random meeting ID in `MEETING_ID_MIN..=i32::MAX`.
pub fn meeting_id() -> i32 {
    let span = (i32::MAX as u64) - (MEETING_ID_MIN as u64) + 1;
    (MEETING_ID_MIN as u64 + below(span)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold() {
        for _ in 0..1000 {
            assert!(below(7) < 7);
            assert!(meeting_id() >= MEETING_ID_MIN);
        }
        assert_eq!(below(1), 0);
        let h = hex(16);
        assert_eq!(h.len(), 16);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let d = digits(6);
        assert_eq!(d.len(), 6);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
    }
}
