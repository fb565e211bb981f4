//! `--batch N`: large legitimate fan-outs. One Harbor push listing N resources (N events) per
//! request, sent one after the other to a fresh regbridge per sink: how long each answer takes
//! against the 2 s budget, and events per second. Every event must then be in the destination.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{Destination, Sink};
use crate::sut;
use crate::Ctx;

/// Requests per sink (after one warm-up request).
const REQUESTS: usize = 20;
const AUTH: &str = "Bearer load-batch";

/// What one sink's batches measured.
pub struct Batch {
    pub sink: &'static str,
    pub resources: usize,
    pub body_bytes: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
    pub events_per_s: f64,
    pub statuses: Vec<u16>,
    pub found: u64,
    pub expected: u64,
}

fn payload(run: &str, request: usize, n: usize) -> Vec<u8> {
    let resources: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "digest": format!("sha256:{:064x}", request * n + i),
                "tag": format!("{run}-{request}-{i}"),
                "resource_url": format!("harbor.example.com/library/app:{run}-{request}-{i}"),
            })
        })
        .collect();
    json!({
        "type": "PUSH_ARTIFACT",
        "occur_at": 1_700_000_000 + request,
        "operator": "ci",
        "event_data": {
            "resources": resources,
            "repository": { "name": "app", "namespace": "library", "repo_full_name": "library/app" }
        }
    })
    .to_string()
    .into_bytes()
}

pub async fn run(ctx: &Ctx, sink: Sink, n: usize) -> Result<Batch, String> {
    let label = format!("ld{}-batch-{}", ctx.run_id, sink.name());
    let dest = Destination::create(sink, &label, ctx.dir.path()).await?;
    let port = sut::free_port().map_err(|e| e.to_string())?;
    let mut cmd = sut::regbridge(ctx, port, &label, &[("REGBRIDGE_HARBOR_AUTH", AUTH)]);
    cmd.envs(dest.env());
    let proc = sut::start_ready(ctx, cmd, port, &label).await?;
    let http = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let url = format!("http://127.0.0.1:{port}/webhooks/harbor");
    let (mut took, mut statuses, mut body_bytes) = (Vec::new(), Vec::new(), 0);
    for request in 0..=REQUESTS {
        let body = payload(&label, request, n);
        body_bytes = body.len();
        let started = Instant::now();
        let mut res = http
            .post(&url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", AUTH))
            .send_body(body)
            .await
            .map_err(|e| format!("request {request}: {e}"))?;
        let _ = res.body().limit(1 << 24).await;
        // Request 0 warms the connection and the sink up; it still counts in the destination.
        if request > 0 {
            took.push(started.elapsed());
        }
        statuses.push(res.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| (200..300).contains(*s)).count() as u64;
    let expected = ok * n as u64;
    if !proc.stop(Duration::from_secs(10)) {
        eprintln!("load: warning: {label} did not exit within 10 s of SIGTERM; killed");
    }
    let found = dest.count(expected).await;
    dest.remove().await;
    took.sort_unstable();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let total: Duration = took.iter().sum();
    Ok(Batch {
        sink: sink.name(),
        resources: n,
        body_bytes,
        p50_ms: took.get(took.len() / 2).map_or(0.0, ms),
        max_ms: took.last().map_or(0.0, ms),
        events_per_s: (took.len() * n) as f64 / total.as_secs_f64().max(1e-9),
        statuses,
        found: found?,
        expected,
    })
}

pub fn table(rows: &[Batch], markdown: bool) -> String {
    let head = [
        "sink",
        "events per request",
        "body KB",
        "answer p50 ms",
        "answer max ms",
        "events/s",
        "non-2xx",
        "in destination",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            vec![
                b.sink.to_owned(),
                b.resources.to_string(),
                format!("{:.0}", b.body_bytes as f64 / 1024.0),
                format!("{:.1}", b.p50_ms),
                format!("{:.1}", b.max_ms),
                format!("{:.0}", b.events_per_s),
                b.statuses.iter().filter(|s| !(200..300).contains(*s)).count().to_string(),
                format!("{} of {}", b.found, b.expected),
            ]
        })
        .collect();
    let sep = if markdown { " | " } else { "  " };
    let mut out = String::new();
    let row = |cells: &[String]| {
        if markdown {
            format!("| {} |\n", cells.join(sep))
        } else {
            format!("{}\n", cells.join(sep))
        }
    };
    out += &row(&head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if markdown {
        out += &format!("|{}\n", "---|".repeat(head.len()));
    }
    for l in &lines {
        out += &row(l);
    }
    out
}
