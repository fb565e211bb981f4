//! `--outage`: Kafka frozen under load. A broker of the scenario's own (tansu, in memory) takes
//! the load healthy first; then it is paused (SIGSTOP) while the load goes on, and regbridge
//! spools: the measured window gives the spool path's throughput, latency and CPU per webhook.
//! Then the broker resumes and the harness times the relay until the outbox is empty. Every 2xx
//! must be in the topic afterwards (copies allowed: delivery is at least once).

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::client::{self, HttpWorker, Phases};
use crate::sut::{self, Proc};
use crate::webhook::{self, RequestBuilder};
use crate::Ctx;

/// What one outage scenario measured.
pub struct Outage {
    pub conns: usize,
    /// 2xx per second while the broker was frozen (all of them `202 queued` once the first
    /// direct publishes ran out of budget), their p50/p99 in ms, and the non-2xx answers.
    pub spool_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed: u64,
    /// regbridge's CPU per webhook while spooling, µs.
    pub cpu_us: Option<f64>,
    /// Events in the outbox when the broker resumed, and how long the relay took to deliver them.
    pub backlog: u64,
    pub replay: Duration,
    /// 2xx answers in all, distinct ids found in the topic, records found (copies included).
    pub acknowledged: u64,
    pub distinct: u64,
    pub records: u64,
}

fn tansu() -> Result<std::path::PathBuf, String> {
    let home = std::env::var("CARGO_HOME").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
    });
    [home.join("bin/tansu"), "tansu".into()]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| "tansu is not installed (scripts/brokers up installs it)".to_owned())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// The outbox's backlog for Kafka as `/readyz` reports it.
async fn backlog(port: u16) -> Result<u64, String> {
    let mut res = awc::Client::default()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .map_err(|e| format!("/readyz: {e}"))?;
    let body = res.body().await.map_err(|e| format!("/readyz: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("/readyz: {e}"))?;
    v["outbox"]["sinks"]["kafka"]["events"]
        .as_u64()
        .ok_or_else(|| format!("/readyz has no Kafka backlog: {v}"))
}

pub async fn kafka(ctx: &Ctx, conns: usize) -> Result<Outage, String> {
    let label = format!("ld{}-outage-c{conns}", ctx.run_id);
    let kport = sut::free_port().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{kport}");
    let url = format!("tcp://{addr}");
    let mut broker_cmd = Command::new(tansu()?);
    broker_cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url]);
    broker_cmd.args(["--storage-engine", "memory://tansu/"]);
    let mut broker = Proc::spawn(broker_cmd, ctx.dir.path().join(format!("{label}-tansu.log")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        if !broker.alive() || Instant::now() > deadline {
            return Err(format!("tansu did not listen on {addr}: {}", broker.log_tail()));
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &addr).create().map_err(|e| e.to_string())?;
    let topic = label.clone();
    // One partition: the relay's order and the count are over one log.
    admin
        .create_topics(&[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .map_err(|e| format!("creating {topic}: {e}"))?;

    let routes = ctx.dir.path().join(format!("routes-{label}.yaml"));
    std::fs::write(
        &routes,
        format!("routes:\n  - name: load\n    to: [{{ sink: kafka, topic: \"{topic}\" }}]\n"),
    )
    .map_err(|e| e.to_string())?;
    let port = sut::free_port().map_err(|e| e.to_string())?;
    let routes = routes.display().to_string();
    let env = [
        ("REGBRIDGE_ROOT_SECRETS", webhook::SECRET),
        ("REGBRIDGE_KAFKA_BROKERS", addr.as_str()),
        ("REGBRIDGE_ROUTES", routes.as_str()),
    ];
    let proc = sut::start_ready(ctx, sut::regbridge(ctx, port, &label, &env), port, &label).await?;
    let builder = RequestBuilder::new(port, ctx.body.clone());
    let workers = |phase: &str| -> Vec<HttpWorker> {
        (0..conns).map(|w| HttpWorker::new(port, builder.clone(), format!("{label}-{phase}-{w}"))).collect()
    };

    // Healthy first: the producer is connected and the topic known.
    let healthy = Phases {
        warmup: Duration::ZERO,
        duration: ctx.phases.warmup.max(Duration::from_secs(1)),
        max_ops: u64::MAX,
    };
    let warm = client::drive(&healthy, workers("up"), || sut::usage(proc.pid)).await;
    if warm.ok == 0 {
        return Err(format!("no 2xx from the healthy broker: {:?}", warm.failures));
    }

    signal(broker.pid, "-STOP");
    // The warm-up covers the first publishes running out of the direct budget (1.5 s of the 2 s)
    // before the sink's backlog sends everything straight to the outbox.
    let frozen =
        Phases { warmup: Duration::from_secs(2), duration: ctx.phases.duration, max_ops: ctx.phases.max_ops };
    let run = client::drive(&frozen, workers("down"), || sut::usage(proc.pid)).await;
    let backlog_at_resume = backlog(port).await?;
    signal(broker.pid, "-CONT");
    let resumed = Instant::now();
    let replay = loop {
        if backlog(port).await? == 0 {
            break resumed.elapsed();
        }
        if resumed.elapsed() > Duration::from_secs(300) {
            return Err("the outbox was not empty 300 s after the broker resumed".into());
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    if !proc.stop(Duration::from_secs(10)) {
        eprintln!("load: warning: {label} did not exit within 10 s of SIGTERM; killed");
    }
    let acknowledged = warm.ok + warm.warm_ok + run.ok + run.warm_ok;
    let (distinct, records) = actix_rt::task::spawn_blocking(move || count_ids(&addr, &topic, acknowledged))
        .await
        .map_err(|e| e.to_string())??;
    let mut lat = run.latencies;
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get(((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len().max(1)) - 1)
            .map_or(0.0, |&n| n as f64 / 1e6)
    };
    let cpu_us =
        run.cpu_ticks.filter(|_| run.ok > 0).map(|t| t as f64 * 1e6 / ctx.clk_tck as f64 / run.ok as f64);
    drop(broker);
    Ok(Outage {
        conns,
        spool_rps: run.ok as f64 / run.elapsed.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        failed: run.failed,
        cpu_us,
        backlog: backlog_at_resume,
        replay,
        acknowledged,
        distinct,
        records,
    })
}

/// Distinct `ce_id`s and records in partition 0, read until `expected` distinct ids are in and
/// 2 s pass without a record (or a deadline).
fn count_ids(addr: &str, topic: &str, expected: u64) -> Result<(u64, u64), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("{topic}-counter"))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("kafka consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60 + expected / 5_000);
    let (mut ids, mut records, mut last_new) = (HashSet::new(), 0u64, Instant::now());
    while Instant::now() < deadline {
        let settle = if ids.len() as u64 >= expected { 2 } else { 10 };
        if last_new.elapsed() >= Duration::from_secs(settle) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                last_new = Instant::now();
                let id = m.headers().and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value));
                if let Some(id) = id {
                    ids.insert(id.to_vec());
                }
            }
            Some(Err(e)) => return Err(format!("consuming {topic}: {e}")),
            None => {}
        }
    }
    Ok((ids.len() as u64, records))
}

/// The outage figures as a table (Markdown when asked).
pub fn table(rows: &[Outage], markdown: bool) -> String {
    let head = [
        "conns",
        "spool 2xx/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "CPU µs/webhook",
        "backlog",
        "replay s",
        "replay ev/s",
        "2xx",
        "in Kafka (distinct / records)",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.conns.to_string(),
                format!("{:.0}", r.spool_rps),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p99_ms),
                r.failed.to_string(),
                r.cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                r.backlog.to_string(),
                format!("{:.2}", r.replay.as_secs_f64()),
                format!("{:.0}", r.backlog as f64 / r.replay.as_secs_f64().max(1e-3)),
                r.acknowledged.to_string(),
                format!("{} / {}", r.distinct, r.records),
            ]
        })
        .collect();
    let mut out = String::new();
    if markdown {
        out += &format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
        for l in &lines {
            out += &format!("| {} |\n", l.join(" | "));
        }
    } else {
        out += &head.join("  ");
        out.push('\n');
        for l in &lines {
            out += &l.join("  ");
            out.push('\n');
        }
    }
    out
}
