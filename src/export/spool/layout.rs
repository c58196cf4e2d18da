//! Where a spool keeps its files.
//!
//! ```text
//! root/                                  spool_dir, or the per-user default
//!   {agent}.{hash}/                      one folder per target: the agent and
//!     target.json                        the base URL its traces go to
//!     {pid}.{rand}/                      one directory per exporter (process)
//!       lock                             locked while its owner lives
//!       seg-000000.log, seg-000000.ack   records, acknowledgements
//! ```
//!
//! Traces go back only to the target they were queued for: an exporter
//! reads and claims only its own target's folder, so one user's agents and
//! endpoints (production, staging, a local server) never deliver each
//! other's backlog. `target.json` names the target for `infinium replay`
//! (the base URL without any `user:password@`; the folder's hash is of that
//! same text, so the credentials never reach the disk).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const TARGET_FILE: &str = "target.json";
pub const LOCK_FILE: &str = "lock";
/// Prefix of a directory being set up (not yet a spool directory).
const NEW_PREFIX: &str = ".new.";

/// The base URL without `user:password@` (and whether it had one).
pub fn strip_userinfo(url: &str) -> (String, bool) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (format!("{}{}", &url[..start], &rest[at + 1..]), true),
        None => (url.to_owned(), false),
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The folder name of a target: the agent (as far as it is a safe file
/// name) and a hash of agent and base URL.
pub fn target_name(agent: &str, base_url: &str) -> String {
    let (url, _) = strip_userinfo(base_url.trim_end_matches('/'));
    let safe: String = agent
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let hash = fnv1a(format!("{agent}\n{url}").as_bytes());
    format!("{safe}.{hash:016x}")
}

/// What `target.json` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub agent_id: String,
    /// Without credentials.
    pub base_url: String,
    /// The base URL had `user:password@`, which is not recorded.
    pub had_credentials: bool,
}

impl TargetInfo {
    pub fn new(agent: &str, base_url: &str) -> TargetInfo {
        let (url, had) = strip_userinfo(base_url.trim_end_matches('/'));
        TargetInfo {
            agent_id: agent.to_owned(),
            base_url: url,
            had_credentials: had,
        }
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::json!({
            "agent_id": self.agent_id,
            "base_url": self.base_url,
            "had_credentials": self.had_credentials,
        })
        .to_string()
        .into_bytes()
    }

    fn from_json(data: &[u8]) -> Option<TargetInfo> {
        let v: serde_json::Value = serde_json::from_slice(data).ok()?;
        Some(TargetInfo {
            agent_id: v.get("agent_id")?.as_str()?.to_owned(),
            base_url: v.get("base_url")?.as_str()?.to_owned(),
            had_credentials: v
                .get("had_credentials")
                .and_then(|b| b.as_bool())
                .unwrap_or(false),
        })
    }
}

/// `mkdir -p` with owner-only permissions for what it creates (traces may
/// hold private data).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Open options for a new file only its owner may read.
pub fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Create the target folder (and `target.json`) if missing.
pub fn ensure_target(target: &Path, info: &TargetInfo) -> io::Result<()> {
    create_private_dir(target)?;
    let file = target.join(TARGET_FILE);
    if file.exists() {
        return Ok(());
    }
    let tmp = target.join(format!(
        ".{TARGET_FILE}.{}.{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let text = info.to_json();
    let written = (|| {
        let mut f = private_file().write(true).create_new(true).open(&tmp)?;
        f.write_all(&text)?;
        fs::rename(&tmp, &file)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

pub fn read_target(target: &Path) -> Option<TargetInfo> {
    TargetInfo::from_json(&fs::read(target.join(TARGET_FILE)).ok()?)
}

/// A new exporter directory's name.
pub fn own_name() -> String {
    format!("{}.{:08x}", std::process::id(), fastrand::u32(..))
}

/// A name of an exporter directory (`{pid}.{8 hex}`).
pub fn is_exporter_dir(name: &str) -> bool {
    match name.split_once('.') {
        Some((pid, rand)) => {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && rand.len() == 8
                && rand.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// A directory left half set up by a process that died while creating it.
pub fn is_new_dir(name: &str) -> bool {
    name.strip_prefix(NEW_PREFIX).is_some_and(is_exporter_dir)
}

/// Where a directory named `name` is set up before it appears under it.
pub fn new_dir_path(target: &Path, name: &str) -> PathBuf {
    target.join(format!("{NEW_PREFIX}{name}"))
}

/// `seg-{n}.log` / `seg-{n}.ack`: the segment number.
pub fn segment_number(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("seg-")?;
    let (num, ext) = rest.split_once('.')?;
    let n = num.parse().ok()?;
    match ext {
        "log" => Some((n, false)),
        "ack" => Some((n, true)),
        _ => None,
    }
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:06}.log"))
}

pub fn ack_path(log: &Path) -> PathBuf {
    log.with_extension("ack")
}

/// Every target folder under `root` (those with a `target.json`; `root`
/// itself if it is one) with its information and how many exporter
/// directories hold segment files.
pub fn targets(root: &Path) -> Vec<(PathBuf, TargetInfo, usize)> {
    let mut out = Vec::new();
    let candidates: Vec<PathBuf> = if root.join(TARGET_FILE).exists() {
        vec![root.to_owned()]
    } else {
        match fs::read_dir(root) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => return out,
        }
    };
    for path in candidates {
        let Some(info) = read_target(&path) else {
            continue;
        };
        let with_backlog = fs::read_dir(&path)
            .map(|es| {
                es.flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(is_exporter_dir))
                    .filter(|e| has_segments(&e.path()))
                    .count()
            })
            .unwrap_or(0);
        out.push((path, info, with_backlog));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn has_segments(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|es| {
        es.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(segment_number)
                .is_some_and(|(_, ack)| !ack)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("https://u:p@api.example.com/v1"),
            ("https://api.example.com/v1".into(), true)
        );
        assert_eq!(strip_userinfo("u:p@host/v1?x=@"), ("host/v1?x=@".into(), true));
        assert_eq!(
            strip_userinfo("http://127.0.0.1:80/a@b"),
            ("http://127.0.0.1:80/a@b".into(), false)
        );
    }

    #[test]
    fn targets_differ_by_agent_and_url_not_by_credentials() {
        let a = target_name("agent-1", "https://api.example.com/v1");
        assert!(a.starts_with("agent-1."));
        assert_eq!(a, target_name("agent-1", "https://api.example.com/v1/"));
        assert_eq!(a, target_name("agent-1", "https://x:secret@api.example.com/v1"));
        assert_ne!(a, target_name("agent-2", "https://api.example.com/v1"));
        assert_ne!(a, target_name("agent-1", "https://staging.example.com/v1"));
        assert_eq!(target_name("../x/y", "u").split('.').next(), Some("xy"));
    }

    #[test]
    fn target_file_roundtrip() {
        let info = TargetInfo::new("a", "http://u:p@h/v1/");
        assert_eq!(info.base_url, "http://h/v1");
        assert!(info.had_credentials);
        assert_eq!(TargetInfo::from_json(&info.to_json()), Some(info));
        assert_eq!(TargetInfo::from_json(b"{}"), None);
        assert_eq!(TargetInfo::from_json(b"garbage"), None);
    }

    #[test]
    fn names() {
        assert!(is_exporter_dir("1234.deadbeef"));
        assert!(!is_exporter_dir("1234.deadbeef.x"));
        assert!(!is_exporter_dir(".new.1234.deadbeef"));
        assert!(is_new_dir(".new.1234.deadbeef"));
        assert!(!is_exporter_dir(TARGET_FILE));
        assert_eq!(segment_number("seg-000012.log"), Some((12, false)));
        assert_eq!(segment_number("seg-000012.ack"), Some((12, true)));
        assert_eq!(segment_number("seg-x.log"), None);
        assert_eq!(segment_number("lock"), None);
    }
}
