//! Start-up configuration of the local API: agents, prompts, faults, storage.
//!
//! Everything arrives as JSON (the Python layer turns dicts and config files
//! into JSON text), so the CLI, `infinium.testing.LocalServer` and the pyclass
//! share one parser and one set of error messages.

use serde_json::{Map, Value};

use crate::error::Error;

/// One version of a Prompt Studio prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptVersion {
    pub version: u64,
    pub content: String,
    pub created_at: String,
}

/// A prompt, its key and its versions (kept sorted by version, ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Lower-cased.
    pub id: String,
    pub key: String,
    pub name: String,
    pub versions: Vec<PromptVersion>,
}

impl Prompt {
    /// `None` = latest.
    pub fn version(&self, wanted: Option<u64>) -> Option<&PromptVersion> {
        match wanted {
            None => self.versions.last(),
            Some(v) => self.versions.iter().find(|p| p.version == v),
        }
    }

    /// Add or replace a version, keeping the list sorted.
    pub fn upsert(&mut self, v: PromptVersion) {
        self.versions.retain(|p| p.version != v.version);
        self.versions.push(v);
        self.versions.sort_by_key(|p| p.version);
    }
}

/// Fault injection: shares of requests answered 5xx / 429 / dropped, plus latency.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub error_5xx: f64,
    pub rate_429: f64,
    pub drop: f64,
    /// Seconds, sent as `Retry-After` on injected 429s.
    pub retry_after: u64,
    /// Status of injected server errors (500..=599, default 503).
    pub status_5xx: u16,
    pub latency_ms: u64,
    /// Extra uniform random latency in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    pub seed: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_5xx: 0.0,
            rate_429: 0.0,
            drop: 0.0,
            retry_after: 1,
            status_5xx: 503,
            latency_ms: 0,
            latency_jitter_ms: 0,
            seed: None,
        }
    }
}

impl FaultConfig {
    pub fn is_active(&self) -> bool {
        self.error_5xx > 0.0
            || self.rate_429 > 0.0
            || self.drop > 0.0
            || self.latency_ms > 0
            || self.latency_jitter_ms > 0
    }
}

/// Everything needed to start a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// (lower-cased agent id, key), in the order given.
    pub agents: Vec<(String, String)>,
    pub prompts: Vec<Prompt>,
    pub db: Option<String>,
    pub sink: bool,
    pub faults: FaultConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 0,
            agents: Vec::new(),
            prompts: Vec::new(),
            db: None,
            sink: false,
            faults: FaultConfig::default(),
        }
    }
}

fn cfg_err(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        message: message.into(),
        key: Some(key.to_owned()),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| obj.get(*n).and_then(Value::as_str))
}

/// `{"<id>": "<key>", ...}` or `[{"id"|"agent_id": ..., "key"|"secret"|"agent_secret": ...}]`.
pub fn parse_agents(v: &Value) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |id: &str, key: &str| -> Result<(), Error> {
        let id = id.trim();
        if id.is_empty() {
            return Err(cfg_err("agents", "agent id must be a non-empty string"));
        }
        if key.is_empty() {
            return Err(cfg_err(
                "agents",
                format!("agent {id}: key must be a non-empty string"),
            ));
        }
        let id = id.to_ascii_lowercase();
        out.retain(|(i, _)| *i != id);
        out.push((id, key.to_owned()));
        Ok(())
    };
    match v {
        Value::Null => {}
        Value::Object(map) => {
            for (id, key) in map {
                let key = key
                    .as_str()
                    .ok_or_else(|| cfg_err("agents", format!("agent {id}: key must be a string")))?;
                push(id, key)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                let obj = item
                    .as_object()
                    .ok_or_else(|| cfg_err("agents", "each agent must be an object with `id` and `key`"))?;
                let id = str_field(obj, &["id", "agent_id", "agentId"])
                    .ok_or_else(|| cfg_err("agents", "agent entry lacks `id`"))?;
                let key = str_field(obj, &["key", "secret", "agent_secret", "agentSecret"])
                    .ok_or_else(|| cfg_err("agents", format!("agent {id} lacks `key`")))?;
                push(id, key)?;
            }
        }
        _ => return Err(cfg_err("agents", "agents must be an object {id: key} or a list")),
    }
    Ok(out)
}

fn parse_version_number(v: Option<&Value>, ctx: &str) -> Result<Option<u64>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) if x >= 1 => Ok(Some(x)),
            _ => Err(cfg_err(
                "prompts",
                format!("{ctx}: version must be a positive integer"),
            )),
        },
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(x) if x >= 1 => Ok(Some(x)),
            _ => Err(cfg_err(
                "prompts",
                format!("{ctx}: version must be a positive integer"),
            )),
        },
        Some(_) => Err(cfg_err(
            "prompts",
            format!("{ctx}: version must be a positive integer"),
        )),
    }
}

fn parse_prompt_version(
    obj: &Map<String, Value>,
    default_version: u64,
    default_created: &str,
    ctx: &str,
) -> Result<PromptVersion, Error> {
    let content = str_field(obj, &["content"])
        .ok_or_else(|| cfg_err("prompts", format!("{ctx}: `content` must be a string")))?;
    let version = parse_version_number(obj.get("version"), ctx)?.unwrap_or(default_version);
    let created_at = str_field(obj, &["createdAt", "created_at"]).unwrap_or(default_created);
    Ok(PromptVersion {
        version,
        content: content.to_owned(),
        created_at: created_at.to_owned(),
    })
}

/// One prompt object: `{"id", "key", "name", "content", "version"?, "createdAt"?}` or
/// `{"id", "key", "name", "versions": [{"version", "content", "createdAt"?}, ...]}`.
pub fn parse_prompt(v: &Value, now: &str) -> Result<Prompt, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| cfg_err("prompts", "each prompt must be an object"))?;
    let id = str_field(obj, &["id", "prompt_id", "promptId"])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| cfg_err("prompts", "prompt entry lacks `id`"))?
        .to_ascii_lowercase();
    let key = str_field(obj, &["key", "prompt_key", "promptKey"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| cfg_err("prompts", format!("prompt {id} lacks `key`")))?
        .to_owned();
    let name = str_field(obj, &["name"]).unwrap_or("").to_owned();
    let mut prompt = Prompt {
        id: id.clone(),
        key,
        name,
        versions: Vec::new(),
    };
    match obj.get("versions") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let vo = item.as_object().ok_or_else(|| {
                    cfg_err("prompts", format!("prompt {id}: each version must be an object"))
                })?;
                let ctx = format!("prompt {id}");
                prompt.upsert(parse_prompt_version(vo, i as u64 + 1, now, &ctx)?);
            }
        }
        Some(Value::Null) | None => {
            prompt.upsert(parse_prompt_version(obj, 1, now, &format!("prompt {id}"))?);
        }
        Some(_) => {
            return Err(cfg_err(
                "prompts",
                format!("prompt {id}: `versions` must be a list"),
            ))
        }
    }
    if prompt.versions.is_empty() {
        return Err(cfg_err("prompts", format!("prompt {id} has no versions")));
    }
    Ok(prompt)
}

/// A list of prompt objects, or `{"<id>": {...}}`.
pub fn parse_prompts(v: &Value, now: &str) -> Result<Vec<Prompt>, Error> {
    let mut out: Vec<Prompt> = Vec::new();
    let mut add = |p: Prompt| {
        out.retain(|q| q.id != p.id);
        out.push(p);
    };
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                add(parse_prompt(item, now)?);
            }
        }
        Value::Object(map) => {
            for (id, item) in map {
                let mut item = item.clone();
                if let Some(obj) = item.as_object_mut() {
                    obj.entry("id").or_insert_with(|| Value::String(id.clone()));
                }
                add(parse_prompt(&item, now)?);
            }
        }
        _ => return Err(cfg_err("prompts", "prompts must be a list or an object")),
    }
    Ok(out)
}

fn rate(obj: &Map<String, Value>, key: &str) -> Result<f64, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(0.0),
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(cfg_err(
                "faults",
                format!("faults.{key} must be a number in [0, 1]"),
            )),
        },
    }
}

fn uint(obj: &Map<String, Value>, key: &str, default: u64) -> Result<u64, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| cfg_err("faults", format!("faults.{key} must be a non-negative integer"))),
    }
}

const FAULT_KEYS: &[&str] = &[
    "error_5xx",
    "rate_429",
    "drop",
    "retry_after",
    "status_5xx",
    "latency_ms",
    "latency_jitter_ms",
    "seed",
];

/// `{"error_5xx": 0.05, "rate_429": 0.02, "retry_after": 1, "drop": 0.05,
///   "latency_ms": 0, "latency_jitter_ms": 0, "status_5xx": 503, "seed": 42}`.
pub fn parse_faults(v: &Value) -> Result<FaultConfig, Error> {
    let obj = match v {
        Value::Null => return Ok(FaultConfig::default()),
        Value::Object(o) => o,
        _ => return Err(cfg_err("faults", "faults must be an object")),
    };
    if let Some(unknown) = obj.keys().find(|k| !FAULT_KEYS.contains(&k.as_str())) {
        return Err(cfg_err(
            "faults",
            format!(
                "unknown fault option {unknown:?} (known: {})",
                FAULT_KEYS.join(", ")
            ),
        ));
    }
    let f = FaultConfig {
        error_5xx: rate(obj, "error_5xx")?,
        rate_429: rate(obj, "rate_429")?,
        drop: rate(obj, "drop")?,
        retry_after: uint(obj, "retry_after", 1)?,
        status_5xx: match uint(obj, "status_5xx", 503)? {
            s @ 500..=599 => s as u16,
            _ => return Err(cfg_err("faults", "faults.status_5xx must be in 500..=599")),
        },
        latency_ms: uint(obj, "latency_ms", 0)?,
        latency_jitter_ms: uint(obj, "latency_jitter_ms", 0)?,
        seed: match obj.get("seed") {
            None | Some(Value::Null) => None,
            Some(_) => Some(uint(obj, "seed", 0)?),
        },
    };
    if f.error_5xx + f.rate_429 + f.drop > 1.0 + 1e-9 {
        return Err(cfg_err(
            "faults",
            "faults.error_5xx + rate_429 + drop must not exceed 1",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agents_both_shapes() {
        let a = parse_agents(&json!({"ABC": "secret-123"})).unwrap();
        assert_eq!(a, vec![("abc".to_owned(), "secret-123".to_owned())]);
        let b = parse_agents(&json!([{"agent_id": "x", "agent_secret": "k"}])).unwrap();
        assert_eq!(b, vec![("x".to_owned(), "k".to_owned())]);
        assert!(parse_agents(&json!([{"id": "x"}])).is_err());
        assert!(parse_agents(&json!({"x": ""})).is_err());
        assert!(parse_agents(&json!(3)).is_err());
    }

    #[test]
    fn prompts_single_and_versions() {
        let p = parse_prompts(
            &json!([{"id": "P1", "key": "k", "name": "greet", "content": "Hi {{name}}"}]),
            "now",
        )
        .unwrap();
        assert_eq!(p[0].id, "p1");
        assert_eq!(p[0].version(None).unwrap().version, 1);
        assert_eq!(p[0].version(None).unwrap().created_at, "now");
        let p = parse_prompts(
            &json!({"p2": {"key": "k", "name": "n", "versions": [
                {"version": 3, "content": "c3"}, {"version": 1, "content": "c1", "createdAt": "t"}
            ]}}),
            "now",
        )
        .unwrap();
        assert_eq!(p[0].id, "p2");
        assert_eq!(p[0].version(None).unwrap().content, "c3");
        assert_eq!(p[0].version(Some(1)).unwrap().created_at, "t");
        assert!(p[0].version(Some(2)).is_none());
        assert!(parse_prompts(&json!([{"id": "x", "key": "k", "content": 1}]), "n").is_err());
        assert!(parse_prompts(&json!([{"id": "x", "key": "k", "versions": []}]), "n").is_err());
        assert!(parse_prompts(
            &json!([{"id": "x", "key": "k", "content": "c", "version": 0}]),
            "n"
        )
        .is_err());
    }

    #[test]
    fn faults_validation() {
        let f = parse_faults(&json!({"error_5xx": 0.1, "rate_429": 0.2, "seed": 7})).unwrap();
        assert_eq!(f.seed, Some(7));
        assert!(f.is_active());
        assert!(!parse_faults(&Value::Null).unwrap().is_active());
        assert!(parse_faults(&json!({"error_5xx": 1.5})).is_err());
        assert!(parse_faults(&json!({"error_5xx": 0.6, "drop": 0.6})).is_err());
        assert!(parse_faults(&json!({"typo": 1})).is_err());
        assert!(parse_faults(&json!({"status_5xx": 404})).is_err());
    }
}
