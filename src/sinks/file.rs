//! The embedded default sink: CloudEvents appended as JSON lines to a local file, fsynced.
//!
//! One writer thread owns the file. Requests hand it encoded lines over a bounded channel; it
//! drains everything waiting, writes it, calls `fsync` once for the lot and then answers them all
//! (group commit), so concurrent webhooks share one disk flush instead of queueing for one each.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Delivery, Sink, SinkConfig, SinkError, SinkSpec};
use crate::config::{ConfigError, Env};

pub const SPEC: SinkSpec = SinkSpec {
    name: "file",
    configure,
    name_field: "",
    key_field: None,
    default_name: "",
    default_key: None,
    name_char_ok: |_| true,
    key_char_ok: |_| true,
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

/// Handle to the writer thread. Dropping the last sender (on shutdown) lets the thread finish the
/// queue and exit.
pub struct FileSink {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let unavailable = |e: std::io::Error| SinkError::Unavailable {
            sink: "file",
            reason: format!("{}: {e}", path.display()),
        };
        let file = open(path).map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let last_error = Arc::new(Mutex::new(None));
        let errors = last_error.clone();
        let path = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("regbridge-file-sink".into())
            .spawn(move || write_loop(file, &path, rx, &errors))
            .map_err(unavailable)?;
        Ok(Self { tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)), last_error })
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(mut file: File, path: &Path, mut rx: mpsc::Receiver<Job>, errors: &Mutex<Option<String>>) {
    let mut jobs = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let result = jobs
            .iter()
            .try_for_each(|j| file.write_all(&j.bytes))
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()));
        if let Err(e) = &result {
            tracing::error!(error = %e, "file sink write failed");
            // A failed write may leave the descriptor unusable; reopen for the next batch.
            if let Ok(f) = open(path) {
                file = f;
            }
        }
        *errors.lock().unwrap_or_else(|p| p.into_inner()) = result.as_ref().err().cloned();
        for job in jobs.drain(..) {
            let _ = job.done.send(result.clone());
        }
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
    fn publish(&self, batch: Vec<Delivery>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let unavailable = |reason: String| SinkError::Unavailable { sink: "file", reason };
            let bytes = lines(&batch);
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let tx = tx.ok_or_else(|| unavailable("shutting down".into()))?;
            let (done, confirmed) = oneshot::channel();
            tx.send(Job { bytes, done }).await.map_err(|_| unavailable("writer stopped".into()))?;
            confirmed.await.map_err(|_| unavailable("writer stopped".into()))?.map_err(unavailable)
        })
    }

    fn health(&self) -> Result<(), String> {
        if self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err("shut down".into());
        }
        match &*self.last_error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            if let Some(w) = writer {
                let _ = tokio::task::spawn_blocking(move || w.join()).await;
            }
        })
    }
}
