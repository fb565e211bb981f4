//! The outbox on a real directory: spooling, reading back, crash recovery, bounds, dead letters,
//! and the relay against a sink that fails as told.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::relay::Relays;
use super::*;
use crate::event::{self, kinds, Envelope, Occurrence};
use crate::sinks::{self, ContentMode, Sink, SinkError, Sinks, Target};

fn delivery(n: usize) -> Delivery {
    let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, format!("evt-{n}"), "PUSH_ARTIFACT");
    occ.repository = Some("library/nginx".into());
    occ.tag = Some(format!("v{n}"));
    let env = Envelope { endpoint: "harbor", registry: "harbor", ..Envelope::default() };
    let target =
        Target { name: "registry-events".into(), key: Some(format!("k{n}")), mode: ContentMode::Binary };
    Delivery { event: Arc::new(event::build(&occ, &env, None)), target }
}

fn settings(dir: &Path) -> Settings {
    Settings::new(dir)
}

async fn spool(outbox: &Outbox, from: usize, n: usize) {
    let batch: Vec<Delivery> = (from..from + n).map(delivery).collect();
    let ticket = outbox.enter("kafka", "test").unwrap();
    outbox.spool(ticket, &batch, Duration::from_secs(10)).await.unwrap();
}

fn read_ids(queue: &Queue) -> Vec<String> {
    let mut pos = queue.start();
    let read = queue.read(&mut pos, usize::MAX, u64::MAX).all();
    read.iter().map(|r| r.entry.delivery.event.id().to_owned()).collect()
}

fn close(outbox: Outbox) {
    if let Some(t) = outbox.close() {
        t.join().unwrap();
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("evt-{n}")).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("kafka"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn spooled_deliveries_read_back_in_order_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    assert!(outbox.behind("kafka").is_none(), "no backlog yet: the direct path");
    spool(&outbox, 0, 3).await;
    spool(&outbox, 3, 2).await;
    let queue = outbox.queues()[0].clone();
    assert_eq!(read_ids(&queue), ids(0..5));
    let back = queue.read(&mut queue.start(), 1, u64::MAX).all().remove(0).entry.delivery;
    let original = delivery(0);
    assert_eq!(*back.event, *original.event);
    assert_eq!(back.target, original.target);
    assert!(outbox.behind("kafka").is_some(), "the backlog holds new deliveries back");
    assert_eq!(outbox.status().sinks[0].events, 5);
    close(outbox);
    drop(queue);

    // As after a crash: nothing was acknowledged, so everything is still there.
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    assert!(matches!(Outbox::open(settings(dir.path()), &["kafka"]), Err(OutboxError::Locked(_))));
    let queue = outbox.queues()[0].clone();
    assert_eq!(read_ids(&queue), ids(0..5));
    assert!(outbox.behind("kafka").is_some(), "a replayed backlog keeps new deliveries behind it");
    let mut pos = queue.start();
    let first = queue.read(&mut pos, 2, u64::MAX).all();
    let bytes = first.iter().map(|r| r.bytes).sum();
    queue.ack(first[1].entry.seq, 2, bytes).unwrap();
    close(outbox);
    drop(queue);

    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    let queue = outbox.queues()[0].clone();
    assert_eq!(read_ids(&queue), ids(2..5), "acknowledged entries are not replayed");
    let mut pos = queue.start();
    let rest = queue.read(&mut pos, usize::MAX, u64::MAX).all();
    queue.ack(rest.last().unwrap().entry.seq, 3, rest.iter().map(|r| r.bytes).sum()).unwrap();
    assert!(queue.try_leave(), "everything delivered: the backlog ends");
    assert!(outbox.behind("kafka").is_none());
    assert_eq!(outbox.status().sinks[0].events, 0);
    close(outbox);
}

#[tokio::test]
async fn a_torn_last_entry_is_cut_off_and_the_ones_before_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    spool(&outbox, 0, 4).await;
    close(outbox);
    let seg = segments(dir.path()).remove(0);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 7).unwrap();

    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    let queue = outbox.queues()[0].clone();
    assert_eq!(read_ids(&queue), ids(0..3));
    assert!(std::fs::metadata(&seg).unwrap().len() < len - 7, "the torn frame is gone from the file");
    // New entries follow the kept ones.
    spool(&outbox, 10, 1).await;
    assert_eq!(read_ids(&queue), vec!["evt-0", "evt-1", "evt-2", "evt-10"]);
    close(outbox);
}

#[tokio::test]
async fn corruption_cuts_the_file_there_and_keeps_the_rest_aside() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    spool(&outbox, 0, 3).await;
    close(outbox);
    let seg = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let third = bytes.len() * 2 / 3;
    bytes[third] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    let kept = read_ids(&outbox.queues()[0]);
    assert!(kept.len() < 3 && kept == ids(0..kept.len()), "{kept:?}");
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("kafka"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".corrupt"))
        .collect();
    assert_eq!(aside.len(), 1, "the cut-off bytes are kept for an operator");
    close(outbox);
}

#[tokio::test]
async fn a_full_outbox_refuses_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let small = Settings { max_bytes: 3000, ..settings(dir.path()) };
    let outbox = Outbox::open(small, &["kafka"]).unwrap();
    spool(&outbox, 0, 1).await;
    let batch: Vec<Delivery> = (1..10).map(delivery).collect();
    let ticket = outbox.enter("kafka", "test").unwrap();
    let e = outbox.spool(ticket, &batch, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, OutboxError::Full { max: 3000, .. }), "{e}");
    assert_eq!(read_ids(&outbox.queues()[0]), ids(0..1));
    assert!(!outbox.can_take() || outbox.status().used_bytes < 3000);
    close(outbox);
}

#[tokio::test]
async fn delivered_segments_are_removed_and_the_disk_accounting_follows() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings { segment_bytes: 800, ..settings(dir.path()) };
    let outbox = Outbox::open(s, &["kafka"]).unwrap();
    for n in 0..6 {
        spool(&outbox, n, 1).await;
    }
    let many = segments(dir.path()).len();
    assert!(many >= 3, "{many} segments");
    let used = outbox.status().used_bytes;
    let queue = outbox.queues()[0].clone();
    let mut pos = queue.start();
    let read = queue.read(&mut pos, usize::MAX, u64::MAX).all();
    assert_eq!(read.len(), 6);
    queue.ack(read[4].entry.seq, 5, read[..5].iter().map(|r| r.bytes).sum()).unwrap();
    assert!(segments(dir.path()).len() < many, "fully delivered segments are gone");
    assert!(outbox.status().used_bytes < used);
    assert_eq!(read_ids(&queue), vec!["evt-5"]);
    close(outbox);
}

/// A sink that records what it got and fails as its script says (front first).
#[derive(Default)]
struct Scripted {
    got: Mutex<Vec<String>>,
    /// `Some(true)`: refuse for good; `Some(false)`: fail for now; `None`: confirm.
    script: Mutex<VecDeque<Option<bool>>>,
    /// Refuse for good any batch holding this id.
    poison: Mutex<Option<String>>,
}

impl Sink for Scripted {
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let poison = self.poison.lock().unwrap().clone();
            if poison.is_some_and(|p| batch.iter().any(|d| d.event.id() == p)) {
                return Err(SinkError::Rejected { sink: "kafka", reason: "poison".into() });
            }
            match self.script.lock().unwrap().pop_front().flatten() {
                Some(true) => Err(SinkError::Rejected { sink: "kafka", reason: "refused".into() }),
                Some(false) => Err(SinkError::Unavailable { sink: "kafka", reason: "down".into() }),
                None => {
                    self.got.lock().unwrap().extend(batch.iter().map(|d| d.event.id().to_owned()));
                    Ok(())
                }
            }
        })
    }
    fn confirm_deadline(&self) -> Duration {
        Duration::from_secs(5)
    }
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_relay_delivers_in_order_through_failures_and_dead_letters_a_poison_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings { max_attempts: 2, ..settings(dir.path()) };
    let outbox = Outbox::open(s, &["kafka"]).unwrap();
    let sink = Arc::new(Scripted::default());
    sink.script.lock().unwrap().extend([Some(false), Some(false)]);
    *sink.poison.lock().unwrap() = Some("evt-2".into());
    let sinks = Sinks::from_parts(vec![(sinks::by_name("kafka").unwrap(), sink.clone() as Arc<dyn Sink>)]);
    spool(&outbox, 0, 5).await;
    let relays = Relays::spawn(&outbox, &sinks);

    until("every deliverable entry arrived", || sink.got.lock().unwrap().len() == 4).await;
    assert_eq!(
        *sink.got.lock().unwrap(),
        vec!["evt-0", "evt-1", "evt-3", "evt-4"],
        "in order, poison skipped"
    );
    until("the backlog ended", || outbox.behind("kafka").is_none()).await;
    let status = outbox.status();
    assert_eq!((status.sinks[0].events, status.sinks[0].dead_letters), (0, 1));
    let dead = dead_letters(dir.path()).unwrap();
    let (name, entries) = &dead[0];
    assert_eq!(name, "kafka");
    assert_eq!(entries[0].delivery.event.id(), "evt-2");
    assert_eq!(
        (entries[0].attempts, entries[0].last_error.as_deref()),
        (2, Some("kafka rejected the event: poison"))
    );

    // The cause is fixed; an operator requeues it through the running relay.
    *sink.poison.lock().unwrap() = None;
    let req = Request { action: Action::Requeue, ids: vec![], nonce: 0 };
    let applied = request(dir.path(), "kafka", &req, Duration::from_secs(10)).await.unwrap();
    assert_eq!((applied.entries, applied.error), (1, None));
    until("the requeued entry arrived", || sink.got.lock().unwrap().len() == 5).await;
    assert_eq!(sink.got.lock().unwrap()[4], "evt-2");
    assert_eq!(outbox.status().sinks[0].dead_letters, 0);
    relays.drain(Instant::now() + Duration::from_secs(5)).await;
    close(outbox);
}

#[tokio::test]
async fn a_drain_stops_at_its_deadline_and_leaves_the_rest_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    let sink = Arc::new(Scripted::default());
    sink.script.lock().unwrap().extend(std::iter::repeat_n(Some(false), 1000));
    let sinks = Sinks::from_parts(vec![(sinks::by_name("kafka").unwrap(), sink.clone() as Arc<dyn Sink>)]);
    spool(&outbox, 0, 3).await;
    let relays = Relays::spawn(&outbox, &sinks);
    let started = Instant::now();
    relays.drain(Instant::now() + Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(sink.got.lock().unwrap().is_empty());
    close(outbox);
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    assert_eq!(read_ids(&outbox.queues()[0]), ids(0..3));
    close(outbox);
}

#[tokio::test]
async fn an_entry_that_does_not_read_back_is_set_aside_and_the_rest_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    spool(&outbox, 0, 2).await;
    close(outbox);
    // A frame that checks out but holds no entry (as a newer layout, or damage before the
    // checksum was taken, would look), then more spooled behind it.
    let seg = segments(dir.path()).remove(0);
    let mut frame = Vec::new();
    segment::frame(3, b"\x09not an entry", &mut frame);
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&frame).unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    spool(&outbox, 10, 2).await;

    let sink = Arc::new(Scripted::default());
    let sinks = Sinks::from_parts(vec![(sinks::by_name("kafka").unwrap(), sink.clone() as Arc<dyn Sink>)]);
    let relays = Relays::spawn(&outbox, &sinks);
    until("the readable entries arrived", || sink.got.lock().unwrap().len() == 4).await;
    assert_eq!(*sink.got.lock().unwrap(), vec!["evt-0", "evt-1", "evt-10", "evt-11"]);
    until("the backlog ended", || outbox.behind("kafka").is_none()).await;
    let aside = std::fs::read(dir.path().join("kafka").join(queue::UNREADABLE)).unwrap();
    assert_eq!(aside, frame, "the unreadable entry is kept for an operator");
    relays.drain(Instant::now() + Duration::from_secs(5)).await;
    close(outbox);
}

#[tokio::test]
async fn a_requeue_refuses_to_rewrite_dead_letters_that_do_not_all_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(settings(dir.path()), &["kafka"]).unwrap();
    let queue = outbox.queues()[0].clone();
    let e =
        Entry { seq: 1, spooled_at_ms: 1, attempts: 5, last_error: Some("no".into()), delivery: delivery(1) };
    queue.dead_letter(&e, 5, "refused").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("kafka").join(recover::DEAD))
        .unwrap()
        .write_all(b"\xff\xff garbage")
        .unwrap();
    let applied = outbox.apply("kafka", &Request { action: Action::Discard, ids: vec![], nonce: 7 }).await;
    assert!(applied.error.as_deref().is_some_and(|e| e.contains("does not read back whole")), "{applied:?}");
    assert_eq!(dead_letters(dir.path()).unwrap()[0].1.len(), 1, "nothing was rewritten");
    close(outbox);
}
