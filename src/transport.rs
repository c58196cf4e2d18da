//! HTTP transport: one reqwest client per SDK client on the process runtime,
//! redirects never followed, the status -> error mapping and retry policy of
//! SPEC §4 (plus 429 `Retry-After` honoured instead of only reported).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::Error;
use crate::json::parse_body;
use crate::limiter::RateLimiter;
use crate::runtime;

/// Everything a client is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub base_url: String,
    pub agent_id: String,
    pub agent_secret: String,
    /// Seconds per attempt; `None` (the user's `timeout=None`, as httpx) waits
    /// as long as it takes.
    pub timeout: Option<f64>,
    /// The timeout as the user wrote it (for messages: `30.0`, `5`).
    pub timeout_text: String,
    pub max_retries: u32,
    /// `None` disables client-side rate limiting.
    pub requests_per_second: Option<f64>,
    pub burst: u32,
    pub user_agent: String,
    pub verify_ssl: bool,
    /// Longest `Retry-After` the client waits for before retrying a 429;
    /// longer ones are raised as `RateLimitError` at once.
    pub max_retry_after: f64,
    /// Base of the exponential backoff, seconds (anchor: 1.0).
    pub backoff_base: f64,
    pub pool_size: usize,
}

/// Which credentials a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    Agent,
    Prompt { id: String, key: String },
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Appended to the base URL, e.g. `/agents/{id}/trace`.
    pub path: String,
    pub auth: Auth,
    pub body: Option<Bytes>,
    pub idempotency_key: Option<String>,
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

/// What happened on the wire, for statistics (batch/background export).
#[derive(Debug, Default, Clone, Copy)]
pub struct Attempts {
    pub attempts: u32,
}

pub struct Transport {
    pub cfg: Config,
    pub limiter: Option<RateLimiter>,
    /// `(runtime generation, client)`, swapped without a lock (a lock could be
    /// left held in a forked child). A replaced client is deliberately leaked:
    /// that happens once per fork, and its pool belongs to the parent's runtime.
    client: AtomicPtr<(u64, reqwest::Client)>,
    /// The headers of every agent request but the idempotency key, built
    /// once (None when a credential cannot be a header value: then each
    /// request builds them and reports that as its error).
    agent_headers: Option<HeaderMap>,
    /// The last request URL, parsed (a client sends to one trace path over
    /// and over; parsing it showed up in profiles of the exporter).
    last_url: parking_lot::Mutex<Option<(String, reqwest::Url)>>,
    /// The proxy for the base URL, chosen once from the environment as the
    /// anchor's httpx chooses it (`proxy`); `None`: connect directly.
    proxy: Option<String>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        let ptr = *self.client.get_mut();
        // Free the current client only in the generation that built it: a
        // client inherited through fork() is leaked on purpose.
        // SAFETY: exclusive access in drop; the pointer came from Box::into_raw.
        if let Some((g, _)) = unsafe { ptr.as_ref() } {
            if *g == runtime::generation() {
                drop(unsafe { Box::from_raw(ptr) });
            }
        }
    }
}

/// The innermost cause of an error: what really happened (refused, reset,
/// no CA certificates...), rather than reqwest's summary of it. An operating
/// system error reads as Python's `OSError` does (and so as the anchor's
/// messages): `[Errno 111] Connection refused`.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if let Some(code) = cause
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
    {
        let text = cause.to_string();
        let reason = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
        return format!("[Errno {code}] {reason}");
    }
    let text = cause.to_string();
    if text.is_empty() {
        e.to_string()
    } else {
        text
    }
}

impl Transport {
    pub fn new(cfg: Config) -> Result<Arc<Self>, Error> {
        if matches!(cfg.timeout, Some(t) if !(t.is_finite() && t > 0.0)) {
            return Err(Error::Config {
                message: "timeout must be a positive number".into(),
                key: Some("timeout".into()),
            });
        }
        let limiter = match cfg.requests_per_second {
            Some(r) if r.is_finite() && r > 0.0 => Some(RateLimiter::new(r, cfg.burst.max(1))),
            Some(_) => {
                return Err(Error::Config {
                    message: "requests_per_second must be positive".into(),
                    key: Some("requests_per_second".into()),
                })
            }
            None => None,
        };
        let proxy = crate::proxy::for_base_url(&cfg.base_url)?;
        let mut t = Transport {
            cfg,
            limiter,
            client: AtomicPtr::new(std::ptr::null_mut()),
            agent_headers: None,
            last_url: parking_lot::Mutex::new(None),
            proxy,
        };
        t.agent_headers = t.base_headers(&Auth::Agent).ok();
        // Fail early on a bad configuration. A malformed proxy URL is not
        // one: it fails each send instead, as the anchor's httpx does.
        if let Err(e @ Error::Config { .. }) = t.http() {
            return Err(e);
        }
        Ok(Arc::new(t))
    }

    /// The reqwest client, rebuilt in a forked child (its pool belongs to
    /// the parent's runtime).
    pub fn http(&self) -> Result<reqwest::Client, Error> {
        let gen = runtime::generation();
        let current = self.client.load(Ordering::Acquire);
        // SAFETY: non-null pointers here come from Box::into_raw below and are
        // never freed while the Transport lives (see Drop).
        if let Some((g, c)) = unsafe { current.as_ref() } {
            if *g == gen {
                return Ok(c.clone());
            }
        }
        // reqwest (built without a provider of its own) takes the installed one.
        crate::tls::crypto_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(t) = self.cfg.timeout {
            builder = builder.timeout(Duration::from_secs_f64(t));
        }
        // reqwest's own reading of the environment differs from httpx's
        // (`NO_PROXY=*` with an IP address host, lowercase precedence...).
        builder = match &self.proxy {
            None => builder.no_proxy(),
            Some(p) => builder.proxy(reqwest::Proxy::all(p).map_err(|e| Error::Network {
                message: format!(
                    "Network error: invalid proxy URL {:?}: {}",
                    crate::proxy::without_password(p),
                    innermost(&e)
                ),
            })?),
        };
        builder = builder
            .redirect(reqwest::redirect::Policy::none())
            // Retries are ours (SPEC §4). reqwest's own policy would also copy
            // every request's method, URI and headers before sending it, in
            // case a retry were needed; with a limit of 0 it copies nothing.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .pool_max_idle_per_host(self.cfg.pool_size.max(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .tls_danger_accept_invalid_certs(!self.cfg.verify_ssl);
        if self.cfg.verify_ssl {
            let tls = crate::tls::verifying_config().map_err(|e| Error::Config {
                message: format!("cannot build the HTTP client: {e}"),
                key: None,
            })?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let c = builder.build().map_err(|e| Error::Config {
            message: format!("cannot build the HTTP client: {}", innermost(&e)),
            key: None,
        })?;
        let fresh = Box::into_raw(Box::new((gen, c.clone())));
        if self
            .client
            .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread installed one first: use that, drop ours.
            // SAFETY: `fresh` was never shared.
            drop(unsafe { Box::from_raw(fresh) });
            return self.http();
        }
        Ok(c)
    }

    fn headers(&self, auth: &Auth, idempotency_key: Option<&str>) -> Result<HeaderMap, Error> {
        let mut h = match (auth, &self.agent_headers) {
            (Auth::Agent, Some(base)) => base.clone(),
            _ => self.base_headers(auth)?,
        };
        if let Some(k) = idempotency_key {
            h.insert(
                HeaderName::from_static("idempotency-key"),
                header_value(k, "idempotency_key")?,
            );
        }
        Ok(h)
    }

    /// The headers of a request with `auth`, without the idempotency key.
    fn base_headers(&self, auth: &Auth) -> Result<HeaderMap, Error> {
        let mut h = HeaderMap::with_capacity(6);
        h.insert(USER_AGENT, header_value(&self.cfg.user_agent, "user_agent")?);
        match auth {
            Auth::Agent => {
                h.insert(
                    HeaderName::from_static("x-agent-id"),
                    header_value(&self.cfg.agent_id, "agent_id")?,
                );
                let mut key = header_value(&self.cfg.agent_secret, "agent_secret")?;
                key.set_sensitive(true);
                h.insert(HeaderName::from_static("x-agent-key"), key);
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Auth::Prompt { id, key } => {
                h.insert(
                    HeaderName::from_static("x-prompt-id"),
                    header_value(id, "prompt_id")?,
                );
                let mut k = header_value(key, "prompt_key")?;
                k.set_sensitive(true);
                h.insert(HeaderName::from_static("x-prompt-key"), k);
            }
        }
        Ok(h)
    }

    /// Backoff before retry number `attempt` (0-based): min(base*2^n, 60s) ± 25%.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let delay = (self.cfg.backoff_base * 2f64.powi(attempt.min(30) as i32)).min(60.0);
        let jitter = delay * 0.25 * (fastrand::f64() * 2.0 - 1.0);
        Duration::from_secs_f64((delay + jitter).max(0.0))
    }

    /// One request with the configured retries; the limiter is taken before
    /// every attempt.
    pub async fn execute(&self, req: &Request) -> Result<Response, Error> {
        self.execute_counted(req, &mut Attempts::default()).await
    }

    pub async fn execute_counted(&self, req: &Request, counts: &mut Attempts) -> Result<Response, Error> {
        let mut attempt = 0u32;
        loop {
            if let Some(l) = &self.limiter {
                l.acquire().await;
            }
            counts.attempts += 1;
            let err = match self.attempt(req).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if attempt >= self.cfg.max_retries {
                return Err(err);
            }
            let wait = match &err {
                Error::RateLimited { retry_after, .. }
                    if (*retry_after as f64) <= self.cfg.max_retry_after =>
                {
                    Duration::from_secs(*retry_after)
                }
                e if e.is_retryable() => self.backoff(attempt),
                _ => return Err(err),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// A single attempt: send, read, map the status.
    pub async fn attempt(&self, req: &Request) -> Result<Response, Error> {
        self.attempt_with(req, true).await
    }

    /// `attempt` for a caller that only needs to know it succeeded (the
    /// background exporter): a 2xx body is read but not parsed.
    pub async fn attempt_status(&self, req: &Request) -> Result<Response, Error> {
        self.attempt_with(req, false).await
    }

    async fn attempt_with(&self, req: &Request, parse_ok_body: bool) -> Result<Response, Error> {
        let http = self.http()?;
        // Not an http(s) URL: the client's configuration, not a network
        // failure (never retried).
        let url = self.url(&req.path).map_err(|message| Error::Config {
            message,
            key: Some("base_url".into()),
        })?;
        let mut builder = http
            .request(req.method.clone(), url)
            .headers(self.headers(&req.auth, req.idempotency_key.as_deref())?);
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let resp = builder.send().await.map_err(|e| self.map_reqwest(e))?;
        let status = resp.status().as_u16();
        let retry_after_header = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(|e| self.map_reqwest(e))?;
        let ok = (200..300).contains(&status);
        map_status(
            status,
            if ok && !parse_ok_body {
                None
            } else {
                parse_body(&bytes)
            },
            retry_after_header.as_deref(),
            &req.auth,
        )
    }

    /// `base_url + path` parsed, from the one-entry cache when it is the
    /// last path again; what is wrong with it (httpx's words where the anchor
    /// has them) when it is not an http(s) URL.
    ///
    /// The cache is only ever `try_lock`ed: the transport outlives a fork, and
    /// a lock some parent thread held at that moment would never be released
    /// in the child. Contended or stuck, a request just parses its URL.
    fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        if let Some(cache) = self.last_url.try_lock() {
            if let Some((p, u)) = cache.as_ref() {
                if p == path {
                    return Ok(u.clone());
                }
            }
        }
        let text = format!("{}{}", self.cfg.base_url, path);
        let url = reqwest::Url::parse(&text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                "Request URL is missing an 'http://' or 'https://' protocol.".to_owned()
            }
            // Not the text itself: a base URL may carry a password.
            e => format!("Request URL is invalid: {e}."),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "Request URL has an unsupported protocol '{}://'.",
                url.scheme()
            ));
        }
        if let Some(mut cache) = self.last_url.try_lock() {
            *cache = Some((path.to_owned(), url.clone()));
        }
        Ok(url)
    }

    fn map_reqwest(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                message: format!("Request timed out after {} seconds", self.cfg.timeout_text),
                seconds: self.cfg.timeout.unwrap_or(f64::INFINITY),
            };
        }
        let text = innermost(&e);
        Error::Network {
            message: format!("Network error: {}", redact(&text, &self.cfg.agent_secret)),
        }
    }
}

fn header_value(s: &str, what: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(s).map_err(|_| {
        Error::validation(
            format!("{what} contains characters not allowed in an HTTP header"),
            Some(what),
        )
    })
}

/// A fresh `Idempotency-Key`: a random (v4) UUID. Drawn from a userspace
/// generator (fastrand, seeded from the OS per thread): the key only has to be
/// unique, and a `getrandom` system call per trace showed up in profiles.
pub fn new_idempotency_key() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Never let the secret into a message.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.len() >= 4 && text.contains(secret) {
        text.replace(secret, "***")
    } else {
        text.to_owned()
    }
}

/// `Retry-After`: delta-seconds or an HTTP date; 60 when absent or unreadable
/// (as the anchor).
pub fn parse_retry_after(v: Option<&str>) -> u64 {
    let Some(v) = v.map(str::trim) else { return 60 };
    if let Ok(n) = v.parse::<u64>() {
        return n;
    }
    if let Ok(when) = httpdate::parse_http_date(v) {
        return when
            .duration_since(std::time::SystemTime::now())
            .map(|d| d.as_secs_f64().ceil() as u64)
            .unwrap_or(0);
    }
    60
}

/// The anchor's `_handle_response`.
pub fn map_status(
    status: u16,
    body: Option<serde_json::Value>,
    retry_after: Option<&str>,
    auth: &Auth,
) -> Result<Response, Error> {
    match status {
        200..=299 => Ok(Response { status, body }),
        401 => Err(Error::Auth {
            message: match auth {
                Auth::Prompt { .. } => "Authentication failed. Check your prompt_id and prompt_key.",
                Auth::Agent => "Authentication failed. Check your agent_id and agent_secret.",
            }
            .into(),
            status,
            body,
        }),
        429 => Err(Error::RateLimited {
            retry_after: parse_retry_after(retry_after),
            body,
        }),
        404 => Err(Error::NotFound {
            message: "Resource not found".into(),
            body,
        }),
        500..=599 => Err(Error::Server { status, body }),
        _ => {
            let message = match body.as_ref().and_then(|b| b.get("error")) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => {
                    format!("Request failed with status {status}")
                }
                Some(other) => other.to_string(),
            };
            Err(Error::Http {
                status,
                message,
                body,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let agent = Auth::Agent;
        assert!(map_status(201, None, None, &agent).is_ok());
        assert_eq!(
            map_status(401, None, None, &agent).unwrap_err().message(),
            "Authentication failed. Check your agent_id and agent_secret."
        );
        let prompt = Auth::Prompt {
            id: "p".into(),
            key: "k".into(),
        };
        assert_eq!(
            map_status(401, None, None, &prompt).unwrap_err().message(),
            "Authentication failed. Check your prompt_id and prompt_key."
        );
        assert_eq!(
            map_status(429, None, Some("7"), &agent).unwrap_err().message(),
            "Rate limit exceeded. Retry after 7 seconds."
        );
        assert_eq!(
            map_status(503, None, None, &agent).unwrap_err().message(),
            "Server error: 503"
        );
        let body = serde_json::json!({"error": "bad trace"});
        assert_eq!(
            map_status(400, Some(body), None, &agent).unwrap_err().message(),
            "bad trace"
        );
        assert_eq!(
            map_status(302, None, None, &agent).unwrap_err().message(),
            "Request failed with status 302"
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(None), 60);
        assert_eq!(parse_retry_after(Some("3")), 3);
        assert_eq!(parse_retry_after(Some("soon")), 60);
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), 0);
    }

    #[test]
    fn idempotency_keys_are_v4_uuids_and_distinct() {
        let keys: std::collections::HashSet<String> = (0..1000).map(|_| new_idempotency_key()).collect();
        assert_eq!(keys.len(), 1000);
        for k in keys.iter().take(10) {
            let u = uuid::Uuid::parse_str(k).unwrap();
            assert_eq!(u.get_version_num(), 4);
        }
    }

    #[test]
    fn os_errors_read_as_python_reads_them() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Outer(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        let reason = std::io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string();
        let reason = reason.split(" (os error").next().unwrap_or_default().to_owned();
        assert_eq!(
            innermost(&refused),
            format!("[Errno {}] {reason}", libc::ECONNREFUSED)
        );
        // Not an OS error: its own text.
        let other = Outer(std::io::Error::other("no CA certificates"));
        assert_eq!(innermost(&other), "no CA certificates");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("key=supersecret!", "supersecret"), "key=***!");
        assert_eq!(redact("nothing here", "supersecret"), "nothing here");
    }
}
