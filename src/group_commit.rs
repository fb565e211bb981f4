//! Group commit: one thread owns a durable file and commits every job waiting for it with one
//! `fsync`, so concurrent requests share a disk flush instead of queueing for one each.
//!
//! The file sink and the outbox both write this way; each brings its own job type and commit
//! function (which writes the jobs, syncs, and answers each job's requester).

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// Jobs a commit may take at once beyond the first: bounds the memory one batch holds.
const MAX_BATCH: usize = 1024;

/// The writer thread and the bounded queue in front of it. Closing drops the queue's sender: the
/// thread commits what is still queued and exits.
pub struct GroupCommit<J> {
    tx: Mutex<Option<mpsc::Sender<J>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The writer has stopped (closed, or its thread is gone); the job was not taken.
#[derive(Debug, thiserror::Error)]
#[error("the writer has stopped")]
pub struct Stopped;

impl<J: Send + 'static> GroupCommit<J> {
    /// Starts the thread `name`. `commit` is called with every job that is waiting (at least
    /// one); it must answer each of them. `queue` jobs may wait before submitters feel
    /// backpressure.
    pub fn spawn(
        name: &str,
        queue: usize,
        mut commit: impl FnMut(&mut Vec<J>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<J>(queue);
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let mut jobs = Vec::with_capacity(64);
            while let Some(first) = rx.blocking_recv() {
                jobs.push(first);
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(more) => jobs.push(more),
                        Err(_) => break,
                    }
                }
                commit(&mut jobs);
                jobs.clear();
            }
        })?;
        Ok(Self { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    /// Queues `job`, waiting while the queue is full.
    pub async fn submit(&self, job: J) -> Result<(), Stopped> {
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or(Stopped)?;
        tx.send(job).await.map_err(|_| Stopped)
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    /// Stops taking jobs; the thread commits what is queued and ends. Returns the thread to join
    /// (once; later calls return `None`).
    pub fn close(&self) -> Option<JoinHandle<()>> {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.thread.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn concurrent_jobs_share_commits_and_all_are_answered() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        let writer = Arc::new(
            GroupCommit::spawn("test-writer", 16, move |jobs: &mut Vec<(u32, oneshot::Sender<u32>)>| {
                counted.fetch_add(1, Ordering::Relaxed);
                // A slow disk: later jobs pile up behind this commit.
                std::thread::sleep(std::time::Duration::from_millis(5));
                for (n, done) in jobs.drain(..) {
                    let _ = done.send(n * 2);
                }
            })
            .unwrap(),
        );
        let answers = futures_util::future::join_all((0..200u32).map(|n| {
            let writer = writer.clone();
            async move {
                let (done, answer) = oneshot::channel();
                writer.submit((n, done)).await.unwrap();
                answer.await.unwrap()
            }
        }))
        .await;
        assert_eq!(answers, (0..200).map(|n| n * 2).collect::<Vec<_>>());
        assert!(commits.load(Ordering::Relaxed) < 200, "jobs were committed together");
        let thread = writer.close().expect("the thread, once");
        assert!(writer.close().is_none());
        assert!(writer.submit((0, oneshot::channel().0)).await.is_err(), "closed");
        thread.join().unwrap();
    }
}
