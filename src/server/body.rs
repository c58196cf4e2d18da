//! Reading request bodies within a deadline, without trusting their
//! declared length.

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{timeout_at, Instant};

/// Oversized bodies up to this size are read and discarded before the 413,
/// so that a client still writing its body sees the answer instead of a
/// reset; beyond it the connection is closed.
pub const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// What is reserved up front, whatever the declared length says.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// The body as it arrived.
pub enum Read {
    /// Complete; the bytes when kept and within the limit.
    Done { bytes: Option<Bytes>, len: u64 },
    /// Longer than [`DRAIN_MAX`]: the rest was not read.
    Huge,
    /// Not complete within the body timeout.
    TimedOut,
    /// The client broke the framing or the connection.
    Broken,
}

pub fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Whether the request announces a body (a non-zero length, or chunks).
pub fn announced(h: &HeaderMap) -> bool {
    content_length(h).is_some_and(|n| n > 0) || h.contains_key(TRANSFER_ENCODING)
}

/// Read the whole body by `deadline`, keeping at most `keep` bytes (`None`
/// when the body is longer: it is drained instead).
pub async fn read(mut body: Incoming, declared: Option<u64>, keep: usize, deadline: Instant) -> Read {
    if declared.is_some_and(|n| n > DRAIN_MAX) {
        return Read::Huge;
    }
    let cap = declared.map_or(INITIAL_CAPACITY, |n| {
        n.min(keep.min(INITIAL_CAPACITY) as u64) as usize
    });
    let mut buf = BytesMut::with_capacity(cap);
    let mut seen: u64 = 0;
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => return Read::TimedOut,
            Ok(None) => break,
            Ok(Some(Err(_))) => return Read::Broken,
            Ok(Some(Ok(f))) => f,
        };
        let Some(d) = frame.data_ref() else { continue };
        seen += d.len() as u64;
        if seen > DRAIN_MAX {
            return Read::Huge;
        }
        if seen <= keep as u64 {
            buf.extend_from_slice(d);
        }
    }
    Read::Done {
        bytes: (seen <= keep as u64).then(|| buf.freeze()),
        len: seen,
    }
}
