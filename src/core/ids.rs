//! Client-generated IDs (calls now, transfer tasks later): 128 random bits from the kernel, in
//! hex. Unique without coordination, and unguessable by other users.

/// A new ID: `prefix` followed by 32 lowercase hex digits (well under the 63-byte limit).
pub(crate) fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: writes at most the remaining length into a live buffer.
        let n = unsafe {
            libc::getrandom(
                bytes[filled..].as_mut_ptr() as *mut libc::c_void,
                bytes.len() - filled,
                0,
            )
        };
        if n > 0 {
            filled += n as usize;
        }
        // n < 0 is EINTR (or EAGAIN before the pool is ready, which blocking mode excludes).
    }
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex() {
        let a = new_id("c-");
        let b = new_id("c-");
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
