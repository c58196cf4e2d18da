//! Credentials, checked from the headers alone (before any body is read).
//!
//! Secrets are compared in time that depends on their lengths only, and an
//! unknown id costs the same comparison as a wrong key and gets the same
//! answer, so the answers tell nothing about which ids exist.

use http::HeaderMap;

use super::State;

/// Compared against when the id is unknown, so that both paths do the same work.
const NO_SECRET: &[u8] = b"\0no-such-id\0";

/// Equality of two byte strings in time that depends on their lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    // Walk the given value whatever its length, against the secret repeated.
    if !b.is_empty() {
        for (i, x) in a.iter().enumerate() {
            diff |= x ^ b[i % b.len()];
        }
    }
    std::hint::black_box(diff) == 0
}

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Check `x-agent-id`/`x-agent-key` against the registry and the path id;
/// the lower-cased agent id, or why it is refused (answered 401).
pub fn agent(state: &State, headers: &HeaderMap, path_id: &str) -> Result<String, &'static str> {
    let (Some(id), Some(key)) = (header(headers, "x-agent-id"), header(headers, "x-agent-key")) else {
        return Err("Missing authentication headers: x-agent-id and x-agent-key are required");
    };
    let id = id.to_ascii_lowercase();
    let ok = {
        let reg = state.registry.read();
        let secret = reg.agent_key(&id);
        ct_eq(key.as_bytes(), secret.map_or(NO_SECRET, str::as_bytes)) && secret.is_some()
    };
    if !ok {
        return Err("Invalid agent credentials");
    }
    if !path_id.trim().eq_ignore_ascii_case(&id) {
        return Err("x-agent-id does not match the agent id in the request path");
    }
    Ok(id)
}

/// Check `x-prompt-id`/`x-prompt-key` against the path id and the prompt's
/// key; the lower-cased prompt id, or why it is refused (answered 401; the
/// same for an unknown prompt as for a wrong key).
pub fn prompt(state: &State, headers: &HeaderMap, path_id: &str) -> Result<String, &'static str> {
    let (Some(hid), Some(key)) = (header(headers, "x-prompt-id"), header(headers, "x-prompt-key")) else {
        return Err("Missing authentication headers: x-prompt-id and x-prompt-key are required");
    };
    let id = path_id.trim().to_ascii_lowercase();
    if !hid.eq_ignore_ascii_case(&id) {
        return Err("x-prompt-id does not match the prompt id in the request path");
    }
    let ok = {
        let reg = state.registry.read();
        let secret = reg.prompts.get(&id).map(|p| p.key.as_bytes());
        ct_eq(key.as_bytes(), secret.unwrap_or(NO_SECRET)) && secret.is_some()
    };
    if !ok {
        return Err("Invalid prompt credentials");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"secret2", b"secret"));
        assert!(!ct_eq(b"", b"x"));
        assert!(!ct_eq(b"x", b""));
        assert!(ct_eq(b"", b""));
        // A value that repeats the secret is still not the secret.
        assert!(!ct_eq(b"abab", b"ab"));
    }
}
