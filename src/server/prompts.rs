//! Prompt Studio prompts served by the local API, and their configuration.

use serde_json::{Map, Value};

use super::config::Source;
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

    /// Merge another definition of the same prompt id: its key (and name,
    /// when given) win, its versions are added.
    pub fn merge(&mut self, other: Prompt) {
        self.key = other.key;
        if !other.name.is_empty() {
            self.name = other.name;
        }
        for v in other.versions {
            self.upsert(v);
        }
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| obj.get(*n).and_then(Value::as_str))
}

fn parse_version(
    obj: &Map<String, Value>,
    default_version: u64,
    now: &str,
    path: &str,
    src: &Source<'_>,
) -> Result<PromptVersion, Error> {
    let content = str_field(obj, &["content"])
        .ok_or_else(|| src.err(&format!("{path}.content"), "must be a string"))?;
    let vpath = format!("{path}.version");
    let version = match obj.get("version") {
        None | Some(Value::Null) => default_version,
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|x| *x >= 1)
            .ok_or_else(|| src.err(&vpath, "must be a positive integer"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|x| *x >= 1)
            .ok_or_else(|| src.err(&vpath, "must be a positive integer"))?,
        Some(_) => return Err(src.err(&vpath, "must be a positive integer")),
    };
    let created_at = str_field(obj, &["createdAt", "created_at"]).unwrap_or(now);
    Ok(PromptVersion {
        version,
        content: content.to_owned(),
        created_at: created_at.to_owned(),
    })
}

/// One prompt at `path`: `{"id", "key", "name", "content", "version"?, "createdAt"?}`
/// or `{"id", "key", "name", "versions": [{"version", "content", "createdAt"?}, ...]}`.
/// `id_from_key` is the id when the prompts were given as `{"<id>": {...}}`.
pub fn parse_prompt(
    v: &Value,
    id_from_key: Option<&str>,
    path: &str,
    src: &Source<'_>,
    now: &str,
) -> Result<Prompt, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| src.err(path, "must be an object with `id`, `key` and `content`"))?;
    let id = str_field(obj, &["id", "prompt_id", "promptId"])
        .or(id_from_key)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| src.err(&format!("{path}.id"), "must be a non-empty string"))?
        .to_ascii_lowercase();
    let key = str_field(obj, &["key", "prompt_key", "promptKey"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| src.err(&format!("{path}.key"), "must be a non-empty string"))?
        .to_owned();
    let name = str_field(obj, &["name"]).unwrap_or("").to_owned();
    let mut prompt = Prompt {
        id,
        key,
        name,
        versions: Vec::new(),
    };
    match obj.get("versions") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let vpath = format!("{path}.versions[{i}]");
                let vo = item
                    .as_object()
                    .ok_or_else(|| src.err(&vpath, "must be an object with `content`"))?;
                prompt.upsert(parse_version(vo, i as u64 + 1, now, &vpath, src)?);
            }
        }
        Some(Value::Null) | None => prompt.upsert(parse_version(obj, 1, now, path, src)?),
        Some(_) => return Err(src.err(&format!("{path}.versions"), "must be a list")),
    }
    if prompt.versions.is_empty() {
        return Err(src.err(&format!("{path}.versions"), "must hold at least one version"));
    }
    Ok(prompt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn parse(v: Value) -> Result<Prompt, Error> {
        let names = HashMap::new();
        let src = Source::plain(&Value::Null, &names);
        parse_prompt(&v, None, "prompts[0]", &src, "now")
    }

    #[test]
    fn single_and_versions() {
        let p = parse(json!({"id": "P1", "key": "k", "name": "greet", "content": "Hi {{name}}"})).unwrap();
        assert_eq!(p.id, "p1");
        assert_eq!(p.version(None).unwrap().version, 1);
        assert_eq!(p.version(None).unwrap().created_at, "now");
        let mut p = parse(json!({"id": "p2", "key": "k", "name": "n", "versions": [
            {"version": 3, "content": "c3"}, {"version": 1, "content": "c1", "createdAt": "t"}
        ]}))
        .unwrap();
        assert_eq!(p.version(None).unwrap().content, "c3");
        assert_eq!(p.version(Some(1)).unwrap().created_at, "t");
        assert!(p.version(Some(2)).is_none());
        p.merge(parse(json!({"id": "p2", "key": "k2", "content": "c2", "version": "2"})).unwrap());
        assert_eq!((p.key.as_str(), p.name.as_str()), ("k2", "n"));
        assert_eq!(
            p.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn errors_name_the_path() {
        let e = |v: Value| parse(v).err().unwrap().message();
        assert_eq!(
            e(json!({"id": "x", "key": "k", "content": 1})),
            "prompts[0].content must be a string"
        );
        assert_eq!(
            e(json!({"id": "x", "key": "k", "versions": []})),
            "prompts[0].versions must hold at least one version"
        );
        assert_eq!(
            e(json!({"id": "x", "key": "k", "content": "c", "version": 0})),
            "prompts[0].version must be a positive integer"
        );
        assert_eq!(
            e(json!({"id": "x", "content": "c"})),
            "prompts[0].key must be a non-empty string"
        );
        assert_eq!(
            e(json!(3)),
            "prompts[0] must be an object with `id`, `key` and `content`"
        );
    }
}
