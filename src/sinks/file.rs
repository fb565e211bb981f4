//! The embedded default sink: CloudEvents appended as JSON lines to a local file, fsynced.
//!
//! One writer thread owns the file ([`GroupCommit`]). Requests hand it encoded lines; it writes
//! everything waiting, calls `fsync` once for the lot and then answers them all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{Delivery, Sink, SinkConfig, SinkError, SinkSpec};
use crate::config::{ConfigError, Env};
use crate::group_commit::GroupCommit;

pub const SPEC: SinkSpec = SinkSpec {
    name: "file",
    is_broker: false,
    configure,
    name_field: "",
    key_field: None,
    default_name: "",
    default_key: None,
    name_char_ok: |_| true,
    key_char_ok: |_| true,
    env: &[ENV_PATH],
};

/// Used when no sink at all is configured.
pub const DEFAULT_PATH: &str = "./regbridge-events.jsonl";
pub const ENV_PATH: &str = "REGBRIDGE_FILE_SINK";

/// How many requests may wait for the writer before publishers feel backpressure.
const QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
}

impl FileConfig {
    pub fn shared(path: impl Into<PathBuf>) -> Arc<dyn SinkConfig> {
        Arc::new(Self { path: path.into() })
    }
}

/// On when `REGBRIDGE_FILE_SINK` (or the file's `sinks.file.path`) is set. The configuration
/// loader adds it with [`DEFAULT_PATH`] when no other sink is configured.
fn configure(section: Option<&Value>, env: &Env) -> Result<Option<Arc<dyn SinkConfig>>, ConfigError> {
    let from_file = section
        .map(|s| {
            s.get("path")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ConfigError::invalid("sinks.file", "needs `path: <file>`"))
        })
        .transpose()?;
    Ok(env.get(ENV_PATH).map(str::to_owned).or(from_file).map(FileConfig::shared))
}

impl SinkConfig for FileConfig {
    fn spec(&self) -> &'static SinkSpec {
        &SPEC
    }

    fn describe(&self) -> Value {
        json!({ "path": self.path })
    }

    fn build(&self) -> BoxFuture<'_, Result<Arc<dyn Sink>, SinkError>> {
        Box::pin(async move { FileSink::open(&self.path).map(|s| Arc::new(s) as Arc<dyn Sink>) })
    }
}

struct Job {
    bytes: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Handle to the writer thread. Closing it (on shutdown) lets the thread finish the queue and
/// exit.
pub struct FileSink {
    writer: GroupCommit<Job>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let unavailable = |e: std::io::Error| SinkError::Unavailable {
            sink: "file",
            reason: format!("{}: {e}", path.display()),
        };
        let mut file = open(path).map_err(unavailable)?;
        let last_error = Arc::new(Mutex::new(None));
        let errors = last_error.clone();
        let path = path.to_owned();
        let writer = GroupCommit::spawn("regbridge-file-sink", QUEUE, move |jobs: &mut Vec<Job>| {
            commit(&mut file, &path, jobs, &errors)
        })
        .map_err(unavailable)?;
        Ok(Self { writer, last_error })
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes every waiting job, syncs once for the lot, then answers them all.
fn commit(file: &mut File, path: &Path, jobs: &mut Vec<Job>, errors: &Mutex<Option<String>>) {
    let result = jobs
        .iter()
        .try_for_each(|j| file.write_all(&j.bytes))
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()));
    if let Err(e) = &result {
        tracing::error!(error = %e, "file sink write failed");
        // A failed write may leave the descriptor unusable; reopen for the next batch.
        if let Ok(f) = open(path) {
            *file = f;
        }
    }
    *errors.lock().unwrap_or_else(|p| p.into_inner()) = result.as_ref().err().cloned();
    for job in jobs.drain(..) {
        let _ = job.done.send(result.clone());
    }
}

/// The batch as CloudEvents JSON lines, the file's format.
pub fn lines(batch: &[Delivery]) -> Vec<u8> {
    // `data` plus the attributes (well under 1 KiB) and the newline: one allocation per batch.
    let mut bytes = Vec::with_capacity(batch.iter().map(|d| d.event.data().len() + 1024).sum());
    for d in batch {
        d.event.write_json(&mut bytes);
        bytes.push(b'\n');
    }
    bytes
}

impl Sink for FileSink {
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let unavailable = |reason: String| SinkError::Unavailable { sink: "file", reason };
            if self.writer.is_closed() {
                return Err(unavailable("shutting down".into()));
            }
            let (done, confirmed) = oneshot::channel();
            self.writer
                .submit(Job { bytes: lines(batch), done })
                .await
                .map_err(|_| unavailable("writer stopped".into()))?;
            confirmed.await.map_err(|_| unavailable("writer stopped".into()))?.map_err(unavailable)
        })
    }

    fn health(&self) -> Result<(), String> {
        if self.writer.is_closed() {
            return Err("shut down".into());
        }
        match &*self.last_error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let writer = self.writer.close();
        Box::pin(async move {
            if let Some(w) = writer {
                let _ = tokio::task::spawn_blocking(move || w.join()).await;
            }
        })
    }
}
