//! Who may read `/metrics`: the figures (connections, queues, streams, job errors) are for the
//! operators' Prometheus, not for whoever reaches the public port.
//!
//! - With `metrics.token_file` set, a request must carry `Authorization: Bearer TOKEN` (the
//!   file's content, trimmed); Prometheus sends it with `authorization: { credentials_file: … }`.
//!   Anything else is 401, from any address.
//! - Without it, only direct requests from the machine itself are answered: a loopback peer
//!   and no `Forwarded`/`X-Forwarded-For`/`X-Real-IP` header (a reverse proxy on the same
//!   machine would otherwise make every outside request look local). Others get 403.

use std::net::IpAddr;
use std::path::Path;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Why a request may not read the metrics (the API maps it: 401, 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRefusal {
    /// A token is configured and the request did not carry it.
    NoToken,
    /// No token is configured and the request is not a direct one from this machine.
    NotLocal,
}

/// Shortest token accepted in `metrics.token_file`.
pub const MIN_TOKEN_LEN: usize = 16;

/// The rule, loaded once at start.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Requests must carry this token (its SHA-256, so that the comparison takes the same time
    /// wherever the bytes differ).
    Token([u8; 32]),
    /// Direct loopback requests only.
    LoopbackOnly,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl MetricsAccess {
    /// From `metrics.token_file`: refuses to start on a file that cannot be read or holds a
    /// token shorter than [`MIN_TOKEN_LEN`].
    pub fn load(token_file: Option<&Path>) -> Result<MetricsAccess, Error> {
        let Some(path) = token_file else { return Ok(MetricsAccess::LoopbackOnly) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Tool(format!("metrics.token_file {}: cannot read it ({e})", path.display())))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Tool(format!(
                "metrics.token_file {}: the token must be at least {MIN_TOKEN_LEN} characters with no spaces \
                 (make one with `openssl rand -hex 32`)",
                path.display()
            )));
        }
        Ok(MetricsAccess::Token(digest(token.as_bytes())))
    }

    /// Whether the request from `peer` with `headers` may read the metrics.
    pub fn check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), MetricsRefusal> {
        match self {
            MetricsAccess::Token(want) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| digest(t.trim().as_bytes()));
                match given {
                    Some(given) if given == *want => Ok(()),
                    _ => Err(MetricsRefusal::NoToken),
                }
            }
            MetricsAccess::LoopbackOnly => {
                let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
                let loopback = match peer {
                    IpAddr::V4(a) => a.is_loopback(),
                    IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
                };
                if loopback && !forwarded { Ok(()) } else { Err(MetricsRefusal::NotLocal) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn without_a_token_only_direct_loopback_requests_are_answered() {
        let a = MetricsAccess::LoopbackOnly;
        for ok in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(a.check(ok.parse().unwrap(), &HeaderMap::new()).is_ok(), "{ok}");
        }
        for outside in ["10.0.0.5", "192.168.1.2", "8.8.8.8", "fe80::1", "::ffff:10.0.0.1"] {
            assert!(a.check(outside.parse().unwrap(), &HeaderMap::new()).is_err(), "{outside}");
        }
        let local = "127.0.0.1".parse().unwrap();
        for h in ["forwarded", "x-forwarded-for", "x-real-ip"] {
            assert!(a.check(local, &headers(&[(h, "for=203.0.113.9")])).is_err(), "{h}");
        }
        // A bearer token changes nothing when none is configured.
        assert!(a.check("10.0.0.5".parse().unwrap(), &headers(&[("authorization", "Bearer x")])).is_err());
    }

    #[test]
    fn with_a_token_every_address_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics.token");
        std::fs::write(&file, "  0123456789abcdef0123\n").unwrap();
        let a = MetricsAccess::load(Some(&file)).unwrap();
        let outside = "203.0.113.9".parse().unwrap();
        let local = "127.0.0.1".parse().unwrap();
        assert!(a.check(outside, &headers(&[("authorization", "Bearer 0123456789abcdef0123")])).is_ok());
        assert_eq!(a.check(local, &HeaderMap::new()), Err(MetricsRefusal::NoToken), "loopback needs it too");
        for bad in ["Bearer 0123456789abcdef012", "Bearer ", "Basic 0123456789abcdef0123", "0123456789abcdef0123"] {
            assert!(a.check(outside, &headers(&[("authorization", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_short_or_unreadable_token_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("short");
        std::fs::write(&file, "short\n").unwrap();
        assert!(MetricsAccess::load(Some(&file)).is_err());
        std::fs::write(&file, "0123456789 abcdef0123").unwrap();
        assert!(MetricsAccess::load(Some(&file)).is_err(), "a space inside");
        assert!(MetricsAccess::load(Some(&dir.path().join("missing"))).is_err());
        assert!(matches!(MetricsAccess::load(None), Ok(MetricsAccess::LoopbackOnly)));
    }
}
