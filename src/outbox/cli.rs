//! `regbridge outbox …`: what operators see of the outbox and do with its dead letters.
//!
//! `status` and `dead-letters` only read, so they are safe beside a running service. `requeue`
//! and `discard` never touch files a running service writes: when the directory's lock is held
//! they leave a request for the service's relay and wait for its answer; otherwise they open the
//! outbox themselves.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Outbox, Request, Settings};
use crate::sinks;

/// How long a request waits for the running service's answer (its relay looks every second).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// Every sink's queue and dead letters, and whether a service holds the directory.
pub fn status(dir: &Path) -> Result<Value, String> {
    let queues = super::inspect(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(json!({ "dir": dir, "service_running": super::in_use(dir), "sinks": queues }))
}

/// The dead letters (optionally of one sink) with their last error; with `events`, each event in
/// the CloudEvents JSON format too.
pub fn dead_letters(dir: &Path, sink: Option<&str>, events: bool) -> Result<Value, String> {
    let all = super::dead_letters(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for (name, entries) in all.into_iter().filter(|(n, _)| sink.is_none_or(|s| s == n)) {
        for e in entries {
            let ev = &e.delivery.event;
            let mut item = json!({
                "sink": name,
                "id": ev.id(),
                "type": ev.ty(),
                "subject": ev.subject(),
                "target": e.delivery.target.name,
                "routing_key": e.delivery.target.key,
                "spooled_at_ms": e.spooled_at_ms,
                "attempts": e.attempts,
                "last_error": e.last_error,
            });
            if events {
                item["event"] = serde_json::from_slice(&ev.to_json()).unwrap_or(Value::Null);
            }
            out.push(item);
        }
    }
    Ok(Value::Array(out))
}

/// Requeues or discards dead letters of `sink` (every sink when `None`).
pub async fn apply(dir: &Path, sink: Option<&str>, req: &Request, max_bytes: u64) -> Result<Value, String> {
    let names: Vec<String> = match sink {
        Some(s) => vec![s.to_owned()],
        None => super::inspect_dirs(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .into_iter()
            .map(|(n, _)| n)
            .collect(),
    };
    let mut results = Vec::new();
    if super::in_use(dir) {
        for name in &names {
            results.push(super::request(dir, name, req, ANSWER_WAIT).await?);
        }
        return Ok(json!({ "by": "running service", "results": results }));
    }
    // Queue names are sink names; the outbox takes them as the sinks' own static names.
    let sinks: Vec<&'static str> =
        names.iter().map(|n| sinks::by_name(n).map(|s| s.name)).collect::<Result<_, _>>()?;
    let settings = Settings { max_bytes, ..Settings::new(dir) };
    let outbox = Outbox::open(settings, &sinks).map_err(|e| e.to_string())?;
    for name in &sinks {
        results.push(outbox.apply(name, req).await);
    }
    if let Some(writer) = outbox.close() {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    Ok(json!({ "by": "this command (no service holds the directory)", "results": results }))
}
