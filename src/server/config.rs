//! The one parser of the local API's configuration: agents, prompts, faults,
//! storage, address and connection limits.
//!
//! `infinium.testing.LocalServer` (keyword arguments) and `infinium serve` (a
//! config file, then command-line flags) both hand their settings to
//! [`parse`] as JSON documents ("sources"), later sources overriding earlier
//! ones. Every error names the setting the way its user wrote it: a path
//! (`faults.error_5xx`), prefixed by the file it came from, or the
//! command-line flag (`--fault-5xx`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::prompts::{parse_prompt, Prompt};
use crate::error::Error;

/// What a request beyond `capacity` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCapacity {
    /// 429 with `Retry-After: retry_after`.
    Reject,
    /// Waits for a free slot.
    Queue,
}

/// Fault injection on the platform endpoints: shares of requests answered
/// 5xx / 429 / dropped, latency, and a capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub error_5xx: f64,
    pub rate_429: f64,
    /// Connection closed before the request is handled.
    pub drop: f64,
    /// Request handled (a trace is stored), then the connection closed
    /// without the answer.
    pub drop_answer: f64,
    /// Seconds, sent as `Retry-After` on injected and over-capacity 429s.
    pub retry_after: u64,
    /// Status of injected server errors (500..=599, default 503).
    pub status_5xx: u16,
    pub latency_ms: u64,
    /// Extra uniform random latency in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    pub seed: Option<u64>,
    /// At most this many platform requests served at once (0 = no limit).
    pub capacity: u64,
    pub over_capacity: OverCapacity,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_5xx: 0.0,
            rate_429: 0.0,
            drop: 0.0,
            drop_answer: 0.0,
            retry_after: 1,
            status_5xx: 503,
            latency_ms: 0,
            latency_jitter_ms: 0,
            seed: None,
            capacity: 0,
            over_capacity: OverCapacity::Reject,
        }
    }
}

impl FaultConfig {
    /// The settings as a `faults` object of the configuration.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "error_5xx": self.error_5xx,
            "rate_429": self.rate_429,
            "drop": self.drop,
            "drop_answer": self.drop_answer,
            "retry_after": self.retry_after,
            "status_5xx": self.status_5xx,
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.latency_jitter_ms,
            "seed": self.seed,
            "capacity": self.capacity,
            "over_capacity": match self.over_capacity {
                OverCapacity::Reject => "429",
                OverCapacity::Queue => "queue",
            },
        })
    }

    pub fn is_active(&self) -> bool {
        self.error_5xx > 0.0
            || self.rate_429 > 0.0
            || self.drop > 0.0
            || self.drop_answer > 0.0
            || self.latency_ms > 0
            || self.latency_jitter_ms > 0
            || self.capacity > 0
    }
}

/// Protection against slow and greedy clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections at most (also bounded by the descriptor limit).
    pub max_connections: usize,
    /// Time to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: Duration,
    /// Time to send a request's body once its headers are in.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
        }
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
    pub limits: Limits,
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
            limits: Limits::default(),
        }
    }
}

/// One JSON document of settings and how to name its keys in errors.
pub struct Source<'a> {
    pub doc: &'a Value,
    /// Where the document came from (a file name), said before a path.
    pub origin: Option<&'a str>,
    /// Exact names for some paths, e.g. `faults.drop` -> `--fault-drop`.
    pub names: &'a HashMap<String, String>,
}

impl<'a> Source<'a> {
    /// A source whose keys are named by their paths.
    pub fn plain(doc: &'a Value, names: &'a HashMap<String, String>) -> Self {
        Source {
            doc,
            origin: None,
            names,
        }
    }

    /// How the user wrote `path`.
    pub fn name(&self, path: &str) -> String {
        if let Some(n) = self.names.get(path) {
            return n.clone();
        }
        match self.origin {
            Some(o) => format!("{o}: {path}"),
            None => path.to_owned(),
        }
    }

    /// A configuration error about `path`: "<name> <problem>".
    pub fn err(&self, path: &str, problem: impl std::fmt::Display) -> Error {
        Error::Config {
            message: format!("{} {problem}", self.name(path)),
            key: Some(path.to_owned()),
        }
    }

    /// An error about the whole source (unknown keys...).
    fn err_here(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::Config {
            message: match self.origin {
                Some(o) => format!("{o}: {message}"),
                None => message.to_string(),
            },
            key: Some(key.to_owned()),
        }
    }
}

const KEYS: &[&str] = &[
    "host",
    "port",
    "db",
    "sink",
    "agents",
    "prompts",
    "faults",
    "max_connections",
    "header_timeout",
    "body_timeout",
];

const FAULT_KEYS: &[&str] = &[
    "error_5xx",
    "rate_429",
    "drop",
    "drop_answer",
    "retry_after",
    "status_5xx",
    "latency_ms",
    "latency_jitter_ms",
    "seed",
    "capacity",
    "over_capacity",
];

/// Parse `sources` in order (later ones override earlier ones; agents and
/// prompts accumulate, a repeated id replacing the earlier entry).
pub fn parse(sources: &[Source<'_>], now: &str) -> Result<ServerConfig, Error> {
    let mut cfg = ServerConfig::default();
    // Who set each fault share, for the message when they add up past 1.
    let mut share_names: HashMap<&'static str, String> = HashMap::new();
    for src in sources {
        apply(&mut cfg, src, now, &mut share_names)?;
    }
    let f = &cfg.faults;
    if f.error_5xx + f.rate_429 + f.drop + f.drop_answer > 1.0 + 1e-9 {
        let named: Vec<String> = ["error_5xx", "rate_429", "drop", "drop_answer"]
            .iter()
            .filter_map(|k| share_names.get(k).cloned())
            .collect();
        return Err(Error::Config {
            message: format!("the fault shares ({}) add up to more than 1", named.join(" + ")),
            key: Some("faults".to_owned()),
        });
    }
    Ok(cfg)
}

fn apply(
    cfg: &mut ServerConfig,
    src: &Source<'_>,
    now: &str,
    share_names: &mut HashMap<&'static str, String>,
) -> Result<(), Error> {
    let obj = match src.doc {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(src.err_here("", "the configuration must be an object")),
    };
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(src.err_here(
            unknown[0],
            format!(
                "unknown key(s) {} (known: {})",
                unknown.join(", "),
                KEYS.join(", ")
            ),
        ));
    }
    let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
    if let Some(v) = present("host") {
        cfg.host = v
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| src.err("host", "must be a non-empty string"))?
            .to_owned();
    }
    if let Some(v) = present("port") {
        cfg.port = v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| src.err("port", "must be an integer from 0 to 65535"))?;
    }
    if let Some(v) = obj.get("db") {
        cfg.db = match v {
            Value::Null => None,
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => return Err(src.err("db", "must be a file path")),
        };
    }
    if let Some(v) = present("sink") {
        cfg.sink = v
            .as_bool()
            .ok_or_else(|| src.err("sink", "must be true or false"))?;
    }
    if let Some(v) = present("agents") {
        for (id, key) in parse_agents(v, src)? {
            cfg.agents.retain(|(i, _)| *i != id);
            cfg.agents.push((id, key));
        }
    }
    if let Some(v) = present("prompts") {
        for p in parse_prompts(v, src, now)? {
            cfg.prompts.retain(|q| q.id != p.id);
            cfg.prompts.push(p);
        }
    }
    if let Some(v) = present("faults") {
        apply_faults(&mut cfg.faults, v, src, share_names)?;
    }
    if let Some(v) = present("max_connections") {
        cfg.limits.max_connections = v
            .as_u64()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| src.err("max_connections", "must be an integer from 1 to 1000000"))?
            as usize;
    }
    for (key, slot) in [
        ("header_timeout", &mut cfg.limits.header_timeout),
        ("body_timeout", &mut cfg.limits.body_timeout),
    ] {
        if let Some(v) = present(key) {
            *slot = v
                .as_f64()
                .filter(|s| *s > 0.0 && *s <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| src.err(key, "must be a number of seconds above 0 (at most 86400)"))?;
        }
    }
    Ok(())
}

fn str_field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| obj.get(*n).and_then(Value::as_str))
}

/// `{"<id>": "<key>", ...}` or `[{"id": ..., "key": ...}, ...]` (also
/// `agent_id`/`agentId` and `secret`/`agent_secret`/`agentSecret`).
pub fn parse_agents(v: &Value, src: &Source<'_>) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |id: &str, key: &str, id_path: &str, key_path: &str| -> Result<(), Error> {
        let id = id.trim();
        if id.is_empty() {
            return Err(src.err(id_path, "must be a non-empty agent id"));
        }
        if key.is_empty() {
            return Err(src.err(key_path, "must be a non-empty secret"));
        }
        let id = id.to_ascii_lowercase();
        out.retain(|(i, _)| *i != id);
        out.push((id, key.to_owned()));
        Ok(())
    };
    match v {
        Value::Object(map) => {
            for (id, key) in map {
                let path = format!("agents.{id}");
                let key = key
                    .as_str()
                    .ok_or_else(|| src.err(&path, "must be a string (the agent's secret)"))?;
                push(id, key, &path, &path)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("agents[{i}]");
                let obj = item
                    .as_object()
                    .ok_or_else(|| src.err(&path, "must be an object with `id` and `key`"))?;
                let id_path = format!("{path}.id");
                let key_path = format!("{path}.key");
                let id = str_field(obj, &["id", "agent_id", "agentId"])
                    .ok_or_else(|| src.err(&id_path, "must be a string"))?;
                let key = str_field(obj, &["key", "secret", "agent_secret", "agentSecret"])
                    .ok_or_else(|| src.err(&key_path, "must be a string"))?;
                push(id, key, &id_path, &key_path)?;
            }
        }
        _ => return Err(src.err("agents", "must be an object {id: secret} or a list of {id, key}")),
    }
    Ok(out)
}

/// A list of prompt objects, or `{"<id>": {...}}`.
fn parse_prompts(v: &Value, src: &Source<'_>, now: &str) -> Result<Vec<Prompt>, Error> {
    let mut out: Vec<Prompt> = Vec::new();
    let mut add = |p: Prompt| {
        out.retain(|q| q.id != p.id);
        out.push(p);
    };
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                add(parse_prompt(item, None, &format!("prompts[{i}]"), src, now)?);
            }
        }
        Value::Object(map) => {
            for (id, item) in map {
                add(parse_prompt(item, Some(id), &format!("prompts.{id}"), src, now)?);
            }
        }
        _ => return Err(src.err("prompts", "must be a list or an object {id: prompt}")),
    }
    Ok(out)
}

fn apply_faults(
    f: &mut FaultConfig,
    v: &Value,
    src: &Source<'_>,
    share_names: &mut HashMap<&'static str, String>,
) -> Result<(), Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| src.err("faults", "must be an object"))?;
    if let Some(unknown) = obj.keys().find(|k| !FAULT_KEYS.contains(&k.as_str())) {
        return Err(src.err_here(
            "faults",
            format!(
                "unknown fault option {unknown:?} (known: {})",
                FAULT_KEYS.join(", ")
            ),
        ));
    }
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let uint = |k: &str| -> Result<Option<u64>, Error> {
        get(k)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| src.err(&format!("faults.{k}"), "must be a non-negative integer"))
            })
            .transpose()
    };
    for (k, slot) in [
        ("error_5xx", &mut f.error_5xx),
        ("rate_429", &mut f.rate_429),
        ("drop", &mut f.drop),
        ("drop_answer", &mut f.drop_answer),
    ] {
        if let Some(v) = get(k) {
            let path = format!("faults.{k}");
            *slot = v
                .as_f64()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| src.err(&path, "must be a number from 0 to 1 (a share of requests)"))?;
            share_names.insert(k, src.name(&path));
        }
    }
    if let Some(s) = uint("status_5xx")? {
        f.status_5xx = match s {
            500..=599 => s as u16,
            _ => return Err(src.err("faults.status_5xx", "must be a status from 500 to 599")),
        };
    }
    if let Some(s) = uint("retry_after")? {
        f.retry_after = s;
    }
    if let Some(s) = uint("latency_ms")? {
        f.latency_ms = s;
    }
    if let Some(s) = uint("latency_jitter_ms")? {
        f.latency_jitter_ms = s;
    }
    if let Some(s) = uint("seed")? {
        f.seed = Some(s);
    }
    if let Some(s) = uint("capacity")? {
        f.capacity = s;
    }
    if let Some(v) = get("over_capacity") {
        f.over_capacity = match v.as_str() {
            Some("429") | Some("reject") => OverCapacity::Reject,
            Some("queue") => OverCapacity::Queue,
            _ => {
                return Err(src.err(
                    "faults.over_capacity",
                    "must be \"429\" (answer 429 with Retry-After) or \"queue\" (wait for a slot)",
                ))
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(doc: Value) -> Result<ServerConfig, Error> {
        let names = HashMap::new();
        parse(&[Source::plain(&doc, &names)], "now")
    }

    fn msg(r: Result<ServerConfig, Error>) -> String {
        r.expect_err("an error").message()
    }

    #[test]
    fn agents_both_shapes() {
        let a = one(json!({"agents": {"ABC": "secret-123"}})).unwrap().agents;
        assert_eq!(a, vec![("abc".to_owned(), "secret-123".to_owned())]);
        let b = one(json!({"agents": [{"agent_id": "x", "agent_secret": "k"}]})).unwrap();
        assert_eq!(b.agents, vec![("x".to_owned(), "k".to_owned())]);
        assert_eq!(
            msg(one(json!({"agents": [{"id": "x"}]}))),
            "agents[0].key must be a string"
        );
        assert_eq!(
            msg(one(json!({"agents": {"x": ""}}))),
            "agents.x must be a non-empty secret"
        );
        assert!(msg(one(json!({"agents": 3}))).starts_with("agents must be an object"));
    }

    #[test]
    fn faults_validation() {
        let f = one(json!({"faults": {"error_5xx": 0.1, "rate_429": 0.2, "seed": 7}}))
            .unwrap()
            .faults;
        assert_eq!(f.seed, Some(7));
        assert!(f.is_active());
        assert!(!one(json!({})).unwrap().faults.is_active());
        assert!(msg(one(json!({"faults": {"error_5xx": 1.5}}))).contains("faults.error_5xx must be"));
        let e = msg(one(json!({"faults": {"error_5xx": 0.6, "drop": 0.6}})));
        assert!(e.contains("faults.error_5xx + faults.drop"), "{e}");
        assert!(msg(one(json!({"faults": {"typo": 1}}))).contains("unknown fault option"));
        assert!(msg(one(json!({"faults": {"status_5xx": 404}}))).contains("500 to 599"));
        let c = one(json!({"faults": {"capacity": 8, "over_capacity": "queue"}}))
            .unwrap()
            .faults;
        let back = one(json!({"faults": c.to_json()})).unwrap().faults;
        assert_eq!(back, c);
        let keys: Vec<String> = c.to_json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, FAULT_KEYS);
        assert_eq!((c.capacity, c.over_capacity), (8, OverCapacity::Queue));
        assert!(c.is_active());
        assert!(msg(one(json!({"faults": {"over_capacity": "drop"}}))).contains("\"queue\""));
    }

    #[test]
    fn top_level_keys_and_limits() {
        let c = one(
            json!({"port": 8787, "host": "localhost", "db": "t.db", "sink": true,
                           "max_connections": 10, "header_timeout": 0.5, "body_timeout": 2}),
        )
        .unwrap();
        assert_eq!(
            (c.port, c.host.as_str(), c.db.as_deref(), c.sink),
            (8787, "localhost", Some("t.db"), true)
        );
        assert_eq!(c.limits.max_connections, 10);
        assert_eq!(c.limits.header_timeout, Duration::from_millis(500));
        assert_eq!(c.limits.body_timeout, Duration::from_secs(2));
        assert!(msg(one(json!({"agentz": {}}))).starts_with("unknown key(s) agentz (known: host"));
        assert!(msg(one(json!({"port": 70000}))).starts_with("port must be an integer"));
        assert!(msg(one(json!({"port": true}))).starts_with("port must be"));
        assert!(msg(one(json!({"header_timeout": 0}))).starts_with("header_timeout must be"));
        assert!(msg(one(json!({"sink": 1}))).starts_with("sink must be true or false"));
        assert!(msg(one(json!([1]))).contains("must be an object"));
    }

    #[test]
    fn later_sources_override_and_errors_name_their_source() {
        let file = json!({"port": 1, "agents": {"a": "k1"}, "faults": {"drop": 0.5, "seed": 1}});
        let flags = json!({"port": 2, "agents": [{"id": "b", "key": "k2"}], "faults": {"error_5xx": 0.25}});
        let none = HashMap::new();
        let names: HashMap<String, String> = [
            ("faults.error_5xx", "--fault-5xx"),
            ("agents[0].key", "--agent-secret"),
            ("port", "--port"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let sources = [
            Source {
                doc: &file,
                origin: Some("local.json"),
                names: &none,
            },
            Source::plain(&flags, &names),
        ];
        let c = parse(&sources, "now").unwrap();
        assert_eq!(c.port, 2);
        assert_eq!(c.agents.len(), 2);
        assert_eq!(
            (c.faults.drop, c.faults.error_5xx, c.faults.seed),
            (0.5, 0.25, Some(1))
        );

        let bad_flag = json!({"faults": {"error_5xx": 0.75}});
        let e = parse(
            &[
                Source {
                    doc: &file,
                    origin: Some("local.json"),
                    names: &none,
                },
                Source::plain(&bad_flag, &names),
            ],
            "now",
        )
        .err()
        .unwrap()
        .message();
        assert_eq!(
            e,
            "the fault shares (--fault-5xx + local.json: faults.drop) add up to more than 1"
        );
        let e = parse(&[Source::plain(&json!({"port": -1}), &names)], "now")
            .err()
            .unwrap()
            .message();
        assert_eq!(e, "--port must be an integer from 0 to 65535");
        let e = parse(
            &[Source {
                doc: &json!({"faults": {"drop": 2}}),
                origin: Some("local.json"),
                names: &none,
            }],
            "now",
        )
        .err()
        .unwrap()
        .message();
        assert_eq!(
            e,
            "local.json: faults.drop must be a number from 0 to 1 (a share of requests)"
        );
        let e = parse(
            &[Source::plain(
                &json!({"agents": [{"id": "x", "key": ""}]}),
                &names,
            )],
            "now",
        )
        .err()
        .unwrap()
        .message();
        assert_eq!(e, "--agent-secret must be a non-empty secret");
    }
}
