//! The relay: one task per sink that reads its queue in order, publishes what it read, and
//! acknowledges it only once the sink confirmed. Failures back off (capped, jittered); an entry
//! the sink keeps refusing for good goes to the dead letters after a bounded number of attempts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::queue::{Queue, Read, ReadError};
use super::{dead, Outbox};
use crate::sinks::{Delivery, SinkError, Sinks};

/// A batch read from the queue: at most this many entries and about this many bytes.
const BATCH: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;
/// First retry after a failure; doubling up to the cap, each delay jittered by half.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often an idle relay refreshes its gauges, and requests of the CLI are looked for.
const TICK: Duration = Duration::from_secs(1);

/// `None` while running; the deadline once the service is shutting down.
type Stop = watch::Receiver<Option<Instant>>;

/// The running relays and the signal that drains and stops them.
pub struct Relays {
    stop: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relays {
    /// Starts a relay for every queue whose sink is configured.
    pub fn spawn(outbox: &Outbox, sinks: &Sinks) -> Self {
        let (stop, stopped) = watch::channel(None);
        let tasks = outbox
            .queues()
            .iter()
            .filter(|q| sinks.specs().any(|s| s.name == q.sink))
            .flat_map(|q| {
                [
                    tokio::spawn(run(outbox.clone(), q.clone(), sinks.clone(), stopped.clone())),
                    tokio::spawn(serve_requests(outbox.clone(), q.clone(), stopped.clone())),
                ]
            })
            .collect();
        Self { stop, tasks }
    }

    /// Lets every relay deliver what is queued until `deadline`, then stops them; what is left
    /// stays on disk for the next start.
    pub async fn drain(self, deadline: Instant) {
        let _ = self.stop.send(Some(deadline));
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Runs `fut` unless the shutdown deadline passes first (`None` then).
async fn bounded<F: Future>(fut: F, stop: &mut Stop) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        let deadline = *stop.borrow_and_update();
        match deadline {
            Some(d) => {
                return tokio::select! {
                    out = &mut fut => Some(out),
                    _ = tokio::time::sleep_until(d.into()) => None,
                }
            }
            None => tokio::select! {
                out = &mut fut => return Some(out),
                changed = stop.changed() => if changed.is_err() { return None },
            },
        }
    }
}

/// The delay before retry number `failures` (1 for the first): doubling, capped, jittered.
fn backoff(failures: u32) -> Duration {
    let full = BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(BACKOFF_MAX);
    let jitter = getrandom::u64().unwrap_or(0) % (full.as_millis() as u64 / 2 + 1);
    full / 2 + Duration::from_millis(jitter)
}

/// What the relay of one sink holds between iterations.
struct Relay {
    outbox: Outbox,
    queue: Arc<Queue>,
    sinks: Sinks,
    /// Read and not yet confirmed, in queue order.
    pending: VecDeque<Read>,
    /// After a permanent refusal of a batch: one entry at a time, to find the one refused.
    single: bool,
    failures: u32,
    /// Permanent refusals of the first pending entry.
    refusals: u32,
}

/// A spot in the queue that does not read back is tried this often before it is set aside.
const UNREADABLE_TRIES: u32 = 3;

async fn run(outbox: Outbox, queue: Arc<Queue>, sinks: Sinks, mut stop: Stop) {
    let confirm = sinks.confirm_deadline(queue.sink);
    let mut pos = queue.start();
    let mut r =
        Relay { outbox, queue, sinks, pending: VecDeque::new(), single: false, failures: 0, refusals: 0 };
    let mut unreadable = 0;
    loop {
        if r.pending.is_empty() {
            r.single = false;
            let queue = r.queue.clone();
            let read = tokio::task::spawn_blocking(move || {
                let got = queue.read(&mut pos, BATCH, BATCH_BYTES);
                (pos, got)
            });
            let Ok((moved, batch)) = read.await else { return };
            pos = moved;
            r.pending.extend(batch.reads);
            // What was read before a failure is delivered first; the failure comes back next.
            if let (Some(error), true) = (batch.error, r.pending.is_empty()) {
                tracing::error!(sink = r.queue.sink, %error, "outbox: reading the queue failed");
                let lasting = !matches!(error, ReadError::Io(_));
                unreadable = if lasting { unreadable + 1 } else { 0 };
                if unreadable >= UNREADABLE_TRIES {
                    let queue = r.queue.clone();
                    let aside = tokio::task::spawn_blocking(move || {
                        let done = queue.set_aside(&error, &mut pos);
                        (pos, done)
                    });
                    let Ok((moved, done)) = aside.await else { return };
                    pos = moved;
                    match done {
                        Ok(()) => unreadable = 0,
                        Err(e) => {
                            tracing::error!(sink = r.queue.sink, error = %e, "outbox: could not set an unreadable entry aside")
                        }
                    }
                    continue;
                }
                r.failures += 1;
                if bounded(tokio::time::sleep(backoff(r.failures)), &mut stop).await.is_none() {
                    return;
                }
                continue;
            }
            unreadable = 0;
            if r.pending.is_empty() {
                let queue = r.queue.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || queue.settle(&pos)).await {
                    tracing::error!(sink = r.queue.sink, error = %e, "outbox: could not record a delivery");
                }
                r.queue.try_leave();
                r.outbox.refresh_gauges();
                if stop.borrow().is_some() {
                    return;
                }
                let woken = bounded(
                    async {
                        tokio::select! {
                            _ = r.queue.wake.notified() => {}
                            _ = tokio::time::sleep(TICK) => {}
                        }
                    },
                    &mut stop,
                );
                if woken.await.is_none() {
                    return;
                }
                continue;
            }
        }
        let n = if r.single { 1 } else { r.pending.len() };
        let batch: Vec<Delivery> = r.pending.iter().take(n).map(|p| p.entry.delivery.clone()).collect();
        let Some(result) = bounded(r.sinks.publish(r.queue.sink, &batch, confirm), &mut stop).await else {
            return;
        };
        match result {
            Ok(()) => r.confirmed(n).await,
            Err(e) => {
                if !r.failed(n, &e).await && bounded(r.wait(), &mut stop).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Carries out the requests the CLI leaves for one sink, apart from its relay (whose publishes
/// may wait long on a broker), until the service stops.
async fn serve_requests(outbox: Outbox, queue: Arc<Queue>, mut stop: Stop) {
    loop {
        let dir = queue.dir.clone();
        let taken = tokio::task::spawn_blocking(move || dead::take_request(&dir)).await;
        if let Ok(Some(req)) = taken {
            let applied = outbox.apply(queue.sink, &req).await;
            let dir = queue.dir.clone();
            let answered = tokio::task::spawn_blocking(move || dead::answer(&dir, &applied)).await;
            if let Ok(Err(e)) = answered {
                tracing::warn!(sink = queue.sink, error = %e, "outbox: could not answer a request");
            }
        }
        if stop.borrow().is_some() || bounded(tokio::time::sleep(TICK), &mut stop).await.is_none() {
            return;
        }
    }
}

impl Relay {
    /// The first `n` pending entries were confirmed: acknowledge them.
    async fn confirmed(&mut self, n: usize) {
        let done: Vec<Read> = self.pending.drain(..n).collect();
        let (last, bytes) = (done.last().map_or(0, |d| d.entry.seq), done.iter().map(|d| d.bytes).sum());
        if self.failures > 0 {
            tracing::info!(sink = self.queue.sink, "outbox: the sink confirms again; relaying the backlog");
        }
        (self.failures, self.refusals) = (0, 0);
        let queue = self.queue.clone();
        let acked = tokio::task::spawn_blocking(move || queue.ack(last, n as u64, bytes)).await;
        if let Ok(Err(e)) | Err(e) = acked.map_err(std::io::Error::other) {
            // Delivered, but the cursor did not move: they will be delivered again after a
            // restart (same ids). Nothing is lost.
            tracing::error!(sink = self.queue.sink, error = %e, "outbox: could not record a delivery");
        }
    }

    /// The first `n` pending entries failed with `e`. Returns `true` when the next attempt
    /// should follow at once (no backoff).
    async fn failed(&mut self, n: usize, e: &SinkError) -> bool {
        self.failures += 1;
        let sink = self.queue.sink;
        if !e.is_permanent() {
            if self.failures == 1 || self.failures.is_multiple_of(10) {
                tracing::warn!(sink, error = %e, failures = self.failures, "outbox: relay publish failed; retrying");
            }
            return false;
        }
        if n > 1 {
            // One of them was refused: find which, one at a time.
            self.single = true;
            return true;
        }
        self.refusals += 1;
        let max = self.outbox.settings().max_attempts;
        if self.refusals < max {
            tracing::warn!(sink, error = %e, attempt = self.refusals, of = max, "outbox: the sink refused an entry");
            return false;
        }
        let Some(head) = self.pending.front() else { return true };
        let (queue, error, attempts) = (self.queue.clone(), e.to_string(), self.refusals);
        let (entry, bytes) = (head.entry.clone(), head.bytes);
        // One writer of the dead letters at a time: an operator's requeue may be rewriting them.
        let _dead = self.queue.dead_lock().await;
        let moved = tokio::task::spawn_blocking(move || {
            queue.dead_letter(&entry, attempts, &error)?;
            queue.ack(entry.seq, 1, bytes)
        })
        .await;
        match moved.map_err(std::io::Error::other) {
            Ok(Ok(())) => {
                self.pending.pop_front();
                (self.failures, self.refusals) = (0, 0);
                true
            }
            // Kept pending (and refused again next time): an entry is moved, or it stays.
            Ok(Err(e)) | Err(e) => {
                tracing::error!(sink, error = %e, "outbox: could not move an entry to the dead letters; trying again");
                false
            }
        }
    }

    /// The backoff after a failure; cut short when the sink turns healthy again.
    async fn wait(&self) {
        let was_down = self.sinks.health_of(self.queue.sink).is_err();
        let until = Instant::now() + backoff(self.failures);
        while Instant::now() < until {
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(250))).await;
            if was_down && self.sinks.health_of(self.queue.sink).is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_of_up_to_half() {
        for (failures, full) in [(1, 250), (2, 500), (3, 1000), (6, 8000), (7, 10_000), (40, 10_000)] {
            for _ in 0..50 {
                let d = backoff(failures).as_millis() as u64;
                assert!((full / 2..=full).contains(&d), "{failures}: {d} ms outside {}..={full}", full / 2);
            }
        }
    }
}
