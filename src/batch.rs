//! The concurrent batch sender.
//!
//! A producer on tokio's blocking pool takes the GIL in short turns to
//! validate and serialise the next few tasks (a task that fails validation
//! fails alone, with its message) and feeds a bounded channel; the dispatcher
//! keeps at most `max_concurrent` requests in flight, each through the
//! client's limiter and retry policy. Memory stays bounded by the channel and
//! the requests in flight, however long the batch. Results keep input order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::bridge;
use crate::client::response_to_py;
use crate::error::Error;
use crate::payload;
use crate::transport::{Auth, Request, Response, Transport};

/// Tasks serialised per turn with the GIL.
const CHUNK: usize = 32;

struct Item {
    index: usize,
    name: String,
    body: Result<Bytes, String>,
}

enum Outcome {
    Sent(Response),
    Failed { message: String },
}

struct Slot {
    name: String,
    outcome: Option<Outcome>,
}

/// The state of a batch as it finishes (or stops).
pub struct BatchOutcome {
    slots: Vec<Slot>,
    successful: usize,
    failed: usize,
    errors: Vec<String>,
    /// fail_fast: the first failure (task name, error text).
    stopped_on: Option<(String, String)>,
}

fn task_name(task: &Bound<'_, PyAny>) -> String {
    let name = match task.cast::<PyDict>() {
        Ok(d) => d.get_item("name").ok().flatten(),
        Err(_) => task.getattr("name").ok(),
    };
    name.and_then(|n| n.str().ok().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn error_text(e: Error) -> String {
    e.message()
}

/// Serialise `tasks[start..end]` (GIL held).
fn prepare(py: Python<'_>, tasks: &Py<PyList>, start: usize, end: usize) -> Vec<Item> {
    let list = tasks.bind(py);
    (start..end)
        .map(|index| match list.get_item(index) {
            Ok(task) => {
                let name = task_name(&task);
                let body = crate::guard(|| payload::serialize(&task))
                    .map(Bytes::from)
                    .map_err(|e| e.value(py).to_string());
                Item { index, name, body }
            }
            Err(e) => Item {
                index,
                name: "unknown".into(),
                body: Err(e.value(py).to_string()),
            },
        })
        .collect()
}

pub fn run(
    transport: Arc<Transport>,
    tasks: &Bound<'_, PyList>,
    path: String,
    max_concurrent: usize,
    fail_fast: bool,
) -> impl std::future::Future<Output = Result<BatchOutcome, Error>> + Send + 'static {
    let total = tasks.len();
    let tasks = tasks.clone().unbind();
    run_owned(transport, tasks, total, path, max_concurrent, fail_fast)
}

async fn run_owned(
    transport: Arc<Transport>,
    tasks: Py<PyList>,
    total: usize,
    path: String,
    max_concurrent: usize,
    fail_fast: bool,
) -> Result<BatchOutcome, Error> {
    let max_concurrent = max_concurrent.max(1);
    let (tx, mut rx) = mpsc::channel::<Item>(max_concurrent * 2 + CHUNK);
    let stop = Arc::new(AtomicBool::new(false));
    let producer_stop = stop.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut next = 0;
        while next < total && !producer_stop.load(Ordering::Relaxed) {
            let end = (next + CHUNK).min(total);
            let Some(items) = bridge::with_python(|py| prepare(py, &tasks, next, end)) else {
                return;
            };
            next = end;
            for item in items {
                if tx.blocking_send(item).is_err() {
                    return;
                }
            }
        }
    });

    let mut out = BatchOutcome {
        slots: (0..total)
            .map(|_| Slot {
                name: String::new(),
                outcome: None,
            })
            .collect(),
        successful: 0,
        failed: 0,
        errors: Vec::new(),
        stopped_on: None,
    };
    let mut in_flight: JoinSet<(usize, Result<Response, Error>)> = JoinSet::new();
    let mut input_done = false;

    let record = |out: &mut BatchOutcome, index: usize, result: Result<Response, String>| match result {
        Ok(r) => {
            out.successful += 1;
            out.slots[index].outcome = Some(Outcome::Sent(r));
        }
        Err(text) => {
            let name = out.slots[index].name.clone();
            let message = format!("Task '{name}' failed: {text}");
            out.failed += 1;
            out.errors.push(message.clone());
            out.slots[index].outcome = Some(Outcome::Failed { message });
            if fail_fast && out.stopped_on.is_none() {
                out.stopped_on = Some((name, text));
            }
        }
    };

    loop {
        if out.stopped_on.is_some() {
            stop.store(true, Ordering::Relaxed);
            in_flight.abort_all();
            break;
        }
        tokio::select! {
            biased;
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                match done {
                    Ok((index, r)) => record(&mut out, index, r.map_err(error_text)),
                    Err(e) if e.is_panic() => return Err(crate::error::from_panic(e.into_panic())),
                    Err(_) => {}
                }
            }
            item = rx.recv(), if !input_done && in_flight.len() < max_concurrent => {
                match item {
                    None => input_done = true,
                    Some(item) => {
                        out.slots[item.index].name = item.name;
                        match item.body {
                            Err(text) => record(&mut out, item.index, Err(text)),
                            Ok(body) => {
                                let t = transport.clone();
                                let req = Request {
                                    method: Method::POST,
                                    path: path.clone(),
                                    auth: Auth::Agent,
                                    body: Some(body),
                                    idempotency_key: Some(crate::transport::new_idempotency_key()),
                                };
                                let index = item.index;
                                in_flight.spawn(async move { (index, t.execute(&req).await) });
                            }
                        }
                    }
                }
            }
            else => break,
        }
    }
    drop(rx);
    let _ = producer.await;
    Ok(out)
}

/// Python view of an outcome: a list of `(ok, status, data_or_message, name)`
/// in input order (entries never started, after a fail-fast stop, are
/// `(False, None, None, name)`).
pub fn outcome_to_py(py: Python<'_>, out: BatchOutcome) -> PyResult<Py<PyAny>> {
    let list = PyList::empty(py);
    for slot in out.slots {
        let entry = match slot.outcome {
            Some(Outcome::Sent(r)) => {
                let status = r.status;
                let pair = response_to_py(py, r)?;
                let data = pair.bind(py).get_item(1)?;
                (true, Some(status), data.unbind(), slot.name)
            }
            Some(Outcome::Failed { message }) => (
                false,
                None,
                message.into_pyobject(py)?.into_any().unbind(),
                slot.name,
            ),
            None => (false, None, py.None(), slot.name),
        };
        list.append(PyTuple::new(
            py,
            [
                entry.0.into_pyobject(py)?.to_owned().into_any().unbind(),
                entry.1.into_pyobject(py)?.into_any().unbind(),
                entry.2,
                entry.3.into_pyobject(py)?.into_any().unbind(),
            ],
        )?)?;
    }
    if let Some((name, text)) = out.stopped_on {
        return Err(Error::Batch {
            message: format!("Batch operation failed on task '{name}': {text}"),
            successful: out.successful,
            failed: out.failed,
            errors: out.errors,
        }
        .into());
    }
    Ok(list.into_any().unbind())
}
