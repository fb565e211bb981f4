//! Outbox: deliveries a sink did not confirm in time, made durable on local disk and relayed to
//! the sink in order once it takes them again, also after a crash or restart.
//!
//! Layout of `REGBRIDGE_OUTBOX_DIR`: `lock` (held by the running service), and per sink a
//! directory with its queue as segment files (`<first seq>.seg`, checksummed frames, see
//! [`segment`]), the delivered-up-to cursor `acked`, the dead letters `dead.log`, and the
//! operator's requests. One writer thread appends and syncs for all sinks (group commit); one
//! relay task per sink reads, publishes and acknowledges ([`relay`]).

pub mod cli;
mod dead;
mod entry;
mod queue;
mod recover;
pub mod relay;
mod segment;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

pub use dead::{Action, Applied, Request};
pub use entry::Entry;
pub use queue::{Queue, QueueStatus, Space, Ticket};

use crate::group_commit::GroupCommit;
use crate::sinks::Delivery;
use crate::telemetry::names;

pub const DEFAULT_DIR: &str = "./regbridge-outbox";
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How the outbox is set up (from `REGBRIDGE_OUTBOX_*`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub dir: PathBuf,
    /// Disk the queues and dead letters may take; beyond it spooling is refused (503).
    pub max_bytes: u64,
    /// Permanent refusals of one entry before it moves to the dead letters.
    pub max_attempts: u32,
    /// Size at which a queue starts a new segment file (see [`writer::SEGMENT_BYTES`]).
    pub segment_bytes: u64,
}

impl Settings {
    /// The defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            segment_bytes: writer::SEGMENT_BYTES,
        }
    }
}

/// Why the outbox did not take (or cannot serve) deliveries.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox is full ({used} of {max} bytes on disk)")]
    Full { used: u64, max: u64 },
    #[error("the outbox could not write: {0}")]
    Io(String),
    #[error("the outbox did not commit within {0:?}")]
    Timeout(Duration),
    #[error("the outbox is closed")]
    Closed,
    #[error("outbox directory {0} is in use by another regbridge process (every replica needs its own)")]
    Locked(PathBuf),
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> OutboxError + '_ {
    move |e| OutboxError::Io(format!("{}: {e}", dir.display()))
}

/// The open outbox; cheap to clone (shared). Holds the directory's lock while any clone lives.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    queues: Vec<Arc<Queue>>,
    writer: GroupCommit<writer::Job>,
    space: Arc<Space>,
    disk: metrics::Gauge,
    _lock: File,
}

/// The whole outbox's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub used_bytes: u64,
    pub max_bytes: u64,
    pub sinks: Vec<QueueStatus>,
}

/// Takes the directory's lock, for the service or an offline CLI command.
fn lock(dir: &Path) -> Result<File, OutboxError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file =
        File::options().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(io(dir))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OutboxError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(dir)(e)),
    }
}

/// Whether a process holds the directory's lock (a running service).
pub fn in_use(dir: &Path) -> bool {
    File::options().write(true).open(dir.join("lock")).is_ok_and(|f| f.try_lock().is_err())
}

impl Outbox {
    /// Opens (creating) the outbox for `sinks`: takes the lock, recovers every queue (torn tails
    /// cut, delivered segments removed) and starts the writer.
    pub fn open(settings: Settings, sinks: &[&'static str]) -> Result<Self, OutboxError> {
        let dir = settings.dir.clone();
        let lock = lock(&dir)?;
        let space = Arc::new(Space::default());
        let mut queues = Vec::with_capacity(sinks.len());
        for sink in sinks {
            queues.push(Arc::new(Queue::open(dir.join(sink), sink, space.clone()).map_err(io(&dir))?));
        }
        for (name, _) in inspect_dirs(&dir).unwrap_or_default() {
            if !sinks.contains(&name.as_str()) {
                tracing::warn!(sink = %name, dir = %dir.display(), "outbox holds a queue for a sink that is not configured; it stays on disk untouched");
            }
        }
        let mut w = writer::Writer::new(queues.clone(), space.clone(), &settings).map_err(io(&dir))?;
        let writer =
            GroupCommit::spawn("regbridge-outbox", 1024, move |jobs: &mut Vec<writer::Job>| w.commit(jobs))
                .map_err(io(&dir))?;
        metrics::gauge!(names::OUTBOX_CAPACITY).set(settings.max_bytes as f64);
        let disk = metrics::gauge!(names::OUTBOX_DISK);
        let outbox = Self { inner: Arc::new(Inner { settings, queues, writer, space, disk, _lock: lock }) };
        outbox.refresh_gauges();
        Ok(outbox)
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn queues(&self) -> &[Arc<Queue>] {
        &self.inner.queues
    }

    fn index(&self, sink: &str) -> Option<usize> {
        self.inner.queues.iter().position(|q| q.sink == sink)
    }

    /// `Some` when the sink has a backlog: its new deliveries must be spooled behind it.
    pub fn behind(&self, sink: &str) -> Option<Ticket> {
        self.inner.queues.get(self.index(sink)?)?.behind()
    }

    /// A spool for deliveries the sink did not confirm (`reason`): the sink enters its backlog.
    pub fn enter(&self, sink: &str, reason: &str) -> Option<Ticket> {
        Some(self.inner.queues.get(self.index(sink)?)?.enter(reason))
    }

    /// Makes `batch` durable in the ticket's queue within `within`; nothing of it is kept if
    /// that fails, or if the time runs out before the writer took it.
    pub async fn spool(
        &self,
        ticket: Ticket,
        batch: &[Delivery],
        within: Duration,
    ) -> Result<(), OutboxError> {
        let queue = self.index(ticket.0.sink).ok_or(OutboxError::Closed)?;
        let now = entry::now_ms();
        let payloads = batch.iter().map(|d| entry::encode(d, now)).collect();
        self.commit(queue, payloads, ticket, within, false).await
    }

    async fn commit(
        &self,
        queue: usize,
        payloads: Vec<Vec<u8>>,
        ticket: Ticket,
        within: Duration,
        moving: bool,
    ) -> Result<(), OutboxError> {
        let (done, committed) = oneshot::channel();
        let job = writer::Job { queue, payloads, ticket, moving, done };
        let attempt = async {
            self.inner.writer.submit(job).await.map_err(|_| OutboxError::Closed)?;
            committed.await.map_err(|_| OutboxError::Closed)?
        };
        tokio::time::timeout(within, attempt).await.map_err(|_| OutboxError::Timeout(within))?
    }

    /// Whether spooling can take more now (room left, no write failure outstanding).
    pub fn can_take(&self) -> bool {
        self.health().is_ok()
    }

    pub fn health(&self) -> Result<(), String> {
        let (used, max) = (self.inner.space.used(), self.inner.settings.max_bytes);
        if used >= max || self.inner.space.refused() {
            return Err(format!("full ({used} of {max} bytes)"));
        }
        match self.inner.queues.iter().find_map(|q| q.status().error) {
            Some(e) => Err(e),
            None if self.inner.writer.is_closed() => Err("closed".into()),
            None => Ok(()),
        }
    }

    pub fn status(&self) -> Status {
        Status {
            dir: self.inner.settings.dir.clone(),
            used_bytes: self.inner.space.used(),
            max_bytes: self.inner.settings.max_bytes,
            sinks: self.inner.queues.iter().map(|q| q.status()).collect(),
        }
    }

    pub fn refresh_gauges(&self) {
        self.inner.disk.set(self.inner.space.used() as f64);
        for q in &self.inner.queues {
            q.refresh_gauges();
        }
    }

    /// Requeues or discards dead letters of `sink`, as `req` says.
    pub async fn apply(&self, sink: &str, req: &Request) -> Applied {
        let mut applied = Applied {
            nonce: req.nonce,
            sink: sink.to_owned(),
            action: Some(req.action),
            ..Applied::default()
        };
        let Some(qi) = self.index(sink) else {
            applied.error = Some(format!("no queue for sink `{sink}`"));
            return applied;
        };
        let queue = self.inner.queues[qi].clone();
        // The relay does not move an entry in while the dead letters are read and rewritten.
        let _dead = queue.dead_lock().await;
        let dir = queue.dir.clone();
        let picked = tokio::task::spawn_blocking({
            let (dir, req) = (dir.clone(), req.clone());
            move || dead::select(&dir, &req)
        })
        .await;
        let (selected, kept) = match picked {
            Ok(Ok(split)) => split,
            Ok(Err(e)) => return Applied { error: Some(e.to_string()), ..applied },
            Err(e) => return Applied { error: Some(e.to_string()), ..applied },
        };
        if selected.is_empty() {
            return applied;
        }
        if req.action == Action::Requeue {
            // Fresh entries (attempts start over) that keep when they were first spooled.
            let payloads = selected.iter().map(|e| entry::encode(&e.delivery, e.spooled_at_ms)).collect();
            let ticket = queue.enter("dead letters requeued by an operator");
            // Moved from the dead letters, not added: the byte budget does not refuse them.
            if let Err(e) = self.commit(qi, payloads, ticket, Duration::from_secs(30), true).await {
                return Applied { error: Some(e.to_string()), ..applied };
            }
        }
        let rewritten =
            tokio::task::spawn_blocking(move || dead::rewrite(&dir, &kept).map(|b| (kept.len(), b))).await;
        match rewritten {
            Ok(Ok((count, bytes))) => queue.set_dead(count as u64, bytes),
            // Requeued but still listed: they would be requeued twice; say so.
            Ok(Err(e)) => applied.error = Some(format!("dead letters not rewritten: {e}")),
            Err(e) => applied.error = Some(e.to_string()),
        }
        applied.entries = selected.len() as u64;
        tracing::info!(sink, action = ?req.action, entries = applied.entries, "outbox: dead letters handled as an operator asked");
        applied
    }

    /// Stops the writer after what is queued; returns its thread to join.
    pub fn close(&self) -> Option<std::thread::JoinHandle<()>> {
        self.inner.writer.close()
    }
}

/// The sink directories under `dir` (read-only).
fn inspect_dirs(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The figures of an outbox directory without opening it: safe beside a running service (a
/// write in progress just ends a queue early).
pub fn inspect(dir: &Path) -> std::io::Result<Vec<QueueStatus>> {
    let now = entry::now_ms();
    let mut out = Vec::new();
    for (sink, path) in inspect_dirs(dir)? {
        let r = recover::recover(&path, &sink, false)?;
        out.push(QueueStatus {
            events: r.queued,
            bytes: r.queued_bytes,
            oldest_age_seconds: r.oldest_ms.map(|t| now.saturating_sub(t) as f64 / 1e3),
            dead_letters: r.dead,
            backlog: r.queued > 0,
            error: None,
            sink,
        });
    }
    Ok(out)
}

/// The dead letters of every sink under `dir` (read-only).
pub fn dead_letters(dir: &Path) -> std::io::Result<Vec<(String, Vec<Entry>)>> {
    inspect_dirs(dir)?.into_iter().map(|(name, path)| Ok((name, dead::list(&path)?))).collect()
}

/// Leaves `req` for the running service's relay of `sink` and waits (up to `wait`) for its
/// answer.
pub async fn request(dir: &Path, sink: &str, req: &Request, wait: Duration) -> Result<Applied, String> {
    let path = dir.join(sink);
    if !path.is_dir() {
        return Err(format!("no queue for sink `{sink}` in {}", dir.display()));
    }
    let req = Request { nonce: getrandom::u64().unwrap_or(1) | 1, ..req.clone() };
    dead::leave_request(&path, &req).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(applied) = dead::result(&path, req.nonce) {
            return Ok(applied);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the running service did not answer within {wait:?}; the request stays in {}",
                path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests;
