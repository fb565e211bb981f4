//! One sink's queue: its segments, what has been delivered, whether new deliveries must queue
//! behind a backlog, and the reads, acknowledgements and dead letters of its relay.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use super::entry::{self, Entry};
use super::recover::{self, Recovered, Segment};
use super::segment::{self, FrameReader};
use crate::telemetry::names;

/// The outbox's disk: bytes taken by every queue and dead-letter file, and whether the writer
/// last refused a spool for want of room (cleared as soon as room comes back).
#[derive(Default)]
pub struct Space {
    used: AtomicU64,
    refused: AtomicBool,
}

impl Space {
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, n: u64) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn free(&self, n: u64) {
        self.used.fetch_sub(n.min(self.used()), Ordering::Relaxed);
        self.refused.store(false, Ordering::Relaxed);
    }

    pub(super) fn refuse(&self) {
        self.refused.store(true, Ordering::Relaxed);
    }

    /// A spool fitted after all: the last refusal no longer says the outbox is full.
    pub(super) fn fits(&self) {
        self.refused.store(false, Ordering::Relaxed);
    }

    /// Whether the last spool was refused as too big for what is left.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// What the queue's shared state holds; guarded by [`Queue::state`], never across an await.
pub(super) struct State {
    pub segments: VecDeque<Segment>,
    /// The sequence number the next committed entry gets.
    pub next: u64,
    pub acked: u64,
    /// Where the first undelivered entry starts, as recovered (the relay's first read).
    pub head: Option<(u64, u64)>,
    pub queued_bytes: u64,
    pub oldest_ms: Option<u64>,
    /// Spools handed to the writer and not yet committed or failed.
    pub pending: usize,
    pub backlog: Option<Backlog>,
    pub dead: u64,
    pub dead_bytes: u64,
    /// The writer's last failure and when, cleared by its next success; forgotten after a while
    /// (see [`ERROR_MEMORY`]), so one failed write does not keep the outbox "unusable".
    pub error: Option<(String, Instant)>,
}

/// A backlog in progress: since when, for the log line when it ends.
pub(super) struct Backlog {
    since: Instant,
}

impl State {
    pub fn queued(&self) -> u64 {
        self.next - 1 - self.acked
    }
}

/// The metric handles of one sink's queue.
struct Metrics {
    events: metrics::Gauge,
    bytes: metrics::Gauge,
    oldest: metrics::Gauge,
    dead: metrics::Gauge,
    spooled: metrics::Counter,
    replayed: metrics::Counter,
    dead_lettered: metrics::Counter,
}

/// A sink's queue, shared by the writer (appends), the delivery stage (backlog checks) and the
/// relay (reads and acknowledgements).
pub struct Queue {
    pub sink: &'static str,
    pub(super) dir: PathBuf,
    state: Mutex<State>,
    /// Mirrors `state.backlog.is_some()` so the healthy path checks it without the lock.
    behind: AtomicBool,
    /// Wakes the relay when entries were committed.
    pub(super) wake: Notify,
    /// Bytes the whole outbox holds on disk (shared by every queue and the writer).
    space: Arc<Space>,
    /// Held by whatever writes the dead letters (the relay moving one in, a request rewriting
    /// them), across the awaits in between.
    dead: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

/// A spool in progress for one queue: while it lives the queue stays in backlog, so nothing
/// overtakes the entries it is about to commit. Dropped by the writer after the commit.
pub struct Ticket(pub(super) Arc<Queue>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.lock().pending -= 1;
    }
}

/// Where the relay reads next: the segment (by its first seq), the offset in it and the
/// sequence number due.
#[derive(Clone, Copy, Debug)]
pub struct ReadPos {
    segment: u64,
    offset: u64,
    next: u64,
}

/// An entry read for delivery, with its frame size for the accounting of the acknowledgement.
pub struct Read {
    pub entry: Entry,
    pub bytes: u64,
}

/// What [`Queue::read`] got: the entries, and why it stopped early, if it did.
pub struct Batch {
    pub reads: Vec<Read>,
    pub error: Option<ReadError>,
}

#[cfg(test)]
impl Batch {
    /// The entries, when the read met no error.
    pub fn all(self) -> Vec<Read> {
        assert!(self.error.is_none(), "{:?}", self.error);
        self.reads
    }
}

/// Why the relay could not read on: for now (I/O), or for good (what is on disk will not read
/// back), with what to set aside.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// A frame that checks out, whose entry cannot be decoded.
    Entry {
        seq: u64,
        end: u64,
        raw: Vec<u8>,
        why: String,
    },
    /// Committed bytes of `segment` from `offset` to `end` that do not read back as frames;
    /// they held entries up to `last`.
    Frame {
        segment: PathBuf,
        offset: u64,
        end: u64,
        last: u64,
        why: String,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Entry { seq, why, .. } => write!(f, "entry {seq} does not decode: {why}"),
            Self::Frame { segment, offset, why, .. } => {
                write!(f, "{} at {offset} does not read back: {why}", segment.display())
            }
        }
    }
}

/// How long a write failure counts against the outbox's health without a failure since.
const ERROR_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// Entries set aside because they do not read back, kept for an operator.
pub const UNREADABLE: &str = "unreadable.log";

impl Queue {
    /// Recovers the directory (see [`recover`]); `used` is credited with what it holds.
    pub(super) fn open(dir: PathBuf, sink: &'static str, space: Arc<Space>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let r: Recovered = recover::recover(&dir, sink, true)?;
        let on_disk: u64 = r.segments.iter().map(|s| s.len).sum::<u64>() + r.dead_bytes;
        space.add(on_disk);
        let backlog = (r.queued > 0).then(|| Backlog { since: Instant::now() });
        if r.queued > 0 {
            tracing::warn!(
                sink,
                events = r.queued,
                bytes = r.queued_bytes,
                "outbox: replaying the backlog left by the last run"
            );
        }
        let metrics = Metrics {
            events: metrics::gauge!(names::OUTBOX_EVENTS, "sink" => sink),
            bytes: metrics::gauge!(names::OUTBOX_BYTES, "sink" => sink),
            oldest: metrics::gauge!(names::OUTBOX_OLDEST_AGE, "sink" => sink),
            dead: metrics::gauge!(names::OUTBOX_DEAD_LETTERS, "sink" => sink),
            spooled: metrics::counter!(names::OUTBOX_SPOOLED, "sink" => sink),
            replayed: metrics::counter!(names::OUTBOX_REPLAYED, "sink" => sink),
            dead_lettered: metrics::counter!(names::OUTBOX_DEAD_LETTERED, "sink" => sink),
        };
        let queue = Self {
            sink,
            dir,
            behind: AtomicBool::new(backlog.is_some()),
            state: Mutex::new(State {
                segments: r.segments.into(),
                next: r.next,
                acked: r.acked,
                head: r.head,
                queued_bytes: r.queued_bytes,
                oldest_ms: r.oldest_ms,
                pending: 0,
                backlog,
                dead: r.dead,
                dead_bytes: r.dead_bytes,
                error: None,
            }),
            wake: Notify::new(),
            space,
            dead: tokio::sync::Mutex::new(()),
            metrics,
        };
        queue.refresh_gauges();
        Ok(queue)
    }

    pub(super) async fn dead_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.dead.lock().await
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The healthy path's check: `Some` (queue behind the backlog) only while there is one.
    pub(super) fn behind(self: &Arc<Self>) -> Option<Ticket> {
        if !self.behind.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.lock();
        s.backlog.as_ref()?;
        s.pending += 1;
        Some(Ticket(self.clone()))
    }

    /// Enters the backlog (if not in it yet) for a spool that `reason` made necessary.
    pub(super) fn enter(self: &Arc<Self>, reason: &str) -> Ticket {
        let mut s = self.lock();
        s.pending += 1;
        if s.backlog.is_none() {
            s.backlog = Some(Backlog { since: Instant::now() });
            self.behind.store(true, Ordering::Release);
            tracing::warn!(sink = self.sink, %reason, "outbox: sink entered the backlog; its deliveries are spooled and relayed in order");
        }
        Ticket(self.clone())
    }

    /// Leaves the backlog when everything committed has been delivered and no spool is under
    /// way: new deliveries go to the sink directly again.
    pub(super) fn try_leave(&self) -> bool {
        let mut s = self.lock();
        if s.backlog.is_none() || s.pending > 0 || s.queued() > 0 {
            return false;
        }
        let since = s.backlog.take().map(|b| b.since);
        self.behind.store(false, Ordering::Release);
        s.oldest_ms = None;
        drop(s);
        let took = since.map(|t| t.elapsed());
        tracing::info!(
            sink = self.sink,
            ?took,
            "outbox: backlog delivered; the sink is published to directly again"
        );
        true
    }

    /// Where the relay starts: the first undelivered entry.
    pub(super) fn start(&self) -> ReadPos {
        let s = self.lock();
        let (segment, offset) = s.head.unwrap_or((s.acked + 1, 0));
        ReadPos { segment, offset, next: s.acked + 1 }
    }

    /// Reads committed entries from `pos` on, at most `max` of them and about `max_bytes`. `pos`
    /// moves past what was read, and no further: on an error it stays at the spot that failed,
    /// and the entries read before it are returned with the error. Blocking.
    pub(super) fn read(&self, pos: &mut ReadPos, max: usize, max_bytes: u64) -> Batch {
        let mut out = Vec::new();
        let error = self.read_into(pos, max, max_bytes, &mut out).err();
        if let Some(first) = out.first() {
            self.lock().oldest_ms = Some(first.entry.spooled_at_ms);
        }
        Batch { reads: out, error }
    }

    fn read_into(
        &self,
        pos: &mut ReadPos,
        max: usize,
        max_bytes: u64,
        out: &mut Vec<Read>,
    ) -> Result<(), ReadError> {
        let mut bytes = 0;
        while out.len() < max && bytes < max_bytes {
            // The segment holding `pos.next`: the last one starting at or before it (or the
            // first, after a gap left by cut-off corruption).
            let (segment, following, next) = {
                let s = self.lock();
                let i = s.segments.iter().rposition(|g| g.first <= pos.next).unwrap_or(0);
                let Some(g) = s.segments.get(i) else { return Ok(()) };
                (g.clone(), s.segments.get(i + 1).map(|g| g.first), s.next)
            };
            if segment.first != pos.segment {
                *pos = ReadPos { segment: segment.first, offset: 0, next: pos.next.max(segment.first) };
            }
            if pos.offset >= segment.len {
                match following {
                    // Finished: go on in the next segment.
                    Some(first) => {
                        pos.next = pos.next.max(first);
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            let mut reader = FrameReader::open(&segment.path, pos.offset, Some(segment.len), None)
                .map_err(ReadError::Io)?;
            while out.len() < max && bytes < max_bytes {
                let frame = match reader.next_frame().map_err(ReadError::Io)? {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(bad) => {
                        return Err(ReadError::Frame {
                            segment: segment.path.clone(),
                            offset: reader.pos(),
                            end: segment.len,
                            last: following.unwrap_or(next) - 1,
                            why: format!("{bad:?}"),
                        })
                    }
                };
                if frame.seq < pos.next {
                    pos.offset = frame.end;
                    continue;
                }
                let entry = match entry::decode(frame.seq, &frame.payload) {
                    Ok(e) => e,
                    Err(e) => {
                        return Err(ReadError::Entry {
                            seq: frame.seq,
                            end: frame.end,
                            raw: frame.payload,
                            why: e.to_string(),
                        })
                    }
                };
                (pos.offset, pos.next) = (frame.end, frame.seq + 1);
                bytes += frame.end - frame.start;
                out.push(Read { entry, bytes: frame.end - frame.start });
            }
        }
        Ok(())
    }

    /// After a read found nothing more: numbers below `pos` without an entry (cut off as corrupt at
    /// start-up) count as done, so the backlog can end. Blocking.
    pub(super) fn settle(&self, pos: &ReadPos) -> std::io::Result<()> {
        let read_up_to = pos.next.saturating_sub(1);
        if read_up_to > self.lock().acked {
            self.ack(read_up_to, 0, 0)?;
        }
        Ok(())
    }

    /// Puts what `error` could not read aside (a file next to the queue, for an operator) and
    /// counts it as done, moving `pos` past it: an entry that will never read back must not hold
    /// up the sink for good. Blocking.
    pub(super) fn set_aside(&self, error: &ReadError, pos: &mut ReadPos) -> std::io::Result<()> {
        match error {
            ReadError::Io(_) => Ok(()),
            ReadError::Entry { seq, end, raw, why } => {
                let mut frame = Vec::with_capacity(raw.len() + 16);
                segment::frame(*seq, raw, &mut frame);
                append_synced(&self.dir.join(UNREADABLE), &frame)?;
                tracing::error!(sink = self.sink, seq, %why, kept = UNREADABLE, "outbox: an entry does not read back; set aside");
                self.ack(*seq, 1, frame.len() as u64)?;
                (pos.offset, pos.next) = (*end, seq + 1);
                Ok(())
            }
            ReadError::Frame { segment, offset, end, last, why } => {
                let bytes = std::fs::read(segment)?;
                let aside = PathBuf::from(format!("{}.{offset}.corrupt", segment.display()));
                std::fs::write(&aside, bytes.get(*offset as usize..*end as usize).unwrap_or_default())?;
                tracing::error!(sink = self.sink, file = %segment.display(), offset, %why, kept = %aside.display(), "outbox: committed data does not read back; set aside");
                self.ack(*last, 0, end - offset)?;
                (pos.offset, pos.next) = (*end, last + 1);
                Ok(())
            }
        }
    }

    /// Records that every entry up to `seq` was delivered (`count` entries, `bytes` of frames):
    /// the cursor first, then the segments that hold nothing undelivered are removed. Blocking.
    pub(super) fn ack(&self, seq: u64, count: u64, bytes: u64) -> std::io::Result<()> {
        recover::write_cursor(&self.dir, seq)?;
        let mut removable = Vec::new();
        {
            let mut s = self.lock();
            s.acked = s.acked.max(seq);
            s.queued_bytes = s.queued_bytes.saturating_sub(bytes);
            s.head = None;
            // Never the last segment: the writer appends to it.
            while s.segments.len() > 1 && s.segments[1].first - 1 <= s.acked {
                removable.push(s.segments.pop_front().expect("len > 1"));
            }
        }
        for g in removable {
            match std::fs::remove_file(&g.path) {
                Ok(()) => self.space.free(g.len),
                // Delivered either way; the file stays behind, and the next start removes it.
                Err(e) => {
                    tracing::warn!(sink = self.sink, file = %g.path.display(), error = %e, "outbox: could not remove a delivered segment")
                }
            }
        }
        self.metrics.replayed.increment(count);
        self.refresh_gauges();
        Ok(())
    }

    /// Moves an entry the sink refused for good to the dead letters, with its last error; the
    /// caller then acknowledges it in the queue. Blocking.
    pub(super) fn dead_letter(&self, e: &Entry, attempts: u32, error: &str) -> std::io::Result<()> {
        let payload = entry::encode_with(&e.delivery, e.spooled_at_ms, attempts, Some(error));
        let mut frame = Vec::with_capacity(payload.len() + 16);
        segment::frame(e.seq, &payload, &mut frame);
        append_synced(&self.dir.join(recover::DEAD), &frame)?;
        self.space.add(frame.len() as u64);
        {
            let mut s = self.lock();
            s.dead += 1;
            s.dead_bytes += frame.len() as u64;
        }
        self.metrics.dead_lettered.increment(1);
        tracing::error!(
            sink = self.sink,
            id = e.delivery.event.id(),
            target = %e.delivery.target.name,
            attempts,
            error,
            "outbox: the sink refused an event for good; moved to the dead letters (`regbridge outbox dead-letters`)"
        );
        Ok(())
    }

    /// Counts `n` entries committed by the writer.
    pub(super) fn spooled(&self, n: u64) {
        self.metrics.spooled.increment(n);
    }

    /// Adjusts the dead-letter accounting after a requeue or discard rewrote the file.
    pub(super) fn set_dead(&self, count: u64, bytes: u64) {
        let mut s = self.lock();
        let before = s.dead_bytes;
        (s.dead, s.dead_bytes) = (count, bytes);
        drop(s);
        if before > bytes {
            self.space.free(before - bytes);
        } else {
            self.space.add(bytes - before);
        }
    }

    /// The queue's figures, as `/readyz`, the CLI and the gauges show them.
    pub fn status(&self) -> QueueStatus {
        let s = self.lock();
        let age =
            s.oldest_ms.filter(|_| s.queued() > 0).map(|t| entry::now_ms().saturating_sub(t) as f64 / 1e3);
        QueueStatus {
            sink: self.sink.to_owned(),
            events: s.queued(),
            bytes: s.queued_bytes,
            oldest_age_seconds: age,
            dead_letters: s.dead,
            backlog: s.backlog.is_some(),
            error: s.error.as_ref().filter(|(_, at)| at.elapsed() < ERROR_MEMORY).map(|(e, _)| e.clone()),
        }
    }

    pub fn refresh_gauges(&self) {
        let st = self.status();
        self.metrics.events.set(st.events as f64);
        self.metrics.bytes.set(st.bytes as f64);
        self.metrics.oldest.set(st.oldest_age_seconds.unwrap_or(0.0));
        self.metrics.dead.set(st.dead_letters as f64);
    }
}

/// One queue's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueueStatus {
    pub sink: String,
    pub events: u64,
    pub bytes: u64,
    pub oldest_age_seconds: Option<f64>,
    pub dead_letters: u64,
    pub backlog: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends `bytes` to `path` and syncs it; a new file's directory entry is synced too. A failed
/// append is cut back off, so nothing after it lands behind half a frame.
pub(super) fn append_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let existed = path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let before = f.metadata()?.len();
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_data()) {
        let _ = f.set_len(before);
        return Err(e);
    }
    if !existed {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Makes a directory's entries (a file created or renamed in it) durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
