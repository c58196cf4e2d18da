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
//! A request is routed and its credentials checked from the headers before
//! any of its body is read; a refused request's body is never read (the
//! answer closes the connection). Every error answer is `{"error": "..."}`.
//! Faults are injected only on the three platform endpoints (trace,
//! interpreted-result, prompts), after authentication, never on the
//! inspection routes (`/traces`, `/health`).

// Handlers return ready-made error responses through `Err`; boxing them would
// only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;

use super::answer::{array, closing, error, json, Obj, Resp};
use super::auth::{self, header};
use super::body::{self, Read};
use super::faults::{Admission, Decision};
use super::store::{new_uuid, Inserted, Record, Store};
use super::State;
use crate::schema::{HEAD_FIELDS, MAX_PAYLOAD_SIZE};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
const MAX_IDEMPOTENCY_KEY: usize = 255;

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

enum Route<'a> {
    PostTrace(&'a str),
    Interpreted(&'a str, &'a str),
    ListTraces(&'a str),
    GetTrace(&'a str, &'a str),
    Prompt(&'a str, &'a str),
    Health,
}

/// Who a route must be called by.
enum Caller<'a> {
    Agent(&'a str),
    Prompt(&'a str),
    Anyone,
}

impl<'a> Route<'a> {
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

    fn caller(&self) -> Caller<'a> {
        match *self {
            Route::PostTrace(a) | Route::Interpreted(a, _) | Route::ListTraces(a) | Route::GetTrace(a, _) => {
                Caller::Agent(a)
            }
            Route::Prompt(p, _) => Caller::Prompt(p),
            Route::Health => Caller::Anyone,
        }
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

fn count(state: &State, resp: &Resp) {
    if resp.status().is_client_error() {
        state.stats.client_errors.fetch_add(1, Relaxed);
    } else if resp.status().is_server_error() {
        state.stats.server_errors.fetch_add(1, Relaxed);
    }
}

/// The service function: never panics on input; `Err` drops the connection.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let stats = &state.stats;
    stats.requests.fetch_add(1, Relaxed);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    // An answer given before the body was read closes the connection.
    let unread = |r: Resp| {
        if body::announced(&parts.headers) {
            closing(r)
        } else {
            r
        }
    };
    let Some(route) = route(path) else {
        stats.not_found.fetch_add(1, Relaxed);
        return Ok(unread(error(
            StatusCode::NOT_FOUND,
            &format!("Not found: {} {}", parts.method, path),
        )));
    };
    if state.sink && parts.method == Method::POST && matches!(route, Route::PostTrace(_)) {
        return Ok(sink(&state, &parts.headers, body).await);
    }
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
        return Ok(unread(r));
    }
    let caller = match route.caller() {
        Caller::Agent(a) => auth::agent(&state, &parts.headers, a),
        Caller::Prompt(p) => auth::prompt(&state, &parts.headers, p),
        Caller::Anyone => Ok(String::new()),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(why) => {
            stats.client_errors.fetch_add(1, Relaxed);
            return Ok(unread(error(StatusCode::UNAUTHORIZED, why)));
        }
    };
    let bytes = if matches!(route, Route::PostTrace(_)) {
        match read_trace_body(&state, &parts.headers, body).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    } else {
        None
    };

    let faults = state.faults.read().clone();
    let faults = faults.filter(|_| route.faultable());
    let mut drop_answer = false;
    let _slot;
    let _in_flight;
    if let Some(f) = &faults {
        let (decision, latency) = f.decide();
        _slot = match f.admit().await {
            Admission::Now(p) => p,
            Admission::AfterQueueing(p) => {
                stats.capacity_queued.fetch_add(1, Relaxed);
                Some(p)
            }
            Admission::Rejected => {
                stats.capacity_429.fetch_add(1, Relaxed);
                // No answer comes sooner than the latency, a refusal neither.
                tokio::time::sleep(latency).await;
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Over capacity: too many requests at once",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(f.cfg.retry_after));
                return Ok(r);
            }
        };
        // The latency is spent holding the slot: it models the time the
        // server takes to answer.
        _in_flight = Some(stats.serving());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match decision {
            Decision::Pass => {}
            Decision::DropAnswer => drop_answer = true,
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
    } else {
        _in_flight = route.faultable().then(|| stats.serving());
    }

    let resp = match route {
        Route::Health => json(StatusCode::OK, Obj::new().str("status", "ok").finish()),
        Route::PostTrace(_) => post_trace(&state, caller, &parts.headers, bytes).await,
        Route::Interpreted(_, task) => interpreted(&state, caller, task).await,
        Route::ListTraces(_) => list_traces(&state, caller, parts.uri.query().unwrap_or("")).await,
        Route::GetTrace(_, id) => get_trace(&state, caller, id).await,
        Route::Prompt(_, version) => prompt(&state, &caller, version),
    };
    count(&state, &resp);
    if drop_answer {
        stats.injected_drop_answer.fetch_add(1, Relaxed);
        return Err(DropConnection);
    }
    Ok(resp)
}

fn too_large() -> Resp {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Payload exceeds maximum size of {MAX_PAYLOAD_SIZE} bytes"),
    )
}

fn timed_out() -> Resp {
    closing(error(
        StatusCode::REQUEST_TIMEOUT,
        "The request body did not arrive in time",
    ))
}

/// The posted body: `Ok(None)` when it exceeds [`MAX_PAYLOAD_SIZE`], or the
/// service's answer when it could not be read.
async fn read_trace_body(
    state: &State,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Option<Bytes>, Result<Resp, DropConnection>> {
    let deadline = tokio::time::Instant::now() + state.limits.body_timeout;
    match body::read(body, body::content_length(headers), MAX_PAYLOAD_SIZE, deadline).await {
        Read::Done { bytes, .. } => Ok(bytes),
        Read::Huge => {
            state.stats.client_errors.fetch_add(1, Relaxed);
            Err(Ok(closing(too_large())))
        }
        Read::TimedOut => {
            state.stats.client_errors.fetch_add(1, Relaxed);
            Err(Ok(timed_out()))
        }
        Read::Broken => Err(Err(DropConnection)),
    }
}

/// Sink mode: read and count the body, store nothing, answer like the platform.
async fn sink(state: &State, headers: &HeaderMap, body: Incoming) -> Resp {
    let deadline = tokio::time::Instant::now() + state.limits.body_timeout;
    let resp = match body::read(body, body::content_length(headers), 0, deadline).await {
        Read::Done { len, .. } if len <= MAX_PAYLOAD_SIZE as u64 => {
            state.stats.sink_accepted.fetch_add(1, Relaxed);
            state.stats.bytes_received.fetch_add(len, Relaxed);
            let id = new_uuid();
            let body = Obj::new()
                .str("message", "Trace received")
                .str("traceId", &id)
                .finish();
            return json(StatusCode::OK, body);
        }
        Read::Done { .. } => too_large(),
        Read::Huge => closing(too_large()),
        Read::TimedOut => timed_out(),
        Read::Broken => closing(error(StatusCode::BAD_REQUEST, "Broken request body")),
    };
    state.stats.client_errors.fetch_add(1, Relaxed);
    resp
}

/// Check the posted document; `Err` is the 400 message.
fn validate_trace(bytes: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("Request body is not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("Request body must be a JSON object")?;
    let missing: Vec<&str> = HEAD_FIELDS
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(format!("Missing required field(s): {}", missing.join(", ")));
    }
    for k in HEAD_FIELDS {
        let (ok, kind) = if k == "duration" {
            (obj.get(k).is_some_and(serde_json::Value::is_number), "a number")
        } else {
            (obj.get(k).is_some_and(serde_json::Value::is_string), "a string")
        };
        if !ok {
            return Err(format!("Field '{k}' must be {kind}"));
        }
    }
    Ok(())
}

async fn post_trace(state: &State, agent: String, headers: &HeaderMap, body: Option<Bytes>) -> Resp {
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
    let accepted = |id: &str| {
        Obj::new()
            .str("message", "Trace received successfully")
            .str("traceId", id)
            .finish()
    };
    match with_store(&store, move |s| s.insert(&agent, idem.as_deref(), text)).await {
        Ok(Inserted::Created(id)) => {
            state.stats.traces_stored.fetch_add(1, Relaxed);
            json(StatusCode::OK, accepted(&id))
        }
        Ok(Inserted::Replayed(id)) => {
            state.stats.idempotent_replays.fetch_add(1, Relaxed);
            let mut r = json(StatusCode::OK, accepted(&id));
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
        Err(r) => r,
    }
}

fn no_store() -> Resp {
    error(StatusCode::NOT_FOUND, "The sink stores no traces")
}

async fn interpreted(state: &State, agent: String, task: &str) -> Resp {
    let Some(store) = state.store.clone() else {
        return no_store();
    };
    let id = task.trim().to_ascii_lowercase();
    let id2 = id.clone();
    match with_store(&store, move |s| s.get(&agent, &id2)).await {
        Ok(Some(_)) => json(
            StatusCode::NOT_FOUND,
            Obj::new()
                .str(
                    "error",
                    &format!(
                        "Interpretation is not available from the local Infinium API: trace {id} \
                         is stored, but the local server does not grade traces"
                    ),
                )
                .str("traceId", &id)
                .finish(),
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

/// `limit` (1..=1000, default 50) and `offset` (any u64, default 0).
fn paging(query: &str) -> Result<(usize, u64), Resp> {
    let bad = |name: &str, range: &str| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("{name} must be an integer from {range}"),
        )
    };
    let limit = match query_param(query, "limit") {
        None | Some("") => DEFAULT_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| bad("limit", &format!("1 to {MAX_PAGE}")))?,
    };
    let offset = match query_param(query, "offset") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| bad("offset", &format!("0 to {}", u64::MAX)))?,
    };
    Ok((limit, offset))
}

async fn list_traces(state: &State, agent: String, query: &str) -> Resp {
    let (limit, offset) = match paging(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(store) = state.store.clone() else {
        return no_store();
    };
    match with_store(&store, move |s| s.list(&agent, limit, offset)).await {
        Ok((page, total)) => {
            // The store clamps the offset to the total, so this cannot overflow.
            let next = offset.min(total) + page.len() as u64;
            let records: Vec<String> = page.iter().map(Record::to_json).collect();
            let body = Obj::with_capacity(records.iter().map(String::len).sum::<usize>() + 100)
                .raw("traces", &array(records.iter().map(String::as_str)))
                .u64("total", total)
                .u64("limit", limit as u64)
                .u64("offset", offset)
                .opt_u64("nextOffset", (next < total).then_some(next))
                .finish();
            json(StatusCode::OK, body)
        }
        Err(r) => r,
    }
}

async fn get_trace(state: &State, agent: String, id: &str) -> Resp {
    let Some(store) = state.store.clone() else {
        return no_store();
    };
    let id = id.trim().to_ascii_lowercase();
    let id2 = id.clone();
    match with_store(&store, move |s| s.get(&agent, &id2)).await {
        Ok(Some(r)) => json(StatusCode::OK, r.to_json()),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("Trace {id} not found")),
        Err(r) => r,
    }
}

fn prompt(state: &State, id: &str, version: &str) -> Resp {
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
    let reg = state.registry.read();
    let Some(p) = reg.prompts.get(id) else {
        // Removed since the credentials were checked.
        return error(StatusCode::UNAUTHORIZED, "Invalid prompt credentials");
    };
    let Some(v) = p.version(wanted) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("Prompt {id} has no version {version}"),
        );
    };
    let body = Obj::new()
        .str("promptId", &p.id)
        .str("name", &p.name)
        .u64("version", v.version)
        .str("content", &v.content)
        .str("createdAt", &v.created_at)
        .finish();
    json(StatusCode::OK, body)
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
    fn query_params_and_paging() {
        assert_eq!(query_param("limit=5&offset=2", "offset"), Some("2"));
        assert_eq!(query_param("limit", "limit"), Some(""));
        assert_eq!(query_param("", "limit"), None);
        assert_eq!(paging("").ok(), Some((50, 0)));
        assert_eq!(paging("offset=18446744073709551615").ok(), Some((50, u64::MAX)));
        for bad in [
            "offset=18446744073709551616",
            "offset=-1",
            "limit=0",
            "limit=1001",
            "limit=x",
        ] {
            assert!(paging(bad).is_err(), "{bad}");
        }
    }
}
