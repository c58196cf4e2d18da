//! The local API's answers and the one way their JSON is written.
//!
//! Every body is an object written by [`Obj`], which keeps the key order and
//! embeds stored traces byte for byte.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

pub type Resp = Response<Full<Bytes>>;

static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON object under construction: `{"k": v, ...}`.
pub struct Obj(String);

impl Obj {
    pub fn new() -> Self {
        Obj::with_capacity(64)
    }

    pub fn with_capacity(n: usize) -> Self {
        let mut s = String::with_capacity(n);
        s.push('{');
        Obj(s)
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_str_literal(&mut self.0, k);
        self.0.push(':');
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_str_literal(&mut self.0, v);
        self
    }

    /// A string, or `null`.
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn u64(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        self.0.push_str(itoa::Buffer::new().format(v));
        self
    }

    /// A number, or `null`.
    pub fn opt_u64(self, k: &str, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.u64(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// `raw` must already be JSON (a stored trace, or an array written here).
    pub fn raw(mut self, k: &str, raw: &str) -> Self {
        self.key(k);
        self.0.push_str(raw);
        self
    }

    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

/// `items` (each already JSON) as a JSON array.
pub fn array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push(']');
    s
}

/// `s` as a JSON string literal.
fn push_str_literal(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

pub fn json(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    r
}

/// `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Resp {
    json(status, Obj::new().str("error", message).finish())
}

/// Close the connection after this answer (its request body was not read).
pub fn closing(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_valid_json_in_order() {
        let s = Obj::new()
            .str("a", "q\"\\\n\u{1}é")
            .u64("n", u64::MAX)
            .opt_u64("none", None)
            .opt_str("s", Some("x"))
            .raw("t", &array(["{\"z\":1}", "[2]"]))
            .finish();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "q\"\\\n\u{1}é");
        assert_eq!(v["n"], u64::MAX);
        assert!(v["none"].is_null());
        assert_eq!(v["t"][0]["z"], 1);
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "n", "none", "s", "t"]);
        assert_eq!(Obj::new().finish(), "{}");
        assert_eq!(array([]), "[]");
    }
}
