//! Byte searches over the short strings of the match path.
//!
//! Request paths are mostly a few dozen bytes, and node key lists a few.
//! `memchr`'s vector searches win on long inputs but cost a call, a
//! dispatch and a setup on every use, which on a 20-byte path is most of
//! the search. These search a word (eight bytes) at a time, inline, and
//! hand long inputs to `memchr`.

/// Inputs from this length on go to `memchr`.
const LONG: usize = 64;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `x` that is zero, and possibly of bytes
/// above a zero one (a borrow), so the lowest flag is always a zero byte.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

#[inline(always)]
fn word(hay: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(hay[at..at + 8].try_into().unwrap())
}

/// The first position of `b` in `hay`, eight bytes at a time (the lowest
/// flag of [`zero_bytes`] is the first match).
#[inline]
pub(crate) fn find_byte(hay: &[u8], b: u8) -> Option<usize> {
    let pattern = LO * u64::from(b);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let zero = zero_bytes(u64::from_le_bytes(c.try_into().unwrap()) ^ pattern);
        if zero != 0 {
            return Some(base + (zero.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b)
        .map(|i| base + i)
}

/// The first position of `b` among the first `len` (1 to 8) bytes of
/// `word` (little-endian), the rest masked off.
#[inline]
pub(crate) fn find_in_word(word: u64, len: usize, b: u8) -> Option<usize> {
    debug_assert!((1..=8).contains(&len));
    let zero = zero_bytes(word ^ (LO * u64::from(b))) & (u64::MAX >> (64 - 8 * len));
    (zero != 0).then(|| (zero.trailing_zeros() / 8) as usize)
}

/// The first position of `a` or `b` in `hay`.
#[inline]
pub(crate) fn find_either(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let n = hay.len();
    if n >= LONG {
        return memchr::memchr2(a, b, hay);
    }
    if n < 8 {
        return hay.iter().position(|&c| c == a || c == b);
    }
    let (pa, pb) = (LO * u64::from(a), LO * u64::from(b));
    // Each test's lowest flag is a match, so the lowest of both is the
    // first match of either.
    let test = |x: u64| zero_bytes(x ^ pa) | zero_bytes(x ^ pb);
    let mut at = 0;
    while at + 8 < n {
        let hit = test(word(hay, at));
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    // The last eight bytes, overlapping those already searched (which
    // hold no match).
    let hit = test(word(hay, n - 8));
    (hit != 0).then(|| n - 8 + (hit.trailing_zeros() / 8) as usize)
}

/// The first position of `b` in `hay`.
#[inline]
pub(crate) fn find(hay: &[u8], b: u8) -> Option<usize> {
    if hay.len() >= LONG {
        memchr::memchr(b, hay)
    } else {
        find_either(hay, b, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_agree_with_a_plain_scan() {
        // Every length up to past the memchr cut-over, with the sought
        // bytes at every position, next to bytes one bit away from them
        // and bytes with the top bit set.
        let base: Vec<u8> = (0..LONG + 20)
            .map(|i| [b'a', 0x80, b'>', 0xff, 0x00, b'?' ^ 1, b'#' ^ 0x80][i % 7])
            .collect();
        for len in 0..base.len() {
            let mut hay = base[..len].to_vec();
            let plain = |h: &[u8], x: u8, y: u8| h.iter().position(|&c| c == x || c == y);
            assert_eq!(find_either(&hay, b'?', b'#'), None, "{len}");
            assert_eq!(find(&hay, b'?'), None, "{len}");
            for at in 0..len {
                for (x, y) in [(b'?', b'#'), (b'#', b'?'), (0u8, 0xffu8)] {
                    let keep = hay[at];
                    hay[at] = x;
                    assert_eq!(find_either(&hay, x, y), plain(&hay, x, y), "{len} at {at}");
                    assert_eq!(find(&hay, x), plain(&hay, x, x), "{len} at {at}");
                    assert_eq!(find_byte(&hay, x), plain(&hay, x, x), "{len} at {at}");
                    // A second match later on.
                    if at + 3 < len {
                        let later = hay[at + 3];
                        hay[at + 3] = y;
                        assert_eq!(find_either(&hay, x, y), plain(&hay, x, y), "{len} at {at}");
                        assert_eq!(find_either(&hay, y, x), plain(&hay, x, y), "{len} at {at}");
                        hay[at + 3] = later;
                    }
                    hay[at] = keep;
                }
            }
        }
    }

    #[test]
    fn find_in_word_ignores_bytes_past_len() {
        let w = u64::from_le_bytes(*b"ab\0c\0\0\0\0");
        assert_eq!(find_in_word(w, 4, b'c'), Some(3));
        assert_eq!(find_in_word(w, 3, b'c'), None);
        assert_eq!(find_in_word(w, 8, 0), Some(2));
        assert_eq!(find_in_word(w, 2, 0), None);
        assert_eq!(find_in_word(w, 1, b'a'), Some(0));
        assert_eq!(find_in_word(u64::MAX, 8, 0xff), Some(0));
    }

    #[test]
    fn find_byte_finds_the_first_occurrence() {
        let hay: Vec<u8> = (0u8..40).map(|i| b'a' + i % 20).collect();
        for len in 0..hay.len() {
            for b in (b'a'..=b'z').chain([0, 0x80, 0xff, b'/']) {
                assert_eq!(
                    find_byte(&hay[..len], b),
                    hay[..len].iter().position(|&c| c == b),
                    "{b} in {len}"
                );
            }
        }
        // Bytes next to the one sought, and ones with the top bit set.
        let tricky = [0x01, 0x00, 0x81, 0x80, 0x2e, 0x2f, 0xfe, 0xff, 0x2f, 0x00];
        for b in [0x00, 0x01, 0x80, 0x81, 0x2f, 0xff] {
            assert_eq!(find_byte(&tricky, b), tricky.iter().position(|&c| c == b));
        }
    }
}
