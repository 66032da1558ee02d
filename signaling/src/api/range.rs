//! HTTP range requests (RFC 9110 §14) for the media endpoints: what to send for a `Range` and
//! an `If-Range` given the representation's length and strong entity tag. Pure.
//!
//! One range of `bytes` is served (`a-b`, `a-`, `-n`); a `Range` in another unit, or with
//! several ranges, is ignored (the whole representation is sent, as RFC 9110 allows); an
//! `If-Range` that is not exactly the current entity tag (a weak tag, a date: this server sends
//! no `Last-Modified`) makes the `Range` ignored too. A malformed `bytes=` range is an error;
//! one that starts at or beyond the end (or `-0`, or any range of an empty representation) is
//! unsatisfiable (416).

use std::ops::Range;

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole representation.
    Full,
    /// 206 with these bytes (`start..end`, non-empty, within the length).
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The plan for a request with these `Range` and `If-Range` values (`None`: absent), for a
/// representation of `len` bytes whose entity tag is `etag` (quoted, as sent). `Err` says what
/// is wrong with a malformed `bytes=` range.
pub fn plan(len: u64, range: Option<&[u8]>, if_range: Option<&[u8]>, etag: &str) -> Result<Plan, &'static str> {
    let Some(range) = range else { return Ok(Plan::Full) };
    if let Some(condition) = if_range
        && condition.trim_ascii() != etag.as_bytes()
    {
        return Ok(Plan::Full);
    }
    let range = std::str::from_utf8(range).map_err(|_| "the Range header is not text")?.trim();
    let Some((unit, set)) = range.split_once('=') else { return Err("Range must be bytes=START-END") };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(Plan::Full);
    }
    if set.contains(',') {
        return Ok(Plan::Full);
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Err("Range must be bytes=START-END") };
    let number = |s: &str| -> Result<Option<u64>, &'static str> {
        if s.is_empty() {
            return Ok(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Range positions are decimal numbers");
        }
        // Beyond u64: further than any representation's end.
        Ok(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let plan = match (number(first)?, number(last)?) {
        (None, None) => return Err("Range must name a start or a suffix length"),
        (Some(a), Some(b)) if b < a => return Err("Range ends before it starts"),
        (Some(a), _) if a >= len => Plan::Unsatisfiable,
        (Some(a), b) => Plan::Partial(a..b.map_or(len, |b| b.saturating_add(1).min(len))),
        (None, Some(0)) => Plan::Unsatisfiable,
        (None, Some(_)) if len == 0 => Plan::Unsatisfiable,
        (None, Some(n)) => Plan::Partial(len.saturating_sub(n)..len),
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"0123abcd\"";

    fn p(len: u64, range: &str) -> Result<Plan, &'static str> {
        plan(len, Some(range.as_bytes()), None, TAG)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(plan(1000, None, None, TAG), Ok(Plan::Full));
        assert_eq!(p(1000, "bytes=0-499"), Ok(Plan::Partial(0..500)));
        assert_eq!(p(1000, "bytes=500-999"), Ok(Plan::Partial(500..1000)));
        assert_eq!(p(1000, "bytes=500-5000"), Ok(Plan::Partial(500..1000)));
        assert_eq!(p(1000, "bytes=999-999"), Ok(Plan::Partial(999..1000)));
        assert_eq!(p(1000, "bytes=0-"), Ok(Plan::Partial(0..1000)));
        assert_eq!(p(1000, "bytes=900-"), Ok(Plan::Partial(900..1000)));
        assert_eq!(p(1000, "bytes=-100"), Ok(Plan::Partial(900..1000)));
        assert_eq!(p(1000, "bytes=-5000"), Ok(Plan::Partial(0..1000)));
        assert_eq!(p(1000, " Bytes = 1-2 "), Ok(Plan::Partial(1..3)));
        assert_eq!(p(1000, "bytes=0-99999999999999999999999"), Ok(Plan::Partial(0..1000)));
    }

    #[test]
    fn unsatisfiable_ranges() {
        for r in ["bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=99999999999999999999999-"] {
            assert_eq!(p(1000, r), Ok(Plan::Unsatisfiable), "{r}");
        }
        for r in ["bytes=0-", "bytes=-1", "bytes=0-0"] {
            assert_eq!(p(0, r), Ok(Plan::Unsatisfiable), "{r}");
        }
    }

    #[test]
    fn malformed_ranges_are_errors() {
        for r in ["bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-x", "bytes=5-4", "bytes=+1-2", "bytes=0x10-"] {
            assert!(p(1000, r).is_err(), "{r} accepted");
        }
        assert!(plan(1000, Some(b"bytes=\xff-1"), None, TAG).is_err());
    }

    #[test]
    fn ignored_ranges() {
        assert_eq!(p(1000, "items=0-5"), Ok(Plan::Full));
        assert_eq!(p(1000, "bytes=0-1,5-6"), Ok(Plan::Full));
    }

    #[test]
    fn if_range() {
        let r = Some(&b"bytes=10-19"[..]);
        assert_eq!(plan(1000, r, Some(TAG.as_bytes()), TAG), Ok(Plan::Partial(10..20)));
        assert_eq!(plan(1000, r, Some(b" \"0123abcd\" "), TAG), Ok(Plan::Partial(10..20)));
        for other in [&b"\"ffff\""[..], b"W/\"0123abcd\"", b"0123abcd", b"Tue, 01 Dec 2026 10:00:00 GMT", b""] {
            assert_eq!(plan(1000, r, Some(other), TAG), Ok(Plan::Full), "{}", String::from_utf8_lossy(other));
        }
        // A failed condition ignores the Range, even a bad one; without a Range it means nothing.
        assert_eq!(plan(1000, Some(b"bytes=x"), Some(b"\"old\""), TAG), Ok(Plan::Full));
        assert_eq!(plan(1000, None, Some(b"\"old\""), TAG), Ok(Plan::Full));
    }
}
