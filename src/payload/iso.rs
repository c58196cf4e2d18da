//! Whether a text is a `current_datetime` the anchor SDK accepts: after
//! Python's `str.strip()` and replacing every `Z` with `+00:00`, Python's
//! `datetime.fromisoformat` parses it, to a year from 1900 to 2100.
//!
//! `fromisoformat`'s grammar is the running interpreter's: up to Python 3.10
//! it reads only what `isoformat()` writes (`YYYY-MM-DD[*HH[:MM[:SS[.fff[fff]]]][+HH:MM[:SS[.ffffff]]]]`,
//! any one character as `*`); from 3.11 on it also reads the basic format
//! (`YYYYMMDD`, `HHMMSS`), ISO week dates, `,` before a fraction of any
//! length and offsets of any shape. Both are implemented here as CPython's C
//! parser reads its UTF-8 bytes, quirks included (a byte past the end reads
//! as NUL, so an embedded NUL ends the text for some checks), so the answer
//! is the same without calling into Python.

/// Which `fromisoformat` to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    /// Python 3.9 and 3.10.
    Legacy,
    /// Python 3.11 and later.
    Modern,
}

impl Grammar {
    pub fn for_python(minor: u8) -> Self {
        if minor >= 11 {
            Grammar::Modern
        } else {
            Grammar::Legacy
        }
    }
}

/// Earliest and latest year the anchor accepts.
const YEARS: std::ops::RangeInclusive<i64> = 1900..=2100;

/// `str.isspace()` for one code point (what `str.strip()` removes).
pub fn py_isspace(c: u32) -> bool {
    matches!(
        c,
        0x09..=0x0d | 0x1c..=0x20 | 0x85 | 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000
    )
}

fn is_surrogate(c: u32) -> bool {
    (0xd800..0xe000).contains(&c)
}

/// The anchor's `validate_iso_datetime` on the code points of a str.
pub fn anchor_accepts(text: &[u32], grammar: Grammar) -> bool {
    let start = text.iter().position(|&c| !py_isspace(c));
    let Some(start) = start else { return false };
    let end = text
        .iter()
        .rposition(|&c| !py_isspace(c))
        .map_or(start, |e| e + 1);
    let mut cps: Vec<u32> = Vec::with_capacity(end - start + 8);
    for &c in &text[start..end] {
        if c == u32::from(b'Z') {
            cps.extend("+00:00".bytes().map(u32::from));
        } else {
            cps.push(c);
        }
    }
    // A lone surrogate is allowed in one place, the date/time separator
    // (CPython puts a `T` there); anywhere else the text cannot be encoded.
    match grammar {
        Grammar::Modern => {
            if cps.len() < 7 {
                return false;
            }
            if let Some(&pos) = [7, 8, 10]
                .iter()
                .take_while(|&&p| p <= cps.len())
                .find(|&&p| cps.get(p).is_some_and(|&c| is_surrogate(c)))
            {
                cps[pos] = u32::from(b'T');
            }
        }
        Grammar::Legacy => {
            if cps.len() > 10 && is_surrogate(cps[10]) {
                cps[10] = u32::from(b'T');
            }
        }
    }
    let mut utf8 = Vec::with_capacity(cps.len() + 4);
    for c in cps {
        let Some(ch) = char::from_u32(c) else { return false };
        let mut b = [0u8; 4];
        utf8.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
    }
    parse(&utf8, grammar).is_some_and(|year| YEARS.contains(&year))
}

/// `anchor_accepts` for a text with no lone surrogate.
pub fn anchor_accepts_str(text: &str, grammar: Grammar) -> bool {
    // The usual case, ASCII with at most a final `Z`, needs no code points.
    if text.is_ascii() {
        let t = text.trim_matches(|c: char| py_isspace(c as u32)).as_bytes();
        let Some((&last, head)) = t.split_last() else {
            return false;
        };
        if !head.contains(&b'Z') {
            let replaced;
            let v = if last == b'Z' {
                replaced = [head, b"+00:00"].concat();
                &replaced[..]
            } else {
                t
            };
            if grammar == Grammar::Modern && v.len() < 7 {
                return false;
            }
            return parse(v, grammar).is_some_and(|y| YEARS.contains(&y));
        }
    }
    let cps: Vec<u32> = text.chars().map(u32::from).collect();
    anchor_accepts(&cps, grammar)
}

/// The byte at `i`, NUL past the end (C's view of a NUL-terminated buffer).
#[inline]
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// `n` digits at `*p` (advancing it), or `None`.
fn digits(s: &[u8], p: &mut usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for _ in 0..n {
        let c = at(s, *p);
        if !is_digit(c) {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
        *p += 1;
    }
    Some(v)
}

/// The year of the datetime `fromisoformat` makes of `s`, or `None` when it
/// raises.
pub fn parse(s: &[u8], grammar: Grammar) -> Option<i64> {
    let (sep, date) = match grammar {
        Grammar::Legacy => (10, legacy_date(s)?),
        Grammar::Modern => {
            let sep = separator_at(s);
            (sep, modern_date(s, sep)?)
        }
    };
    let mut t = Time::default();
    if s.len() > sep {
        // Skip the separator, one UTF-8 character whatever it is.
        let lead = at(s, sep);
        let skip = if lead & 0x80 == 0 {
            1
        } else {
            match lead & 0xf0 {
                0xe0 => 3,
                0xf0 => 4,
                _ => 2,
            }
        };
        let from = sep + skip;
        t = time(s, from.min(s.len()), s.len().max(from), grammar)?;
    }
    let (year, month, day) = date;
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    if t.hour > 23 || t.minute > 59 || t.second > 59 || t.micro > 999_999 {
        return None;
    }
    if let Some(offset_us) = t.offset_us {
        // A `timezone` is strictly within a day either way.
        if offset_us.abs() >= 86_400_000_000 {
            return None;
        }
    }
    Some(year)
}

#[derive(Default)]
struct Time {
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
    offset_us: Option<i64>,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD` (up to 3.10).
fn legacy_date(s: &[u8]) -> Option<(i64, i64, i64)> {
    let mut p = 0;
    let y = digits(s, &mut p, 4)?;
    if at(s, p) != b'-' {
        return None;
    }
    p += 1;
    let m = digits(s, &mut p, 2)?;
    if at(s, p) != b'-' {
        return None;
    }
    p += 1;
    let d = digits(s, &mut p, 2)?;
    Some((y, m, d))
}

/// Where the date ends, from its shape (3.11+): `YYYY-MM-DD` 10,
/// `YYYYMMDD` 8, `YYYY-Www` 8, `YYYYWww` 7, `YYYY-Www-D` 10, `YYYYWwwD` 8.
fn separator_at(s: &[u8]) -> usize {
    let len = s.len();
    if len == 7 {
        return 7;
    }
    if at(s, 4) == b'-' {
        if at(s, 5) != b'W' {
            return 10;
        }
        if len < 8 {
            // Not reachable (the text has at least 7 characters), kept as CPython.
            return usize::MAX;
        }
        if len > 8 && at(s, 8) == b'-' {
            if len == 9 {
                return usize::MAX;
            }
            if len > 10 && is_digit(at(s, 10)) {
                return 8;
            }
            return 10;
        }
        return 8;
    }
    if at(s, 4) == b'W' {
        let mut idx = 7;
        while idx < len && is_digit(at(s, idx)) {
            idx += 1;
        }
        if idx < 9 {
            return idx;
        }
        return if idx % 2 == 0 { 7 } else { 8 };
    }
    8
}

/// The date of a 3.11+ text whose date part ends at `sep`.
fn modern_date(s: &[u8], sep: usize) -> Option<(i64, i64, i64)> {
    if sep == usize::MAX {
        return None;
    }
    let mut p = 0;
    let year = digits(s, &mut p, 4)?;
    let dashed = at(s, p) == b'-';
    if dashed {
        p += 1;
    }
    if at(s, p) == b'W' {
        p += 1;
        let week = digits(s, &mut p, 2)?;
        let day = if p < sep {
            if dashed {
                if at(s, p) != b'-' {
                    return None;
                }
                p += 1;
            }
            digits(s, &mut p, 1)?
        } else {
            1
        };
        return iso_week_date(year, week, day);
    }
    let month = digits(s, &mut p, 2)?;
    if dashed {
        if at(s, p) != b'-' {
            return None;
        }
        p += 1;
    }
    let day = digits(s, &mut p, 2)?;
    Some((year, month, day))
}

/// Days since 0001-01-01 (day 1), proleptic Gregorian.
fn ordinal(y: i64, m: i64, d: i64) -> i64 {
    let py = y - 1;
    let before_year = py * 365 + py / 4 - py / 100 + py / 400;
    let before_month: i64 = (1..m).map(|mm| days_in_month(y, mm)).sum();
    before_year + before_month + d
}

fn from_ordinal(n: i64) -> (i64, i64, i64) {
    // Walk from an estimate; only the year matters downstream, but be exact.
    let mut y = (n * 400) / 146_097 + 1;
    while ordinal(y, 1, 1) > n {
        y -= 1;
    }
    while ordinal(y + 1, 1, 1) <= n {
        y += 1;
    }
    let mut m = 1;
    while m < 12 && ordinal(y, m + 1, 1) <= n {
        m += 1;
    }
    (y, m, n - ordinal(y, m, 1) + 1)
}

/// An ISO week date as a calendar date (`date.fromisocalendar`'s rules).
fn iso_week_date(year: i64, week: i64, day: i64) -> Option<(i64, i64, i64)> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    if week <= 0 || week >= 53 {
        let first_weekday = ordinal(year, 1, 1) % 7;
        let long_year = first_weekday == 4 || (first_weekday == 3 && is_leap(year));
        if !(week == 53 && long_year) {
            return None;
        }
    }
    if !(1..=7).contains(&day) {
        return None;
    }
    // Monday of week 1: the week holding the year's first Thursday.
    let jan1 = ordinal(year, 1, 1);
    let weekday = (jan1 + 6) % 7; // Monday 0
    let mut monday = jan1 - weekday;
    if weekday > 3 {
        monday += 7;
    }
    Some(from_ordinal(monday + (week - 1) * 7 + day - 1))
}

/// The time (and offset) in `s[from..end]`.
fn time(s: &[u8], from: usize, end: usize, grammar: Grammar) -> Option<Time> {
    // The offset starts at the first sign (3.11+: or `Z`) from the start
    // of the time; CPython looks at the first byte even of an empty time.
    let mut tz = from;
    loop {
        let c = at(s, tz);
        if c == b'+' || c == b'-' || (grammar == Grammar::Modern && c == b'Z') {
            break;
        }
        tz += 1;
        if tz >= end {
            break;
        }
    }
    let (mut t, more) = hh_mm_ss_ff(s, from, tz, grammar)?;
    if tz == end {
        return (!more).then_some(t);
    }
    if at(s, tz) == b'Z' {
        t.offset_us = Some(0);
        return (at(s, tz + 1) == 0).then_some(t);
    }
    if grammar == Grammar::Legacy && ![6, 9, 16].contains(&(end - tz)) {
        return None;
    }
    let sign = if at(s, tz) == b'-' { -1 } else { 1 };
    let (o, more) = hh_mm_ss_ff(s, tz + 1, end, grammar)?;
    if more {
        return None;
    }
    let seconds = sign * (o.hour * 3600 + o.minute * 60 + o.second);
    t.offset_us = Some(if seconds == 0 {
        0
    } else {
        seconds * 1_000_000 + sign * o.micro
    });
    Some(t)
}

/// `HH[:MM[:SS[.f...]]]` in `s[from..end]`; also whether text follows (the
/// byte where parsing stopped is not NUL).
fn hh_mm_ss_ff(s: &[u8], from: usize, end: usize, grammar: Grammar) -> Option<(Time, bool)> {
    let mut vals = [0i64; 3];
    let mut p = from;
    let mut has_separator = true;
    let with = |vals: [i64; 3], micro: i64| Time {
        hour: vals[0],
        minute: vals[1],
        second: vals[2],
        micro,
        offset_us: None,
    };
    for i in 0..3 {
        vals[i] = digits(s, &mut p, 2)?;
        let c = at(s, p);
        p += 1;
        if grammar == Grammar::Modern && i == 0 {
            has_separator = c == b':';
        }
        if p >= end {
            return Some((with(vals, 0), c != 0));
        }
        match grammar {
            Grammar::Legacy => match c {
                b':' => continue,
                b'.' => break,
                _ => return None,
            },
            Grammar::Modern => {
                if has_separator && c == b':' {
                    continue;
                }
                if c == b'.' || c == b',' {
                    break;
                }
                if has_separator {
                    return None;
                }
                p -= 1;
            }
        }
    }
    // The fraction runs to `end`.
    let remains = end - p;
    let micro = match grammar {
        Grammar::Legacy => {
            if remains != 3 && remains != 6 {
                return None;
            }
            let f = digits(s, &mut p, remains)?;
            if remains == 3 {
                f * 1000
            } else {
                f
            }
        }
        Grammar::Modern => {
            let n = remains.min(6);
            let f = digits(s, &mut p, n)?;
            // Digits past the sixth are dropped.
            while is_digit(at(s, p)) {
                p += 1;
            }
            f * 10i64.pow((6 - n) as u32)
        }
    };
    Some((with(vals, micro), at(s, p) != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, g: Grammar) -> bool {
        let by_str = anchor_accepts_str(s, g);
        let cps: Vec<u32> = s.chars().map(u32::from).collect();
        assert_eq!(by_str, anchor_accepts(&cps, g), "{s:?}");
        by_str
    }

    #[test]
    fn common_shapes_both_grammars() {
        for g in [Grammar::Legacy, Grammar::Modern] {
            assert!(ok("2026-11-22T04:06:00.123456Z", g));
            assert!(ok("2026-11-22T04:06:00+02:00", g));
            assert!(ok(" 2026-11-22 ", g));
            assert!(ok("2026-11-22 04:06", g));
            assert!(ok("2026-11-22T04", g));
            assert!(ok("2024-02-29T00:00:00Z", g));
            assert!(!ok("1899-12-31T00:00:00", g));
            assert!(!ok("2101-01-01T00:00:00Z", g));
            assert!(!ok("2026-02-30T00:00:00Z", g));
            assert!(!ok("2026-11-22T25:00:00Z", g));
            assert!(!ok("2026-11-22T04:06:00+24:00", g));
            assert!(!ok("not a date", g));
            assert!(!ok("", g));
            assert!(!ok("\u{1c}", g));
        }
    }

    #[test]
    fn grammars_differ_as_python_did() {
        for s in [
            "20261122",
            "2026-W47-3",
            "2026-11-22T04:06:00.1",
            "2026-11-22T040600",
            "2026-11-22T04:06+02",
        ] {
            assert!(ok(s, Grammar::Modern), "{s}");
            assert!(!ok(s, Grammar::Legacy), "{s}");
        }
        // Week 53 exists only in long ISO years (2020 yes, 2021 no).
        assert!(ok("2020-W53-7", Grammar::Modern));
        assert!(!ok("2021-W53-1", Grammar::Modern));
        // 1900-W01-1 is 1900-01-01, 1900-W01 of year 1899's... stays in range.
        assert!(ok("1900-W02", Grammar::Modern));
        assert!(!ok("2101-W01", Grammar::Modern));
    }

    #[test]
    fn a_lone_surrogate_only_as_the_separator() {
        let mut cps: Vec<u32> = "2026-11-22T04:06".chars().map(u32::from).collect();
        cps[10] = 0xdc80;
        assert!(anchor_accepts(&cps, Grammar::Legacy));
        assert!(anchor_accepts(&cps, Grammar::Modern));
        cps[12] = 0xdc80;
        assert!(!anchor_accepts(&cps, Grammar::Modern));
    }

    #[test]
    fn python_whitespace() {
        assert!(py_isspace(0x1f) && py_isspace(0x85) && py_isspace(0x3000));
        assert!(!py_isspace(0x200b) && !py_isspace(0x180e));
    }
}
