//! Request routing and handlers of the local Infinium API.
//!
//! Routes (each also served with an `/api/v1` prefix, which is what the
//! advertised base URL contains):
//!
//! | method | path | auth |
//! |---|---|---|
//! | POST | `/agents/{id}/trace` | agent |
//! | GET | `/agents/{id}/interpreted-result/{task_id}` | agent |
//! | GET | `/agents/{id}/traces?limit=&offset=` | agent |
//! | GET | `/agents/{id}/traces/{trace_id}` | agent |
//! | GET | `/prompts/{id}/v/{version}` | prompt |
//! | GET | `/health` | none |
//!
//! Every error answer is `{"error": "..."}`. Faults are injected only on the
//! three platform endpoints (trace, interpreted-result, prompts), never on the
//! inspection routes (`/traces`, `/health`).

// Handlers return ready-made error responses through `Err`; boxing them would
// only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::faults::Decision;
use super::store::{json_str, new_uuid, Inserted, Record, Store};
use super::State;

/// Largest accepted trace body, as in the SDK (`MAX_PAYLOAD_SIZE`).
pub const MAX_BODY: usize = crate::schema::MAX_PAYLOAD_SIZE;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub type Resp = Response<Full<Bytes>>;

/// Returned as the service error to make hyper close the connection without
/// writing a response (an injected drop, or a broken request body).
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the local Infinium API")
    }
}

impl std::error::Error for DropConnection {}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

fn json(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    r
}

fn error(status: StatusCode, message: &str) -> Resp {
    json(status, format!("{{\"error\":{}}}", json_str(message)))
}

enum Route<'a> {
    PostTrace(&'a str),
    Interpreted(&'a str, &'a str),
    ListTraces(&'a str),
    GetTrace(&'a str, &'a str),
    Prompt(&'a str, &'a str),
    Health,
}

impl Route<'_> {
    fn method(&self) -> Method {
        match self {
            Route::PostTrace(_) => Method::POST,
            _ => Method::GET,
        }
    }

    fn faultable(&self) -> bool {
        matches!(
            self,
            Route::PostTrace(_) | Route::Interpreted(..) | Route::Prompt(..)
        )
    }
}

fn route(path: &str) -> Option<Route<'_>> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    let parts: [Option<&str>; 5] = [segs.next(), segs.next(), segs.next(), segs.next(), segs.next()];
    if parts[4].is_some() {
        return None;
    }
    Some(match parts {
        [Some("agents"), Some(a), Some("trace"), None, None] => Route::PostTrace(a),
        [Some("agents"), Some(a), Some("interpreted-result"), Some(t), None] => Route::Interpreted(a, t),
        [Some("agents"), Some(a), Some("traces"), None, None] => Route::ListTraces(a),
        [Some("agents"), Some(a), Some("traces"), Some(t), None] => Route::GetTrace(a, t),
        [Some("prompts"), Some(p), Some("v"), Some(v), None] => Route::Prompt(p, v),
        [Some("health"), None, None, None, None] => Route::Health,
        _ => return None,
    })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Check `x-agent-id`/`x-agent-key` against the registry and the path id.
/// Returns the lower-cased agent id.
fn auth_agent(state: &State, headers: &HeaderMap, path_id: &str) -> Result<String, Resp> {
    let (Some(id), Some(key)) = (header(headers, "x-agent-id"), header(headers, "x-agent-key")) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Missing authentication headers: x-agent-id and x-agent-key are required",
        ));
    };
    let id = id.to_ascii_lowercase();
    let ok = state
        .registry
        .read()
        .agents
        .get(&id)
        .is_some_and(|k| k.as_bytes() == key.as_bytes());
    if !ok {
        return Err(error(StatusCode::UNAUTHORIZED, "Invalid agent credentials"));
    }
    if !path_id.trim().eq_ignore_ascii_case(&id) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "x-agent-id does not match the agent id in the request path",
        ));
    }
    Ok(id)
}

/// Run a store operation: inline for memory, on the blocking pool for SQLite.
async fn with_store<T, F>(store: &Arc<Store>, f: F) -> Result<T, Resp>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, crate::error::Error> + Send + 'static,
{
    let res = if store.is_sqlite() {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || f(&s)).await {
            Ok(r) => r,
            Err(e) => Err(crate::error::Error::Unexpected(format!(
                "storage task failed: {e}"
            ))),
        }
    } else {
        f(store)
    };
    res.map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.message()))
}

/// The service function: never panics on input; `Err` drops the connection.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let stats = &state.stats;
    stats.requests.fetch_add(1, Relaxed);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let route = route(path);
    if state.sink && parts.method == Method::POST && matches!(route, Some(Route::PostTrace(_))) {
        return sink(&state, &parts.headers, body).await;
    }
    // Read (or drain) every body before answering, so that the connection
    // stays usable whatever the answer. `None` = over MAX_BODY.
    let declared = content_length(&parts.headers);
    let body = if declared.is_some_and(|n| n > DRAIN_MAX) {
        None
    } else {
        read_body(body, declared).await?
    };
    let Some(route) = route else {
        stats.not_found.fetch_add(1, Relaxed);
        return Ok(error(
            StatusCode::NOT_FOUND,
            &format!("Not found: {} {}", parts.method, path),
        ));
    };
    if parts.method != route.method() {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method {} not allowed on {}", parts.method, path),
        );
        let allow = if route.method() == Method::POST {
            "POST"
        } else {
            "GET"
        };
        r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        stats.client_errors.fetch_add(1, Relaxed);
        return Ok(r);
    }

    if route.faultable() {
        if let Some(f) = &state.faults {
            let (decision, latency) = f.decide();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match decision {
                Decision::Pass => {}
                Decision::Drop => {
                    stats.injected_drop.fetch_add(1, Relaxed);
                    return Err(DropConnection);
                }
                Decision::ServerError => {
                    stats.injected_5xx.fetch_add(1, Relaxed);
                    let status =
                        StatusCode::from_u16(f.cfg.status_5xx).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    return Ok(error(status, "Injected fault: service unavailable"));
                }
                Decision::RateLimit => {
                    stats.injected_429.fetch_add(1, Relaxed);
                    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Injected fault: rate limited");
                    r.headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(f.cfg.retry_after));
                    return Ok(r);
                }
            }
        }
    }

    let resp = match route {
        Route::Health => json(StatusCode::OK, "{\"status\":\"ok\"}"),
        Route::PostTrace(agent) => post_trace(&state, agent, &parts.headers, body).await,
        Route::Interpreted(agent, task) => interpreted(&state, agent, task, &parts.headers).await,
        Route::ListTraces(agent) => {
            list_traces(&state, agent, parts.uri.query().unwrap_or(""), &parts.headers).await
        }
        Route::GetTrace(agent, id) => get_trace(&state, agent, id, &parts.headers).await,
        Route::Prompt(id, version) => prompt(&state, id, version, &parts.headers),
    };
    if resp.status().is_client_error() {
        stats.client_errors.fetch_add(1, Relaxed);
    } else if resp.status().is_server_error() {
        stats.server_errors.fetch_add(1, Relaxed);
    }
    Ok(resp)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

fn too_large() -> Resp {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Payload exceeds maximum size of {MAX_BODY} bytes"),
    )
}

/// Sink mode: read and count the body, store nothing, answer like the platform.
async fn sink(state: &State, headers: &HeaderMap, mut body: Incoming) -> Result<Resp, DropConnection> {
    if content_length(headers).is_some_and(|n| n > DRAIN_MAX) {
        state.stats.client_errors.fetch_add(1, Relaxed);
        return Ok(too_large());
    }
    let mut n: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| DropConnection)?;
        if let Some(d) = frame.data_ref() {
            n += d.len();
            if n as u64 > DRAIN_MAX {
                break;
            }
        }
    }
    if n > MAX_BODY {
        state.stats.client_errors.fetch_add(1, Relaxed);
        return Ok(too_large());
    }
    state.stats.sink_accepted.fetch_add(1, Relaxed);
    state.stats.bytes_received.fetch_add(n as u64, Relaxed);
    let body = format!(
        "{{\"message\":\"Trace received\",\"traceId\":\"{}\"}}",
        new_uuid()
    );
    Ok(json(StatusCode::OK, body))
}

/// Oversized bodies up to this size are read and discarded before the 413, so
/// that a client still writing its body sees the answer instead of a reset.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// The whole body, or `None` when it exceeds [`MAX_BODY`] (then it is drained
/// up to [`DRAIN_MAX`]).
async fn read_body(mut body: Incoming, declared: Option<u64>) -> Result<Option<Bytes>, DropConnection> {
    let cap = declared.map_or(16 * 1024, |n| n.min(MAX_BODY as u64) as usize);
    let mut buf = bytes::BytesMut::with_capacity(cap);
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| DropConnection)?;
        let Some(d) = frame.data_ref() else { continue };
        seen += d.len() as u64;
        if seen > DRAIN_MAX {
            return Ok(None);
        }
        if seen <= MAX_BODY as u64 {
            buf.extend_from_slice(d);
        }
    }
    Ok((seen <= MAX_BODY as u64).then(|| buf.freeze()))
}

const REQUIRED: [&str; 4] = ["name", "description", "current_datetime", "duration"];

/// Check the posted document; `Err` is the 400 message.
fn validate_trace(bytes: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("Request body is not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("Request body must be a JSON object")?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(format!("Missing required field(s): {}", missing.join(", ")));
    }
    for k in ["name", "description", "current_datetime"] {
        if !obj.get(k).is_some_and(serde_json::Value::is_string) {
            return Err(format!("Field '{k}' must be a string"));
        }
    }
    if !obj.get("duration").is_some_and(serde_json::Value::is_number) {
        return Err("Field 'duration' must be a number".to_owned());
    }
    Ok(())
}

async fn post_trace(state: &State, path_agent: &str, headers: &HeaderMap, body: Option<Bytes>) -> Resp {
    let agent = match auth_agent(state, headers, path_agent) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(bytes) = body else {
        return too_large();
    };
    state.stats.bytes_received.fetch_add(bytes.len() as u64, Relaxed);
    let idem = match header(headers, "idempotency-key") {
        Some(k) if k.len() > MAX_IDEMPOTENCY_KEY => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters"),
            )
        }
        k => k.map(str::to_owned),
    };
    if let Err(msg) = validate_trace(&bytes) {
        return error(StatusCode::BAD_REQUEST, &msg);
    }
    // Valid JSON is valid UTF-8.
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, "Request body must be UTF-8"),
    };
    let Some(store) = state.store.clone() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no trace store configured");
    };
    match with_store(&store, move |s| s.insert(&agent, idem.as_deref(), text)).await {
        Ok(Inserted::Created(id)) => {
            state.stats.traces_stored.fetch_add(1, Relaxed);
            json(StatusCode::OK, accepted_body(&id))
        }
        Ok(Inserted::Replayed(id)) => {
            state.stats.idempotent_replays.fetch_add(1, Relaxed);
            let mut r = json(StatusCode::OK, accepted_body(&id));
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
        Err(r) => r,
    }
}

fn accepted_body(trace_id: &str) -> String {
    format!("{{\"message\":\"Trace received successfully\",\"traceId\":\"{trace_id}\"}}")
}

async fn interpreted(state: &State, path_agent: &str, task: &str, headers: &HeaderMap) -> Resp {
    let agent = match auth_agent(state, headers, path_agent) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(store) = state.store.clone() else {
        return error(StatusCode::NOT_FOUND, "The sink stores no traces");
    };
    let id = task.trim().to_ascii_lowercase();
    let id2 = id.clone();
    match with_store(&store, move |s| s.get(&agent, &id2)).await {
        Ok(Some(_)) => json(
            StatusCode::NOT_FOUND,
            format!(
                "{{\"error\":{},\"traceId\":{}}}",
                json_str(&format!(
                    "Interpretation is not available from the local Infinium API: trace {id} \
                     is stored, but the local server does not grade traces"
                )),
                json_str(&id)
            ),
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("Trace {id} not found")),
        Err(r) => r,
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

async fn list_traces(state: &State, path_agent: &str, query: &str, headers: &HeaderMap) -> Resp {
    let agent = match auth_agent(state, headers, path_agent) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let parse = |name: &str, default: usize| -> Result<usize, Resp> {
        match query_param(query, name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    &format!("{name} must be a non-negative integer"),
                )
            }),
        }
    };
    let limit = match parse("limit", DEFAULT_PAGE) {
        Ok(l) if (1..=MAX_PAGE).contains(&l) => l,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("limit must be between 1 and {MAX_PAGE}"),
            )
        }
        Err(r) => return r,
    };
    let offset = match parse("offset", 0) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(store) = state.store.clone() else {
        return error(StatusCode::NOT_FOUND, "The sink stores no traces");
    };
    match with_store(&store, move |s| s.list(&agent, limit, offset)).await {
        Ok((page, total)) => {
            let mut out = String::from("{\"traces\":[");
            for (i, r) in page.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&r.to_json());
            }
            let next = offset + page.len();
            let next = if (next as u64) < total {
                next.to_string()
            } else {
                "null".to_owned()
            };
            out.push_str(&format!(
                "],\"total\":{total},\"limit\":{limit},\"offset\":{offset},\"nextOffset\":{next}}}"
            ));
            json(StatusCode::OK, out)
        }
        Err(r) => r,
    }
}

async fn get_trace(state: &State, path_agent: &str, id: &str, headers: &HeaderMap) -> Resp {
    let agent = match auth_agent(state, headers, path_agent) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(store) = state.store.clone() else {
        return error(StatusCode::NOT_FOUND, "The sink stores no traces");
    };
    let id = id.trim().to_ascii_lowercase();
    let id2 = id.clone();
    match with_store(&store, move |s| s.get(&agent, &id2)).await {
        Ok(Some(r)) => json(StatusCode::OK, Record::to_json(&r)),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("Trace {id} not found")),
        Err(r) => r,
    }
}

fn prompt(state: &State, path_id: &str, version: &str, headers: &HeaderMap) -> Resp {
    let wanted = if version.eq_ignore_ascii_case("latest") {
        None
    } else {
        match version.parse::<u64>() {
            Ok(v) if v >= 1 => Some(v),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "version must be 'latest' or a positive integer",
                )
            }
        }
    };
    let (Some(hid), Some(key)) = (header(headers, "x-prompt-id"), header(headers, "x-prompt-key")) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "Missing authentication headers: x-prompt-id and x-prompt-key are required",
        );
    };
    let id = path_id.trim().to_ascii_lowercase();
    if !hid.eq_ignore_ascii_case(&id) {
        return error(
            StatusCode::UNAUTHORIZED,
            "x-prompt-id does not match the prompt id in the request path",
        );
    }
    let reg = state.registry.read();
    let Some(p) = reg.prompts.get(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("Prompt {id} not found"));
    };
    if p.key.as_bytes() != key.as_bytes() {
        return error(StatusCode::UNAUTHORIZED, "Invalid prompt credentials");
    }
    let Some(v) = p.version(wanted) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("Prompt {id} has no version {version}"),
        );
    };
    let body = serde_json::json!({
        "promptId": p.id,
        "name": p.name,
        "version": v.version,
        "content": v.content,
        "createdAt": v.created_at,
    });
    json(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert!(matches!(
            route("/api/v1/agents/a/trace"),
            Some(Route::PostTrace("a"))
        ));
        assert!(matches!(route("/agents/a/trace/"), Some(Route::PostTrace("a"))));
        assert!(matches!(
            route("/agents/a/interpreted-result/t"),
            Some(Route::Interpreted("a", "t"))
        ));
        assert!(matches!(route("/agents/a/traces"), Some(Route::ListTraces("a"))));
        assert!(matches!(
            route("/agents/a/traces/x"),
            Some(Route::GetTrace("a", "x"))
        ));
        assert!(matches!(
            route("/api/v1/prompts/p/v/latest"),
            Some(Route::Prompt("p", "latest"))
        ));
        assert!(matches!(route("/health"), Some(Route::Health)));
        assert!(route("/").is_none());
        assert!(route("/agents/a/trace/x/y").is_none());
        assert!(route("/agents/a").is_none());
        assert!(route("/nope").is_none());
    }

    #[test]
    fn trace_validation() {
        let ok = br#"{"name":"n","description":"d","current_datetime":"t","duration":1.5}"#;
        assert!(validate_trace(ok).is_ok());
        assert!(validate_trace(b"[1]").unwrap_err().contains("JSON object"));
        assert!(validate_trace(b"{").unwrap_err().contains("not valid JSON"));
        let e = validate_trace(br#"{"name":"n"}"#).unwrap_err();
        assert!(e.contains("description, current_datetime, duration"), "{e}");
        let bad = br#"{"name":"n","description":"d","current_datetime":"t","duration":"1"}"#;
        assert!(validate_trace(bad).unwrap_err().contains("duration"));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("limit=5&offset=2", "offset"), Some("2"));
        assert_eq!(query_param("limit", "limit"), Some(""));
        assert_eq!(query_param("", "limit"), None);
    }
}
