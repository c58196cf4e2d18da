//! How much of a trace POST is reqwest, and how much is what lies under it?
//!
//! The same 13,219-byte POST with the SDK's headers, sent by:
//!
//! * `S1` reqwest configured as the SDK configures it, one `block_on` per
//!   request from a plain thread (what a blocking `send_task_data` does);
//! * `S2` hyper's `client::conn::http1` API, its `Connection` spawned on the
//!   runtime (what reqwest does underneath, without reqwest's layers);
//! * `S3` hyper, with the `Connection` polled inside the caller's `block_on`
//!   (no second task, no cross-thread hand-off);
//! * `S4` as S3 on a `current_thread` runtime owned by the caller (the floor:
//!   no other thread at all);
//! * `S5` hyper-util's pooled `legacy::Client`, the engine reqwest wraps,
//!   used directly (reqwest's layers gone, its pool kept), one `block_on`
//!   per request as S1;
//! * `C1` reqwest with 32 requests in flight (a driver task and a JoinSet, as
//!   the SDK's batch sender);
//! * `C2` hyper, 32 connections each owned by a task, connections spawned;
//! * `C3` hyper, each task also drives its own connection;
//! * `C4` hyper-util's `legacy::Client` with 32 in flight, driven as C1.
//!
//! Every runtime but S4's is one multi-thread runtime with 2 workers, the
//! SDK's shape. Usage: `http-probe URL VARIANT [N] [WARMUP]`; prints one JSON
//! line with wall time, requests/s and the process's CPU per request.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::runtime::{Builder, Runtime};

const CONCURRENCY: usize = 32;
const BODY_LEN: usize = 13_219;
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;
type Sender = SendRequest<Full<Bytes>>;

struct Target {
    url: reqwest::Url,
    addr: SocketAddr,
    path: Uri,
    /// The absolute URI (hyper-util's pooled client takes absolute-form).
    abs_uri: Uri,
    /// The headers the SDK sends (user-agent, agent id and key, content-type).
    headers: HeaderMap,
    /// `headers` plus host and accept, which reqwest adds by itself.
    hyper_headers: HeaderMap,
    body: Bytes,
}

fn idempotency_key() -> HeaderValue {
    // As the SDK draws it: a v4 UUID from a userspace generator.
    let text = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string();
    HeaderValue::from_str(&text).expect("a UUID is a valid header value")
}

fn target(url: &str) -> Arc<Target> {
    let u = reqwest::Url::parse(url).expect("usage: http-probe URL VARIANT [N] [WARMUP]");
    let host = format!(
        "{}:{}",
        u.host_str().expect("URL has a host"),
        u.port_or_known_default().expect("URL has a port")
    );
    let addr: SocketAddr = host.parse().expect("the URL's host is an IP address");
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(USER_AGENT, HeaderValue::from_static("infinium-python/1.0.0"));
    headers.insert(
        HeaderName::from_static("x-agent-id"),
        HeaderValue::from_static("00000000-0000-0000-0000-000000000001"),
    );
    let mut key = HeaderValue::from_static("probe-secret-key-0123456789abcdef");
    key.set_sensitive(true);
    headers.insert(HeaderName::from_static("x-agent-key"), key);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut hyper_headers = headers.clone();
    hyper_headers.insert(HOST, HeaderValue::from_str(&host).expect("host header"));
    hyper_headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    Arc::new(Target {
        path: u.path().parse().expect("URL path"),
        abs_uri: u.as_str().parse().expect("URL"),
        url: u,
        addr,
        headers,
        hyper_headers,
        body: Bytes::from(vec![b'x'; BODY_LEN]),
    })
}

fn cpu_us() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// --- reqwest, configured as src/transport.rs configures it ------------------

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(CONCURRENCY)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client")
}

async fn reqwest_one(client: &reqwest::Client, t: &Target) -> usize {
    let mut headers = t.headers.clone();
    headers.insert(IDEMPOTENCY_KEY.clone(), idempotency_key());
    let resp = client
        .request(Method::POST, t.url.clone())
        .headers(headers)
        .body(t.body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("response body").len()
}

// --- hyper-util's pooled client (what reqwest wraps) -------------------------------

type Legacy = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

fn legacy_client() -> Legacy {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(http)
}

async fn legacy_one(client: &Legacy, t: &Target) -> usize {
    // The pooled client sets Host itself; accept as reqwest adds it.
    let mut headers = t.headers.clone();
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    let req = post(t, headers, t.abs_uri.clone());
    body_len(client.request(req).await.expect("request")).await
}

/// The trace POST to `uri` with `headers` plus a fresh idempotency key.
fn post(t: &Target, mut headers: HeaderMap, uri: Uri) -> Request<Full<Bytes>> {
    headers.insert(IDEMPOTENCY_KEY.clone(), idempotency_key());
    let mut req = Request::new(Full::new(t.body.clone()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

/// Check a 200 and read the whole answer; its length.
async fn body_len(resp: http::Response<hyper::body::Incoming>) -> usize {
    assert_eq!(resp.status(), 200);
    resp.into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes()
        .len()
}

// --- hyper's connection API ----------------------------------------------------

async fn hyper_one(sender: &mut Sender, t: &Target) -> usize {
    sender.ready().await.expect("connection ready");
    let req = post(t, t.hyper_headers.clone(), t.path.clone());
    body_len(sender.send_request(req).await.expect("request")).await
}

async fn hyper_connect(t: &Target) -> (Sender, Conn) {
    let tcp = TcpStream::connect(t.addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    http1::handshake(TokioIo::new(tcp)).await.expect("handshake")
}

/// Run `work` while polling the connection future too (S3, S4, C3).
async fn with_conn<F: std::future::Future>(conn: &mut Pin<Box<Conn>>, work: F) -> F::Output {
    tokio::pin!(work);
    tokio::select! {
        biased;
        r = &mut work => r,
        r = conn.as_mut() => panic!("connection ended: {r:?}"),
    }
}

// --- one at a time ---------------------------------------------------------------

/// (wall seconds, CPU µs) of `n` requests after `warm` unmeasured ones.
fn sequential(variant: &str, t: &Arc<Target>, n: usize, warm: usize) -> (f64, f64) {
    macro_rules! timed {
        ($one:expr) => {{
            for _ in 0..warm {
                $one;
            }
            let (t0, c0) = (Instant::now(), cpu_us());
            for _ in 0..n {
                $one;
            }
            (t0.elapsed().as_secs_f64(), cpu_us() - c0)
        }};
    }
    match variant {
        "S1" => {
            let rt = multi_thread();
            let client = built_in(&rt, reqwest_client);
            timed!(rt.block_on(reqwest_one(&client, t)))
        }
        "S5" => {
            let rt = multi_thread();
            let client = built_in(&rt, legacy_client);
            timed!(rt.block_on(legacy_one(&client, t)))
        }
        "S2" => {
            let rt = multi_thread();
            let (mut sender, conn) = rt.block_on(hyper_connect(t));
            rt.spawn(conn);
            timed!(rt.block_on(hyper_one(&mut sender, t)))
        }
        "S3" | "S4" => {
            let rt = if variant == "S3" {
                multi_thread()
            } else {
                Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
            };
            let (mut sender, conn) = rt.block_on(hyper_connect(t));
            let mut conn = Box::pin(conn);
            timed!(rt.block_on(with_conn(&mut conn, hyper_one(&mut sender, t))))
        }
        _ => panic!("unknown variant {variant}"),
    }
}

// --- 32 in flight ------------------------------------------------------------------

/// A client built inside the runtime (reqwest and hyper-util take its handle).
fn built_in<C>(rt: &Runtime, make: impl FnOnce() -> C) -> C {
    let _entered = rt.enter();
    make()
}

/// (wall seconds, CPU µs) of `n` requests driven by [`driven`] after `warm`
/// unmeasured ones (C1, C4).
fn timed_driven<C, F, Fut>(
    rt: &Runtime,
    client: C,
    t: &Arc<Target>,
    n: usize,
    warm: usize,
    one: F,
) -> (f64, f64)
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C, Arc<Target>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let run = |m: usize| {
        let h = rt.spawn(driven(client.clone(), t.clone(), m, one.clone()));
        rt.block_on(h).expect("driver task");
    };
    run(warm);
    let (t0, c0) = (Instant::now(), cpu_us());
    run(n);
    (t0.elapsed().as_secs_f64(), cpu_us() - c0)
}

/// A driver task keeping 32 requests in flight in a JoinSet (C1, C4).
async fn driven<C, F, Fut>(client: C, t: Arc<Target>, n: usize, one: F)
where
    C: Clone + Send + 'static,
    F: Fn(C, Arc<Target>) -> Fut,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    let spawn = |set: &mut tokio::task::JoinSet<usize>| {
        set.spawn(one(client.clone(), t.clone()));
    };
    while started < n.min(CONCURRENCY) {
        spawn(&mut set);
        started += 1;
    }
    while let Some(r) = set.join_next().await {
        r.expect("request task");
        if started < n {
            spawn(&mut set);
            started += 1;
        }
    }
}

/// One C2/C3 connection's share: requests until `n` are taken, then hand the
/// connection back for the next phase.
async fn hyper_worker(
    mut sender: Sender,
    mut conn: Option<Pin<Box<Conn>>>,
    t: Arc<Target>,
    next: Arc<AtomicUsize>,
    n: usize,
) -> (Sender, Option<Pin<Box<Conn>>>) {
    let work = async {
        while next.fetch_add(1, Ordering::Relaxed) < n {
            hyper_one(&mut sender, &t).await;
        }
    };
    match conn.as_mut() {
        Some(c) => with_conn(c, work).await,
        None => work.await,
    }
    (sender, conn)
}

fn concurrent(variant: &str, t: &Arc<Target>, n: usize, warm: usize) -> (f64, f64) {
    let rt = multi_thread();
    match variant {
        "C1" => {
            let one = |c: reqwest::Client, t: Arc<Target>| async move { reqwest_one(&c, &t).await };
            timed_driven(&rt, built_in(&rt, reqwest_client), t, n, warm, one)
        }
        "C4" => {
            let one = |c: Legacy, t: Arc<Target>| async move { legacy_one(&c, &t).await };
            timed_driven(&rt, built_in(&rt, legacy_client), t, n, warm, one)
        }
        "C2" | "C3" => {
            let mut conns: Vec<(Sender, Option<Pin<Box<Conn>>>)> = rt.block_on(async {
                let mut v = Vec::new();
                for _ in 0..CONCURRENCY {
                    let (sender, conn) = hyper_connect(t).await;
                    if variant == "C2" {
                        tokio::spawn(conn);
                        v.push((sender, None));
                    } else {
                        v.push((sender, Some(Box::pin(conn))));
                    }
                }
                v
            });
            let mut run = |m: usize| {
                let next = Arc::new(AtomicUsize::new(0));
                let handles: Vec<_> = conns
                    .drain(..)
                    .map(|(s, c)| rt.spawn(hyper_worker(s, c, t.clone(), next.clone(), m)))
                    .collect();
                conns = rt.block_on(async {
                    let mut v = Vec::new();
                    for h in handles {
                        v.push(h.await.expect("connection task"));
                    }
                    v
                });
            };
            run(warm);
            let (t0, c0) = (Instant::now(), cpu_us());
            run(n);
            (t0.elapsed().as_secs_f64(), cpu_us() - c0)
        }
        _ => panic!("unknown variant {variant}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("usage: http-probe URL VARIANT [N] [WARMUP]");
    let variant = args.get(2).map_or("S1", String::as_str);
    let one_at_a_time = variant.starts_with('S');
    let number = |i: usize, default: usize| args.get(i).map_or(default, |s| s.parse().expect("a count"));
    let n = number(3, if one_at_a_time { 20_000 } else { 40_000 });
    let warm = number(4, if one_at_a_time { 1_000 } else { 2_000 });
    let t = target(url);
    let (secs, cpu) = if one_at_a_time {
        sequential(variant, &t, n, warm)
    } else {
        concurrent(variant, &t, n, warm)
    };
    println!(
        "{{\"variant\":\"{variant}\",\"n\":{n},\"secs\":{secs:.6},\"us_per_req\":{:.3},\"rps\":{:.1},\"cpu_us_per_req\":{:.3}}}",
        secs * 1e6 / n as f64,
        n as f64 / secs,
        cpu / n as f64
    );
}
