//! `cargo bench --bench outbox [-- --quick]`: what the outbox's storage sustains on this disk.
//!
//! - spool: C concurrent spoolers (as C webhooks whose sink is down), one event each per spool,
//!   every spool made durable (fsync) before it returns; the writer commits whatever is waiting
//!   together, so events/s grows with C while fsyncs/s stays near the disk's rate.
//! - recovery: opening the outbox over that backlog (every frame read and checksummed).
//! - replay: the relay reading, "publishing" to a sink that confirms at once, and acknowledging
//!   (cursor synced per batch): the ceiling the outbox puts on draining a backlog; a real
//!   broker's confirms come on top.
//!
//! Events are ~1.2 KB (a Root event with its original payload, as the load harness sends).
//! Nothing is asserted about time; `--quick` only makes the counts small (CI runs it so the
//! code path keeps working end to end).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture};

use regbridge::event::{self, kinds, Envelope, Occurrence, Original};
use regbridge::outbox::relay::Relays;
use regbridge::outbox::{Outbox, Settings};
use regbridge::sinks::{self, ContentMode, Delivery, Sink, SinkError, Sinks, Target};

const ROOT_E2E: &[u8] = include_bytes!("../tests/fixtures/root/image-created.e2e-rendered.json");

fn delivery(n: usize) -> Delivery {
    let mut occ =
        Occurrence::new(kinds::ARTIFACT_PUSHED, format!("bench-{n}"), "io.root.cr.image.created.v1");
    occ.repository = Some(format!("library/app{}", n % 16));
    occ.tag = Some(format!("v{n}"));
    occ.host = Some("cr.root.io".into());
    let env = Envelope {
        endpoint: "root",
        registry: "root",
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ..Envelope::default()
    };
    let padded = format!(
        r#"{{"payload":{},"padding":"{}"}}"#,
        std::str::from_utf8(ROOT_E2E).unwrap(),
        "x".repeat(400)
    );
    let original = Original::compact(padded.as_bytes()).unwrap();
    let target = Target { name: "registry-events".into(), key: None, mode: ContentMode::Binary };
    Delivery { event: Arc::new(event::build(&occ, &env, Some(&original))), target }
}

/// Confirms everything at once.
struct Instant_;

impl Sink for Instant_ {
    fn publish<'a>(&'a self, _: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events = if quick { 2_000 } else { 40_000 };
    let concurrency: &[usize] = if quick { &[1, 64] } else { &[1, 8, 64, 512] };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // On the disk the build uses (a tmpfs /tmp would flatter the fsyncs).
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let one = delivery(0);
    let mut frame = Vec::new();
    regbridge::event::stored::encode(&one.event, &mut frame);
    println!("outbox in {}; event ~{} B stored", base.path().display(), frame.len());
    println!("{:<34} {:>10} {:>12} {:>10}", "scenario", "events", "events/s", "MB/s");
    let batch: Vec<Delivery> = (0..events).map(delivery).collect();
    let batch = Arc::new(batch);
    for &c in concurrency {
        let dir = base.path().join(format!("c{c}"));
        let outbox = Outbox::open(Settings::new(&dir), &["kafka"]).unwrap();
        let started = Instant::now();
        rt.block_on(async {
            let per = events / c;
            join_all((0..c).map(|w| {
                let (outbox, batch) = (outbox.clone(), batch.clone());
                async move {
                    for n in w * per..(w + 1) * per {
                        let ticket = outbox.enter("kafka", "bench").unwrap();
                        outbox.spool(ticket, &batch[n..=n], Duration::from_secs(30)).await.unwrap();
                    }
                }
            }))
            .await;
        });
        let took = started.elapsed();
        let status = outbox.status();
        let spooled = status.sinks[0].events;
        let bytes = status.sinks[0].bytes;
        report(&format!("spool, {c} concurrent"), spooled, bytes, took);
        outbox.close().unwrap().join().unwrap();
        drop(outbox);

        if c == *concurrency.last().unwrap() {
            let started = Instant::now();
            let outbox = Outbox::open(Settings::new(&dir), &["kafka"]).unwrap();
            report("recovery (open and check)", spooled, bytes, started.elapsed());
            let sinks = Sinks::from_parts(vec![(
                sinks::by_name("kafka").unwrap(),
                Arc::new(Instant_) as Arc<dyn Sink>,
            )]);
            let started = Instant::now();
            rt.block_on(async {
                let relays = Relays::spawn(&outbox, &sinks);
                while outbox.status().sinks[0].events > 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                relays.drain(Instant::now()).await;
            });
            report("replay (read, confirm, ack)", spooled, bytes, started.elapsed());
            outbox.close().unwrap().join().unwrap();
        }
    }
}

fn report(what: &str, events: u64, bytes: u64, took: Duration) {
    let s = took.as_secs_f64();
    println!("{what:<34} {events:>10} {:>12.0} {:>10.1}", events as f64 / s, bytes as f64 / s / 1e6);
}
