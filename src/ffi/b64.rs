//! Base64 (standard alphabet, padded) for the C API's cmd and buffer arguments and callbacks.
//!
//! The `base64` crate's portable codec decides what is valid and writes the last bytes; on x86-64
//! the bulk before them goes 32 characters (AVX2) or 16 (SSSE3) at a time through vector
//! shuffles — several times faster, which is most of a large cmd's cost in the library. The
//! result is the crate's, byte for byte, and so is every refusal: the vector part takes only
//! characters of the alphabet (never `=`) and always leaves the last characters, where padding
//! and the final bits are checked, to the crate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// `text` decoded, or `None` where the crate refuses it.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let rest = simd::decode_bulk(text, &mut out)?;
    STANDARD.decode_vec(rest, &mut out).ok()?;
    Some(out)
}

/// Appends `bytes` in base64.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    let rest = simd::encode_bulk(bytes, out);
    let at = out.len();
    out.resize(at + rest.len().div_ceil(3) * 4, 0);
    let n = STANDARD
        .encode_slice(rest, &mut out[at..])
        .expect("room for the encoding was made");
    out.truncate(at + n);
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// Decodes whole 16-character blocks of `text` into `out` while more than 16 characters
    /// are left; returns the rest (1 to 16 characters, or all of a short text), or `None` if
    /// a block holds a character outside the alphabet.
    pub(super) fn decode_bulk<'a>(text: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
        if text.len() <= 16 || !is_x86_feature_detected!("ssse3") {
            return Some(text);
        }
        let blocks = (text.len() - 1) / 16;
        // Each block is stored as 16 bytes of which 12 count: room for the last one's 4 more.
        out.reserve(12 * blocks + 4);
        let text16 = &text[..16 * blocks];
        if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked above); the room was reserved.
            unsafe { decode_blocks_avx2(text16, out) }?;
        } else {
            // SAFETY: SSSE3 is present (checked above); the room was reserved.
            unsafe { decode_blocks(text16, out) }?;
        }
        Some(&text[16 * blocks..])
    }

    /// Appends the decoding of `text` (whole 16-character blocks) to `out`, which has room for
    /// 4 bytes more than that; `None`, with `out` unchanged, if a block holds a character
    /// outside the alphabet. One function for the whole loop, so that the block decoder is
    /// inlined and its tables loaded once; the bytes are written straight into the spare room
    /// (no zero-fill first).
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn decode_blocks(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let at = out.len();
        let blocks = text.len() / 16;
        debug_assert!(out.capacity() - at >= 12 * blocks + 4);
        let dst = out.as_mut_ptr().add(at);
        for (i, block) in text.chunks_exact(16).enumerate() {
            decode16(block.as_ptr(), dst.add(12 * i))?;
        }
        out.set_len(at + 12 * blocks);
        Some(())
    }

    /// Encodes whole 12-byte groups of `bytes` into `out` while 16 bytes can be loaded; returns
    /// the rest (a group boundary, so the crate's encoding of it follows on).
    pub(super) fn encode_bulk<'a>(bytes: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
        if bytes.len() < 16 || !is_x86_feature_detected!("ssse3") {
            return bytes;
        }
        let groups = (bytes.len() - 4) / 12;
        out.reserve(16 * groups);
        // SAFETY: SSSE3 is present (checked above); the room was reserved, and every group
        // loads 16 bytes of `bytes` (the last one ends at most 4 bytes before its end).
        unsafe { encode_groups(bytes, groups, out) };
        &bytes[12 * groups..]
    }

    /// Appends `groups` groups of 12 bytes of `bytes` in base64 to `out` (room reserved; 16
    /// bytes of `bytes` readable from each group's start). One function for the loop, as for
    /// decoding.
    #[target_feature(enable = "ssse3")]
    unsafe fn encode_groups(bytes: &[u8], groups: usize, out: &mut Vec<u8>) {
        let at = out.len();
        debug_assert!(out.capacity() - at >= 16 * groups && 12 * groups + 4 <= bytes.len());
        let (src, dst) = (bytes.as_ptr(), out.as_mut_ptr().add(at));
        for i in 0..groups {
            encode12(src.add(12 * i), dst.add(16 * i));
        }
        out.set_len(at + 16 * groups);
    }

    /// As [`decode_blocks`], 32 characters at a time (two blocks, one per 128-bit lane), the
    /// odd block last as 16.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode_blocks_avx2(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let at = out.len();
        let blocks = text.len() / 16;
        debug_assert!(out.capacity() - at >= 12 * blocks + 4);
        let dst = out.as_mut_ptr().add(at);
        let mut i = 0;
        while i + 2 <= blocks {
            decode32(text.as_ptr().add(16 * i), dst.add(12 * i))?;
            i += 2;
        }
        if i < blocks {
            decode16(text.as_ptr().add(16 * i), dst.add(12 * i))?;
        }
        out.set_len(at + 12 * blocks);
        Some(())
    }

    /// 32 base64 characters at `block` → 24 bytes at `out` (28 are written), or `None` if one
    /// is not in the alphabet: [`decode16`]'s steps on both 128-bit lanes at once (every
    /// shuffle stays within a lane, so the tables are the same, twice).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn decode32(block: *const u8, out: *mut u8) -> Option<()> {
        let s = _mm256_loadu_si256(block.cast());
        let lut_lo = _mm256_setr_epi8(
            0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b,
            0x1b, 0x1a, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a,
            0x1b, 0x1b, 0x1b, 0x1a,
        );
        let lut_hi = _mm256_setr_epi8(
            0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
            0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
            0x10, 0x10, 0x10, 0x10,
        );
        let lut_roll = _mm256_setr_epi8(
            0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4, -65, -65, -71,
            -71, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        let nibble = _mm256_set1_epi8(0x0f);
        let hi = _mm256_and_si256(_mm256_srli_epi32(s, 4), nibble);
        let lo = _mm256_and_si256(s, nibble);
        let bad = _mm256_and_si256(
            _mm256_shuffle_epi8(lut_lo, lo),
            _mm256_shuffle_epi8(lut_hi, hi),
        );
        if _mm256_movemask_epi8(_mm256_cmpeq_epi8(bad, _mm256_setzero_si256())) != -1 {
            return None;
        }
        let slash = _mm256_cmpeq_epi8(s, _mm256_set1_epi8(b'/' as i8));
        let roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(slash, hi));
        let values = _mm256_add_epi8(s, roll);
        let pairs = _mm256_maddubs_epi16(values, _mm256_set1_epi32(0x0140_0140));
        let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x0001_1000));
        let order = _mm256_setr_epi8(
            2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4, 10, 9, 8, 14,
            13, 12, -1, -1, -1, -1,
        );
        let bytes = _mm256_shuffle_epi8(quads, order);
        _mm_storeu_si128(out.cast(), _mm256_castsi256_si128(bytes));
        _mm_storeu_si128(out.add(12).cast(), _mm256_extracti128_si256(bytes, 1));
        Some(())
    }

    /// 16 base64 characters at `block` → 12 bytes at `out` (16 are written; the last 4 are
    /// overwritten by the next block or left beyond the length), or `None` if one is not in
    /// the alphabet.
    ///
    /// Validity by nibbles: each high nibble that can start a valid character (2, 3, 4/6, 5/7)
    /// has a bit, every other one 0x10; a low nibble's entry has the bits of the high nibbles it
    /// is *not* valid with (and always 0x10). A character is valid iff the two share no bit.
    /// Its value is the character plus an offset chosen by its high nibble ('/' and '+', both
    /// of high nibble 2, told apart by comparing with '/').
    #[target_feature(enable = "ssse3")]
    #[inline]
    unsafe fn decode16(block: *const u8, out: *mut u8) -> Option<()> {
        let s = _mm_loadu_si128(block.cast());
        let lut_lo = _mm_setr_epi8(
            0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b,
            0x1b, 0x1a,
        );
        let lut_hi = _mm_setr_epi8(
            0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
            0x10, 0x10,
        );
        // Offsets by high nibble: 1 '/', 2 '+', 3 digits, 4/5 'A'..'Z', 6/7 'a'..'z'.
        let lut_roll = _mm_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
        let nibble = _mm_set1_epi8(0x0f);
        let hi = _mm_and_si128(_mm_srli_epi32(s, 4), nibble);
        let lo = _mm_and_si128(s, nibble);
        let bad = _mm_and_si128(_mm_shuffle_epi8(lut_lo, lo), _mm_shuffle_epi8(lut_hi, hi));
        if _mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) != 0xffff {
            return None;
        }
        let slash = _mm_cmpeq_epi8(s, _mm_set1_epi8(b'/' as i8));
        let roll = _mm_shuffle_epi8(lut_roll, _mm_add_epi8(slash, hi));
        let values = _mm_add_epi8(s, roll);
        // Four 6-bit values → one 24-bit number per 32 bits, then its bytes high first.
        let pairs = _mm_maddubs_epi16(values, _mm_set1_epi32(0x0140_0140));
        let quads = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_1000));
        let order = _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
        _mm_storeu_si128(out.cast(), _mm_shuffle_epi8(quads, order));
        Some(())
    }

    /// The first 12 of 16 bytes → 16 base64 characters.
    ///
    /// Each 3 bytes b0 b1 b2 are spread to b1 b0 b2 b1 (one 32-bit word), whose four 6-bit
    /// fields are moved to one byte each by masks and 16-bit multiplies; a value becomes its
    /// character by adding an offset looked up from its range (0–25, 26–51, 52–61, 62, 63).
    #[target_feature(enable = "ssse3")]
    #[inline]
    unsafe fn encode12(block: *const u8, out: *mut u8) {
        let s = _mm_loadu_si128(block.cast());
        let spread = _mm_shuffle_epi8(
            s,
            _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10),
        );
        let ac = _mm_mulhi_epu16(
            _mm_and_si128(spread, _mm_set1_epi32(0x0fc0_fc00)),
            _mm_set1_epi32(0x0400_0040),
        );
        let bd = _mm_mullo_epi16(
            _mm_and_si128(spread, _mm_set1_epi32(0x003f_03f0)),
            _mm_set1_epi32(0x0100_0010),
        );
        let values = _mm_or_si128(ac, bd);
        // Range index: 0 for 26–51, 1..=10 for 52–61, 11 for 62, 12 for 63, 13 for 0–25.
        let mut range = _mm_subs_epu8(values, _mm_set1_epi8(51));
        let upper = _mm_cmpgt_epi8(_mm_set1_epi8(26), values);
        range = _mm_or_si128(range, _mm_and_si128(upper, _mm_set1_epi8(13)));
        let offsets = _mm_setr_epi8(
            71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0,
        );
        let chars = _mm_add_epi8(_mm_shuffle_epi8(offsets, range), values);
        _mm_storeu_si128(out.cast(), chars);
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    pub(super) fn decode_bulk<'a>(text: &'a [u8], _: &mut Vec<u8>) -> Option<&'a [u8]> {
        Some(text)
    }

    pub(super) fn encode_bulk<'a>(bytes: &'a [u8], _: &mut Vec<u8>) -> &'a [u8] {
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte sequence (xorshift).
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn crate_decode(text: &[u8]) -> Option<Vec<u8>> {
        STANDARD.decode(text).ok()
    }

    #[test]
    fn encodes_and_decodes_as_the_crate_does() {
        for len in (0..200).chain([4095, 4096, 4097, 51_200]) {
            let data = bytes(len, len as u64);
            let mut mine = b"prefix".to_vec();
            encode_into(&data, &mut mine);
            let text = STANDARD.encode(&data);
            assert_eq!(&mine[6..], text.as_bytes(), "{len}");
            assert_eq!(decode(text.as_bytes()), Some(data), "{len}");
        }
        // Every value of every position of a block, and every character of the alphabet.
        let all: Vec<u8> = (0..=255u8).cycle().take(3 * 256).collect();
        let mut mine = Vec::new();
        encode_into(&all, &mut mine);
        assert_eq!(mine, STANDARD.encode(&all).as_bytes());
        assert_eq!(decode(&mine), Some(all));
    }

    /// Every byte value at every position of texts of several lengths, and every truncation:
    /// accepted or refused exactly as the crate does, with the same bytes.
    #[test]
    fn refuses_what_the_crate_refuses() {
        for len in [0, 1, 2, 3, 12, 13, 14, 24, 36, 37, 47, 48, 60] {
            let text = STANDARD.encode(bytes(len, 7 + len as u64)).into_bytes();
            for cut in 0..text.len() {
                assert_eq!(
                    decode(&text[..cut]),
                    crate_decode(&text[..cut]),
                    "{len} {cut}"
                );
            }
            for i in 0..text.len() {
                for c in 0..=255u8 {
                    let mut t = text.clone();
                    t[i] = c;
                    assert_eq!(decode(&t), crate_decode(&t), "{len} at {i}: {c}");
                }
            }
        }
        // Padding in the middle of a long text, and padding alone.
        let mut t = STANDARD.encode(bytes(40, 3)).into_bytes();
        t[20] = b'=';
        assert_eq!(decode(&t), None);
        assert_eq!(decode(b"===="), None);
        assert_eq!(decode(b"QUJD"), Some(b"ABC".to_vec()));
    }

    /// The 16- and the 32-character decoders agree on every text (the dispatch takes one per
    /// machine, so the other would otherwise go untested here): every character at every
    /// position of texts of 1 to 5 blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn both_vector_decoders_agree() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        let run = |f: unsafe fn(&[u8], &mut Vec<u8>) -> Option<()>, t: &[u8]| {
            let mut out = Vec::with_capacity(t.len() / 16 * 12 + 4);
            // SAFETY: AVX2 (and so SSSE3) is present; the room is reserved.
            unsafe { f(t, &mut out) }.map(|()| out)
        };
        for blocks in 1..=5 {
            let text = STANDARD
                .encode(bytes(12 * blocks, blocks as u64))
                .into_bytes();
            for i in 0..text.len() {
                for c in 0..=255u8 {
                    let mut t = text.clone();
                    t[i] = c;
                    let a = run(simd::decode_blocks, &t);
                    assert_eq!(a, run(simd::decode_blocks_avx2, &t), "{blocks} at {i}: {c}");
                    if let Some(a) = &a {
                        assert_eq!(Some(a), crate_decode(&t).as_ref(), "{blocks} at {i}: {c}");
                    }
                    let alphabet = t
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
                    assert_eq!(a.is_some(), alphabet, "{blocks} at {i}: {c}");
                }
            }
        }
    }
}
