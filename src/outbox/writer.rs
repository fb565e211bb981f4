//! The outbox's writer: appends spooled entries to each sink's tail segment and syncs once per
//! touched segment for every job waiting (group commit), then answers the jobs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::queue::{sync_dir, Queue, Space, Ticket};
use super::recover::{segment_path, Segment};
use super::segment;
use super::{OutboxError, Settings};

/// A segment is closed and a new one started once it holds this much; delivered segments are
/// removed whole, so this is also the granularity at which disk space comes back.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// Entries for one queue, committed together or not at all.
pub struct Job {
    pub queue: usize,
    pub payloads: Vec<Vec<u8>>,
    /// Keeps the queue in backlog until this job is committed or refused.
    pub ticket: Ticket,
    /// Entries moved, not added (requeued dead letters): their bytes are on disk already, so the
    /// byte budget does not refuse them.
    pub moving: bool,
    pub done: oneshot::Sender<Result<(), OutboxError>>,
}

struct Tail {
    first: u64,
    file: File,
    len: u64,
}

/// The writer thread's state: every queue's open tail segment and the outbox's byte budget.
pub struct Writer {
    queues: Vec<Arc<Queue>>,
    tails: Vec<Option<Tail>>,
    space: Arc<Space>,
    max: u64,
    segment_bytes: u64,
}

impl Writer {
    pub fn new(queues: Vec<Arc<Queue>>, space: Arc<Space>, settings: &Settings) -> std::io::Result<Self> {
        let segment_bytes = settings.segment_bytes;
        let mut tails = Vec::with_capacity(queues.len());
        for q in &queues {
            let last = q.lock().segments.back().cloned();
            let tail = match last {
                Some(s) if s.len < segment_bytes => Some(Tail {
                    first: s.first,
                    file: OpenOptions::new().append(true).open(&s.path)?,
                    len: s.len,
                }),
                _ => None,
            };
            tails.push(tail);
        }
        Ok(Self { queues, tails, space, max: settings.max_bytes, segment_bytes })
    }

    /// Commits every job: per queue, the entries that fit the byte budget in one write and one
    /// sync, then answers each job.
    pub fn commit(&mut self, jobs: &mut Vec<Job>) {
        for qi in 0..self.queues.len() {
            let mine: Vec<Job> = jobs.extract_if(.., |j| j.queue == qi).collect();
            if !mine.is_empty() {
                self.commit_queue(qi, mine);
            }
        }
        // Jobs for a queue that does not exist cannot be built; dropping them answers nothing
        // (their requesters see the writer gone), which is what a bug deserves.
        jobs.clear();
    }

    fn commit_queue(&mut self, qi: usize, jobs: Vec<Job>) {
        let queue = self.queues[qi].clone();
        let first = queue.lock().next;
        let used = self.space.used();
        let (mut next, mut adding, mut buf, mut taken) = (first, 0u64, Vec::new(), Vec::new());
        let mut refused = false;
        for job in jobs {
            // The requester gave up (its budget ran out): not written, so never delivered.
            if job.done.is_closed() {
                continue;
            }
            let size: u64 = job.payloads.iter().map(|p| segment::framed_len(p)).sum();
            if !job.moving && used + adding + size > self.max {
                refused = true;
                self.space.refuse();
                let _ = job.done.send(Err(OutboxError::Full { used: used + adding, max: self.max }));
                continue;
            }
            for p in &job.payloads {
                segment::frame(next, p, &mut buf);
                next += 1;
            }
            adding += size;
            taken.push(job);
        }
        if taken.is_empty() {
            return;
        }
        match self.append(qi, first, &buf) {
            Ok(len) => {
                self.space.add(adding);
                if !refused {
                    self.space.fits();
                }
                {
                    let mut s = queue.lock();
                    if let Some(back) = s.segments.back_mut() {
                        back.len = len;
                    }
                    s.next = next;
                    s.queued_bytes += adding;
                    s.oldest_ms.get_or_insert_with(super::entry::now_ms);
                    s.error = None;
                }
                queue.spooled(next - first);
                queue.refresh_gauges();
                for job in taken {
                    let _ = job.done.send(Ok(()));
                    // Only now, with the entries counted, may the queue leave its backlog.
                    drop(job.ticket);
                }
                queue.wake.notify_one();
            }
            Err(e) => {
                let reason = format!("{}: {e}", queue.dir.display());
                tracing::error!(sink = queue.sink, error = %reason, "outbox: write failed; nothing of it was acknowledged");
                queue.lock().error = Some((reason.clone(), std::time::Instant::now()));
                for job in taken {
                    let _ = job.done.send(Err(OutboxError::Io(reason.clone())));
                }
            }
        }
    }

    /// Writes `buf` (frames from `first` on) to the queue's tail, starting a new segment when the
    /// tail is full, and syncs it. Returns the tail's new length. A failed write is cut back off.
    fn append(&mut self, qi: usize, first: u64, buf: &[u8]) -> std::io::Result<u64> {
        if self.tails[qi].as_ref().is_none_or(|t| t.len >= self.segment_bytes) {
            self.tails[qi] = Some(self.start_segment(qi, first)?);
        }
        let tail = self.tails[qi].as_mut().expect("just ensured");
        let written = tail.file.write_all(buf).and_then(|()| tail.file.sync_data());
        if let Err(e) = written {
            // Append mode: after the cut, the next write lands at the committed end again. If the
            // cut fails too, a fresh segment is started next time.
            if tail.file.set_len(tail.len).is_err() {
                tracing::error!(first = tail.first, "outbox: could not cut a failed write back off");
                self.tails[qi] = None;
            }
            return Err(e);
        }
        tail.len += buf.len() as u64;
        Ok(tail.len)
    }

    /// A new tail segment whose first entry will be `first`. Nothing committed can be in a file
    /// of that name (its entries would be below `first`), so an existing one is emptied.
    fn start_segment(&mut self, qi: usize, first: u64) -> std::io::Result<Tail> {
        let queue = &self.queues[qi];
        let path = segment_path(&queue.dir, first);
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        file.sync_all()?;
        sync_dir(&queue.dir)?;
        // Reopened in append mode so that every write, and every cut-back, ends at the end.
        let file = OpenOptions::new().append(true).open(&path)?;
        let mut s = queue.lock();
        if s.segments.back().is_none_or(|b| b.first != first) {
            s.segments.push_back(Segment { first, path, len: 0 });
        }
        Ok(Tail { first, file, len: 0 })
    }
}
