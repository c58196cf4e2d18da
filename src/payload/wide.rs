//! JSON text of a string held as fixed-width code points: CPython's 1-, 2-
//! and 4-byte `str` forms (latin-1, UCS-2, UCS-4), written as UTF-8 in one
//! pass.
//!
//! The output is exactly what [`encode::write_str`] writes for the same text
//! in UTF-8. Going through `PyUnicode_AsUTF8AndSize` instead would make
//! CPython encode the text into a new buffer, cache that copy inside the
//! `str` for the rest of its life (a second copy of every non-ASCII text a
//! trace holds, kept by the caller's objects), and leave us to scan and copy
//! it again.
//!
//! [`encode::write_str`]: super::encode::write_str

use super::encode::{escape_bits, write_escape, ESCAPE};

/// One code unit of a fixed-width form.
pub trait CodeUnit: Copy {
    /// The most UTF-8 bytes one unit becomes (escapes aside).
    const MAX_UTF8: usize;
    fn code_point(self) -> u32;
    /// How many units from `units[i]` on are ASCII that needs no escaping
    /// (0 is always correct: the caller handles the rest one by one); they
    /// are copied to `out` as bytes, and bytes after them may be written too.
    ///
    /// # Safety
    /// `out` is writable for `(units.len() - i) * Self::MAX_UTF8` bytes.
    #[inline]
    unsafe fn copy_plain_ascii(_units: &[Self], _i: usize, _out: *mut u8) -> usize {
        0
    }
}

impl CodeUnit for u8 {
    const MAX_UTF8: usize = 2;
    #[inline(always)]
    fn code_point(self) -> u32 {
        u32::from(self)
    }

    #[inline]
    unsafe fn copy_plain_ascii(units: &[u8], i: usize, out: *mut u8) -> usize {
        // 8 bytes per step; a word is stored whole, the count returned covers
        // the plain bytes only.
        let mut n = 0;
        while let Some(chunk) = units.get(i + n..i + n + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            std::ptr::write_unaligned(out.add(n).cast::<u64>(), w);
            let bad = (w & 0x8080_8080_8080_8080) | escape_bits(w);
            if bad != 0 {
                return n + (bad.trailing_zeros() / 8) as usize;
            }
            n += 8;
        }
        n
    }
}

impl CodeUnit for u16 {
    const MAX_UTF8: usize = 3;
    #[inline(always)]
    fn code_point(self) -> u32 {
        u32::from(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn copy_plain_ascii(units: &[u16], i: usize, out: *mut u8) -> usize {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_packus_epi16, _mm_set1_epi8, _mm_storel_epi64,
        };
        // SSE2 (x86_64 baseline), 8 units per step, narrowed to bytes with
        // unsigned saturation: a unit from 0x80 to 0x7fff becomes a byte with
        // its high bit set, one from 0x8000 up (negative as i16) becomes 0,
        // a control character; either way it is not plain. The 8 bytes are
        // stored whole; the count returned covers the plain ones only.
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let ctl = _mm_set1_epi8(0x1f);
        let mut n = 0;
        while i + n + 8 <= units.len() {
            let x = _mm_loadu_si128(units.as_ptr().add(i + n).cast::<__m128i>());
            let b = _mm_packus_epi16(x, x);
            let escapes = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, backslash)),
                _mm_cmpeq_epi8(_mm_max_epu8(b, ctl), ctl),
            );
            _mm_storel_epi64(out.add(n).cast::<__m128i>(), b);
            let bad = (_mm_movemask_epi8(b) | _mm_movemask_epi8(escapes)) & 0xff;
            if bad != 0 {
                return n + bad.trailing_zeros() as usize;
            }
            n += 8;
        }
        n
    }
}

impl CodeUnit for u32 {
    const MAX_UTF8: usize = 4;
    #[inline(always)]
    fn code_point(self) -> u32 {
        self
    }
}

/// Append `"` + the escaped UTF-8 of `units` + `"`, as
/// [`write_str`](super::encode::write_str) does for the same text. Returns
/// false, with `buf` as it was, when the text holds a surrogate code point
/// (a lone surrogate: not valid Unicode, so it has no UTF-8).
pub fn write_units<T: CodeUnit>(buf: &mut Vec<u8>, units: &[T]) -> bool {
    let start = buf.len();
    // Invariant: room for every unit not yet written at `T::MAX_UTF8` bytes
    // each, plus the closing quote. Only an escape (up to 6 bytes) can
    // write more than its share, and it reserves again first.
    buf.reserve(units.len() * T::MAX_UTF8 + 2);
    buf.push(b'"');
    let mut len = buf.len();
    let mut i = 0;
    while i < units.len() {
        // SAFETY: `len` is within the reserved capacity and the invariant
        // leaves room for `(units.len() - i) * MAX_UTF8` bytes at `len`
        // (what `copy_plain_ascii` may write; one unit takes at most
        // `MAX_UTF8`); only bytes written as output are marked initialised.
        unsafe {
            let out = buf.as_mut_ptr().add(len);
            let run = T::copy_plain_ascii(units, i, out);
            if run > 0 {
                len += run;
                i += run;
                continue;
            }
            let c = units[i].code_point();
            i += 1;
            if c < 0x80 {
                let b = c as u8;
                if ESCAPE[b as usize] == 0 {
                    *out = b;
                    len += 1;
                } else {
                    buf.set_len(len);
                    buf.reserve((units.len() - i) * T::MAX_UTF8 + 7);
                    write_escape(buf, b);
                    len = buf.len();
                }
            } else if c < 0x800 {
                *out = 0xc0 | (c >> 6) as u8;
                *out.add(1) = 0x80 | (c & 0x3f) as u8;
                len += 2;
            } else if c < 0x10000 {
                if (0xd800..0xe000).contains(&c) {
                    buf.truncate(start);
                    return false;
                }
                *out = 0xe0 | (c >> 12) as u8;
                *out.add(1) = 0x80 | ((c >> 6) & 0x3f) as u8;
                *out.add(2) = 0x80 | (c & 0x3f) as u8;
                len += 3;
            } else {
                *out = 0xf0 | (c >> 18) as u8;
                *out.add(1) = 0x80 | ((c >> 12) & 0x3f) as u8;
                *out.add(2) = 0x80 | ((c >> 6) & 0x3f) as u8;
                *out.add(3) = 0x80 | (c & 0x3f) as u8;
                len += 4;
            }
        }
    }
    // SAFETY: every byte below `len` was written above.
    unsafe { buf.set_len(len) };
    buf.push(b'"');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::encode::write_str;

    fn utf8(s: &str) -> Vec<u8> {
        let mut b = b"prefix".to_vec();
        write_str(&mut b, s);
        b
    }

    fn via<T: CodeUnit>(units: &[T]) -> Option<Vec<u8>> {
        let mut b = b"prefix".to_vec();
        let ok = write_units(&mut b, units);
        if !ok {
            assert_eq!(b, b"prefix", "a refused text leaves the buffer as it was");
        }
        ok.then_some(b)
    }

    /// Every text in the widest form it fits, as CPython would hold it.
    fn check(s: &str) {
        let want = utf8(s);
        let ucs4: Vec<u32> = s.chars().map(u32::from).collect();
        assert_eq!(via(&ucs4).as_deref(), Some(&want[..]), "ucs4 {s:?}");
        if ucs4.iter().all(|&c| c < 0x10000) {
            let ucs2: Vec<u16> = ucs4.iter().map(|&c| c as u16).collect();
            assert_eq!(via(&ucs2).as_deref(), Some(&want[..]), "ucs2 {s:?}");
        }
        if ucs4.iter().all(|&c| c < 0x100) {
            let latin1: Vec<u8> = ucs4.iter().map(|&c| c as u8).collect();
            assert_eq!(via(&latin1).as_deref(), Some(&want[..]), "latin1 {s:?}");
        }
    }

    #[test]
    fn every_form_writes_what_the_utf8_writer_writes() {
        let mut controls = String::new();
        for c in 0u8..0x20 {
            controls.push(char::from(c));
        }
        let long_ascii = "plain ascii text that runs past several blocks ".repeat(5);
        for s in [
            "",
            "a",
            "\"",
            "\\",
            controls.as_str(),
            "naïve café résumé",
            "ÿ\u{80}\u{7f}",
            "em — dash “quoted” \u{2028}\u{2029}",
            "日本語のテキスト",
            "astral 😀 𝄞 and back",
            long_ascii.as_str(),
            &format!("{long_ascii}\"{long_ascii}\n{long_ascii}é"),
            &format!("é{long_ascii}—{long_ascii}😀"),
            "12345678\"12345678",
            "1234567\u{1}",
        ] {
            check(s);
        }
        // Every code point below 0x800 and a sample above, one at a time and
        // inside an 8-unit block, at each position.
        for c in (0u32..0x800).chain((0x800..0x11_0000).step_by(997)) {
            let Some(ch) = char::from_u32(c) else { continue };
            for pos in 0..9 {
                let mut s = "x".repeat(pos);
                s.push(ch);
                s.push_str("yyyyyyyy");
                check(&s);
            }
        }
    }

    #[test]
    fn a_lone_surrogate_is_refused() {
        for c in [0xd800u32, 0xdbff, 0xdc00, 0xdfff] {
            assert!(via(&[b'a' as u16, c as u16, b'b' as u16]).is_none());
            assert!(via(&[b'a' as u32, c, b'b' as u32]).is_none());
            let mut long = vec![b'a' as u16; 20];
            long.push(c as u16);
            assert!(via(&long).is_none());
        }
        assert!(via(&[0xd7ffu16, 0xe000]).is_some());
    }
}
