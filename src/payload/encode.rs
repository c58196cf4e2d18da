//! Low-level JSON text writers with exactly the output of Python's
//! `json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`, which is what
//! the anchor SDK (through httpx) puts on the wire.

/// 0 = copy as is; otherwise the second byte of a short escape, or `u` for
/// `\u00XX`.
pub(crate) const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// Whether any of the 8 bytes of `x` is a control character, `"` or `\\`.
#[inline(always)]
pub(crate) fn needs_escape(x: u64) -> bool {
    escape_bits(x) != 0
}

/// The high bit of each byte of `x` (little-endian) that is a control
/// character, `"` or `\\`; exact up to the first such byte (bytes above it
/// may be flagged too), so the lowest set bit marks the first one.
#[inline(always)]
pub(crate) fn escape_bits(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_0x20 = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    below_0x20 | has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\')))
}

/// Index of the first byte at or after `i` that needs escaping (or `len`).
#[inline]
fn next_escape(bytes: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SSE2 is part of the x86_64 baseline: 16 bytes per step.
        // SAFETY: every load reads 16 bytes inside `bytes` (i + 16 <= len,
        // or off + 16 == len).
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctl = _mm_set1_epi8(0x1f);
            while i + 16 <= bytes.len() {
                let x = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                // max(x, 0x1f) == 0x1f  <=>  x <= 0x1f (unsigned).
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl),
                );
                let mask = _mm_movemask_epi8(hits);
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
            // The last < 16 bytes: one overlapping load of the final 16,
            // ignoring the bytes before `i` (already scanned).
            if i < bytes.len() && bytes.len() >= 16 {
                let off = bytes.len() - 16;
                let x = _mm_loadu_si128(bytes.as_ptr().add(off).cast::<__m128i>());
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl),
                );
                let mask = (_mm_movemask_epi8(hits) as u32) >> (i - off);
                return if mask != 0 {
                    i + mask.trailing_zeros() as usize
                } else {
                    bytes.len()
                };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && ESCAPE[bytes[i] as usize] == 0 {
        i += 1;
    }
    i
}

/// Append `bytes` to `buf`: short pieces (keys, numbers, most values) with
/// a couple of overlapping word copies instead of a `memcpy` call.
#[inline]
pub fn append(buf: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    buf.reserve(n);
    // SAFETY: `reserve` made room for `n` more bytes after `len`; every load
    // below reads inside `bytes` and every store writes inside
    // `[len, len + n)`, which is then marked initialised.
    unsafe {
        let src = bytes.as_ptr();
        let dst = buf.as_mut_ptr().add(buf.len());
        copy_short(src, dst, n);
        buf.set_len(buf.len() + n);
    }
}

/// Copy `n` bytes from `src` to `dst` (non-overlapping regions).
///
/// # Safety
/// `src` is readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_short(src: *const u8, dst: *mut u8, n: usize) {
    use std::ptr::{read_unaligned, write_unaligned};
    if n >= 8 {
        if n <= 16 {
            let a = read_unaligned(src.cast::<u64>());
            let b = read_unaligned(src.add(n - 8).cast::<u64>());
            write_unaligned(dst.cast::<u64>(), a);
            write_unaligned(dst.add(n - 8).cast::<u64>(), b);
        } else if n <= 32 {
            let a = read_unaligned(src.cast::<[u8; 16]>());
            let b = read_unaligned(src.add(n - 16).cast::<[u8; 16]>());
            write_unaligned(dst.cast::<[u8; 16]>(), a);
            write_unaligned(dst.add(n - 16).cast::<[u8; 16]>(), b);
        } else {
            std::ptr::copy_nonoverlapping(src, dst, n);
        }
    } else if n >= 4 {
        let a = read_unaligned(src.cast::<u32>());
        let b = read_unaligned(src.add(n - 4).cast::<u32>());
        write_unaligned(dst.cast::<u32>(), a);
        write_unaligned(dst.add(n - 4).cast::<u32>(), b);
    } else {
        for i in 0..n {
            *dst.add(i) = *src.add(i);
        }
    }
}

/// Whether any byte of the short text (< 16 bytes) needs escaping.
#[inline(always)]
fn short_needs_escape(bytes: &[u8]) -> bool {
    use std::ptr::read_unaligned;
    let n = bytes.len();
    let p = bytes.as_ptr();
    // SAFETY: each load reads inside `bytes` (overlapping words cover it).
    unsafe {
        if n >= 8 {
            needs_escape(read_unaligned(p.cast::<u64>()))
                || needs_escape(read_unaligned(p.add(n - 8).cast::<u64>()))
        } else if n >= 4 {
            let a = u64::from(read_unaligned(p.cast::<u32>()));
            let b = u64::from(read_unaligned(p.add(n - 4).cast::<u32>()));
            needs_escape(a | (b << 32))
        } else {
            bytes.iter().any(|&b| ESCAPE[b as usize] != 0)
        }
    }
}

/// `"` + escaped text + `"`: `\"`, `\\`, the five short escapes, other control
/// characters as `\u00XX` (lower-case hex); everything else raw UTF-8.
#[inline]
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    // Short text without anything to escape (keys, names, most values):
    // checked and copied a word at a time.
    if n < 16 && !short_needs_escape(bytes) {
        buf.reserve(n + 2);
        // SAFETY: room for `n + 2` bytes was reserved; the loads read inside
        // `bytes`, the stores write inside `[len, len + n + 2)`.
        unsafe {
            let dst = buf.as_mut_ptr().add(buf.len());
            *dst = b'"';
            copy_short(bytes.as_ptr(), dst.add(1), n);
            *dst.add(n + 1) = b'"';
            buf.set_len(buf.len() + n + 2);
        }
        return;
    }
    write_str_long(buf, bytes);
}

#[inline(never)]
fn write_str_long(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    loop {
        let i = copy_clean(buf, bytes, start);
        let Some(&b) = bytes.get(i) else { break };
        write_escape(buf, b);
        start = i + 1;
    }
    buf.push(b'"');
}

/// `\\X` or `\\u00XX` for a byte that needs escaping.
pub(crate) fn write_escape(buf: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let esc = ESCAPE[b as usize];
    if esc == b'u' {
        buf.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 0xf) as usize],
        ]);
    } else {
        buf.extend_from_slice(&[b'\\', esc]);
    }
}

/// Append `bytes[start..]` up to the first byte that needs escaping; returns
/// its index (or `len`). On x86_64 the scan and the copy are one pass: each
/// 16-byte block is stored as it is checked.
#[inline]
fn copy_clean(buf: &mut Vec<u8>, bytes: &[u8], start: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8, _mm_storeu_si128,
        };
        let n = bytes.len();
        // Room for the rest of the text plus one block of slack: a block is
        // stored whole even when only part of it is kept.
        buf.reserve(n - start + 16);
        let mut i = start;
        // SAFETY: loads read 16 bytes inside `bytes` (i + 16 <= n); stores
        // write 16 bytes at `out`, which stays within `len + (i - start) +
        // 16 <= len + (n - start) + 16` bytes of the reserved capacity; only
        // the bytes copied from clean text are marked initialised.
        unsafe {
            let base = buf.as_mut_ptr().add(buf.len());
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctl = _mm_set1_epi8(0x1f);
            let mut hit = n;
            while i + 16 <= n {
                let x = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                _mm_storeu_si128(base.add(i - start).cast::<__m128i>(), x);
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl),
                );
                let mask = _mm_movemask_epi8(hits);
                if mask != 0 {
                    hit = i + mask.trailing_zeros() as usize;
                    break;
                }
                i += 16;
            }
            if hit == n && i < n {
                // The last < 16 bytes.
                hit = next_escape(bytes, i);
                copy_short(bytes.as_ptr().add(i), base.add(i - start), hit - i);
            }
            buf.set_len(buf.len() + (hit - start));
            hit
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let i = next_escape(bytes, start);
        append(buf, &bytes[start..i]);
        i
    }
}

#[inline]
pub fn write_i64(buf: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    append(buf, b.format(v).as_bytes());
}

pub fn write_u64(buf: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    append(buf, b.format(v).as_bytes());
}

/// `repr(float)` for a finite value: the shortest round-tripping digits,
/// fixed notation when the decimal exponent is in (-4, 16], scientific
/// (`1e-05`, `1.5e+16`) otherwise, and `.0` on integral fixed values.
pub fn write_f64(buf: &mut Vec<u8>, v: f64) {
    debug_assert!(v.is_finite());
    if write_f64_short(buf, v) {
        return;
    }
    write_f64_ryu(buf, v);
}

/// Fractional digits `write_f64_short` tries before leaving a value to ryu.
const SHORT_MAX_FRACTION: usize = 8;

/// 10^k for each `k` that `write_f64_short` tries (all exact in an f64).
const POW10: [f64; SHORT_MAX_FRACTION + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// `repr(v)` for the values traces mostly hold (`0.2`, `12.345`,
/// `0.00123`): a magnitude in [1e-4, 1e15) with a decimal form of at most 15
/// significant digits and [`SHORT_MAX_FRACTION`] fractional ones. Writes it
/// and returns true; false (nothing written) for anything else.
///
/// The fewest fractional digits `k` for which the nearest integer `m` to
/// `v * 10^k` satisfies `m / 10^k == v` give Python's repr: the division of
/// two exact f64s is correctly rounded, so `m * 10^-k` reads back as `v`; no
/// other decimal of at most 15 significant digits does (they are more than an
/// ulp apart, which is why `m` stays below 1e15); and with fewer fractional
/// digits none reads back as `v`, so none is shorter. The rounding of `v *
/// 10^k` moves it by far less than the 0.5 that would change `m`. This is ~10x
/// fewer instructions than ryu's general algorithm on such values.
#[inline]
fn write_f64_short(buf: &mut Vec<u8>, v: f64) -> bool {
    let a = v.abs();
    if !(1e-4..1e15).contains(&a) {
        return false;
    }
    for (k, &p) in POW10.iter().enumerate() {
        let scaled = a * p;
        if scaled >= 1e15 {
            return false;
        }
        // Round to nearest (`scaled` is positive and below 1e15, where this
        // is exact: no call into libm's `round`).
        let m = (scaled + 0.5) as u64;
        if m as f64 / p != a {
            continue;
        }
        let pk = p as u64;
        let (int, frac) = (m / pk, m % pk);
        let mut ib = itoa::Buffer::new();
        if v < 0.0 {
            buf.push(b'-');
        }
        append(buf, ib.format(int).as_bytes());
        buf.push(b'.');
        if k == 0 {
            buf.push(b'0');
        } else {
            let digits = ib.format(frac).as_bytes();
            // Leading zeros of the fraction (`0.00123`: frac 123, k 5).
            buf.extend(std::iter::repeat_n(b'0', k - digits.len()));
            append(buf, digits);
        }
        return true;
    }
    false
}

/// `write_f64` for any finite value, from ryu's shortest digits.
fn write_f64_ryu(buf: &mut Vec<u8>, v: f64) {
    let mut rb = ryu::Buffer::new();
    let text = rb.format_finite(v);
    // Fast path: where both use fixed notation, ryu's text is Python's repr.
    let a = v.abs();
    if (1e-4..1e16).contains(&a) && !text.as_bytes().contains(&b'e') {
        append(buf, text.as_bytes());
        return;
    }
    let (neg, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // Decompose ryu's output into significant digits and a decimal exponent
    // `decpt` such that value = 0.DIGITS * 10^decpt.
    let (mantissa, exp) = match text.find('e') {
        Some(p) => (&text[..p], text[p + 1..].parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, ""),
    };
    // At most 17 significant digits plus ryu's padding zeros: 40 is ample.
    let mut store = [0u8; 40];
    let (ib, fb) = (int_part.as_bytes(), frac_part.as_bytes());
    let total = (ib.len() + fb.len()).min(store.len());
    store[..ib.len().min(total)].copy_from_slice(&ib[..ib.len().min(total)]);
    if total > ib.len() {
        store[ib.len()..total].copy_from_slice(&fb[..total - ib.len()]);
    }
    let mut digits: &[u8] = &store[..total];
    let mut decpt = int_part.len() as i32 + exp;
    // Strip leading zeros (each shifts the decimal point left).
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    if lead == digits.len() {
        // Zero.
        buf.extend_from_slice(if neg { b"-0.0" } else { b"0.0" });
        return;
    }
    digits = &digits[lead..];
    decpt -= lead as i32;
    while let [rest @ .., b'0'] = digits {
        digits = rest;
    }
    if neg {
        buf.push(b'-');
    }
    let n = digits.len() as i32;
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            buf.extend_from_slice(b"0.");
            buf.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
            buf.extend_from_slice(digits);
        } else if decpt >= n {
            buf.extend_from_slice(digits);
            buf.extend(std::iter::repeat_n(b'0', (decpt - n) as usize));
            buf.extend_from_slice(b".0");
        } else {
            buf.extend_from_slice(&digits[..decpt as usize]);
            buf.push(b'.');
            buf.extend_from_slice(&digits[decpt as usize..]);
        }
    } else {
        buf.push(digits[0]);
        if n > 1 {
            buf.push(b'.');
            buf.extend_from_slice(&digits[1..]);
        }
        let e = decpt - 1;
        buf.push(b'e');
        buf.push(if e < 0 { b'-' } else { b'+' });
        let abs = e.unsigned_abs();
        if abs < 10 {
            buf.push(b'0');
        }
        let mut ib = itoa::Buffer::new();
        buf.extend_from_slice(ib.format(abs).as_bytes());
    }
}

/// Whether `s` is a JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let run = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = run(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if run(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if run(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut b = Vec::new();
        write_f64(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    fn s(v: &str) -> String {
        let mut b = Vec::new();
        write_str(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn floats_match_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.125, "123456789.125"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.5e-5, "2.5e-05"),
            (12.34, "12.34"),
            (1234567890123456.7, "1234567890123456.8"),
            (0.3, "0.3"),
            (100.0, "100.0"),
        ];
        for (v, want) in cases {
            assert_eq!(f(*v), *want, "repr({v:e})");
        }
    }

    fn ryu_text(v: f64) -> String {
        let mut b = Vec::new();
        write_f64_ryu(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    /// The short-decimal path against the general one (itself checked
    /// against Python's repr above and in tests/test_payload.py): short
    /// decimals of every length and scale, their neighbours one ulp away,
    /// and random bit patterns.
    #[test]
    fn short_path_matches_ryu_path() {
        let mut rng = fastrand::Rng::with_seed(7);
        let check = |v: f64| {
            let mut b = Vec::new();
            if write_f64_short(&mut b, v) {
                assert_eq!(String::from_utf8(b).unwrap(), ryu_text(v), "repr({v:e})");
            }
        };
        let mut taken = 0;
        for _ in 0..400_000 {
            let digits = rng.u32(1..=16);
            let m = rng.u64(0..10u64.pow(digits));
            let k = rng.usize(0..=18);
            let v: f64 = format!("{m}e-{k}").parse().unwrap();
            for x in [
                v,
                -v,
                f64::from_bits(v.to_bits() + 1),
                f64::from_bits(v.to_bits().saturating_sub(1)),
            ] {
                check(x);
            }
            let mut b = Vec::new();
            taken += usize::from(write_f64_short(&mut b, v));
        }
        // The fast path really is taken for most short decimals.
        assert!(taken > 100_000, "short path taken {taken} times");
        for _ in 0..400_000 {
            let v = f64::from_bits(rng.u64(..));
            if v.is_finite() {
                check(v);
            }
        }
        for v in [
            1e-4,
            0.0001,
            1e15,
            999999999999999.0,
            99999999999999.9,
            0.1 + 0.2,
            0.82,
            1.0,
            10.0,
            0.5,
        ] {
            check(v);
        }
    }

    /// Byte-at-a-time reference for the word-at-a-time scanner.
    fn reference(v: &str) -> String {
        let mut out = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn word_scanner_matches_reference_at_every_offset() {
        let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '😀', ' ', '~', '\u{7f}'];
        for len in 0..40 {
            for pos in 0..len {
                for sp in specials {
                    let text: String = (0..len).map(|i| if i == pos { sp } else { 'a' }).collect();
                    assert_eq!(s(&text), reference(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn two_escapes_at_every_pair_of_offsets() {
        for len in 0..36 {
            for p in 0..len {
                for q in p..len {
                    let text: String = (0..len)
                        .map(|i| {
                            if i == p {
                                '"'
                            } else if i == q {
                                '\n'
                            } else {
                                'é'
                            }
                        })
                        .collect();
                    assert_eq!(s(&text), reference(&text), "{text:?}");
                    let ascii: String = (0..len)
                        .map(|i| {
                            if i == p {
                                '\u{1}'
                            } else if i == q {
                                '\\'
                            } else {
                                'x'
                            }
                        })
                        .collect();
                    assert_eq!(s(&ascii), reference(&ascii), "{ascii:?}");
                }
            }
        }
    }

    #[test]
    fn append_copies_every_length() {
        let src: Vec<u8> = (0..100u8).collect();
        for n in 0..100 {
            let mut buf = vec![7u8];
            append(&mut buf, &src[..n]);
            assert_eq!(&buf[1..], &src[..n]);
        }
    }

    #[test]
    fn strings_escape_like_json_dumps() {
        assert_eq!(s("plain"), "\"plain\"");
        assert_eq!(s("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(s("\n\r\t\u{8}\u{c}"), "\"\\n\\r\\t\\b\\f\"");
        assert_eq!(s("\u{1}\u{1f}"), "\"\\u0001\\u001f\"");
        assert_eq!(s("é ☃ 😀 \u{7f}"), "\"é ☃ 😀 \u{7f}\"");
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-0", "12", "1.5", "1E+2", "1e-7", "-0.000001", "10.0E3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "NaN", "Infinity", "1,5", "1 ", "1e+", "+1", "1\"x",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
