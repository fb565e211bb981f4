//! `--batch N`: large legitimate fan-outs, in each shape a registry sends them: one Harbor push
//! listing N resources, one Distribution envelope of N manifest pushes, one Event Grid array of N
//! ACR pushes (N events per request each), sent one after the other to a fresh regbridge per sink
//! and shape: how long each answer takes against the publish budget, and events per second. Every
//! answer must be `200` (every sink confirmed in time, nothing spooled), the slowest within the
//! budget, and every event then in the destination.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::brokers::{Destination, Sink};
use crate::sut;
use crate::Ctx;

/// Requests per sink and shape (after one warm-up request).
pub const REQUESTS: usize = 20;
const AUTH: &str = "Bearer load-batch";
/// regbridge's own default `REGBRIDGE_PUBLISH_TIMEOUT`, which the scenario runs it with: the
/// whole answer must come within it.
pub const BUDGET: Duration = regbridge::config::DEFAULT_PUBLISH_TIMEOUT;

/// The payload shapes of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Harbor,
    Distribution,
    EventGrid,
}

impl Shape {
    pub const ALL: [Self; 3] = [Self::Harbor, Self::Distribution, Self::EventGrid];

    pub fn name(self) -> &'static str {
        match self {
            Self::Harbor => "Harbor push",
            Self::Distribution => "Distribution envelope",
            Self::EventGrid => "Event Grid (ACR)",
        }
    }

    /// The built-in endpoint, and the variable whose credential enables it.
    fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Self::Harbor => ("harbor", "REGBRIDGE_HARBOR_AUTH"),
            Self::Distribution => ("distribution", "REGBRIDGE_DISTRIBUTION_AUTH"),
            Self::EventGrid => ("acr", "REGBRIDGE_ACR_AUTH"),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Distribution => "application/vnd.docker.distribution.events.v2+json",
            Self::Harbor | Self::EventGrid => "application/json",
        }
    }

    /// Request `request`'s body: `n` entries, each an artifact of its own (ids, tags and digests
    /// unique across the run), each becoming one event.
    fn payload(self, run: &str, request: usize, n: usize) -> Vec<u8> {
        let body = match self {
            Self::Harbor => harbor(run, request, n),
            Self::Distribution => distribution(run, request, n),
            Self::EventGrid => event_grid(run, request, n),
        };
        body.to_string().into_bytes()
    }
}

fn harbor(run: &str, request: usize, n: usize) -> Value {
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
}

/// What `registry:2` sends for a manifest push (its notifications' envelope).
fn distribution(run: &str, request: usize, n: usize) -> Value {
    let events: Vec<_> = (0..n)
        .map(|i| {
            let digest = format!("sha256:{:064x}", request * n + i);
            json!({
                "id": format!("{run}-{request}-{i}"),
                "timestamp": "2026-01-01T00:00:00.123456789Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": 1234,
                    "length": 1234,
                    "repository": "library/app",
                    "url": format!("https://registry.example.com/v2/library/app/manifests/{digest}"),
                    "tag": format!("{run}-{request}-{i}"),
                },
                "request": {
                    "id": format!("req-{run}-{request}"),
                    "addr": "10.0.0.1:4711",
                    "host": "registry.example.com",
                    "method": "PUT",
                    "useragent": "docker/27.0.3 go/go1.22.5 os/linux arch/amd64",
                },
                "actor": { "name": "ci" },
                "source": { "addr": "registry-0:5000", "instanceID": "c5f7d0a1-2b3c-4d5e-8f90-0a1b2c3d4e5f" },
            })
        })
        .collect();
    json!({ "events": events })
}

/// What Event Grid delivers for ACR pushes in its own schema: an array of events.
fn event_grid(run: &str, request: usize, n: usize) -> Value {
    let events: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("{run}-{request}-{i}"),
                "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg",
                "subject": format!("app:{run}-{request}-{i}"),
                "eventType": "Microsoft.ContainerRegistry.ImagePushed",
                "eventTime": "2026-01-01T00:00:00.6549614Z",
                "data": {
                    "id": format!("{run}-{request}-{i}"),
                    "timestamp": "2026-01-01T00:00:00.276585742Z",
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "size": 3023,
                        "digest": format!("sha256:{:064x}", request * n + i),
                        "length": 3023,
                        "repository": "app",
                        "tag": format!("{run}-{request}-{i}"),
                    },
                    "request": {
                        "id": format!("req-{run}-{request}"),
                        "host": "myreg.azurecr.io",
                        "method": "PUT",
                        "useragent": "docker/27.0.3 go/go1.22.5 os/linux arch/amd64",
                    }
                },
                "dataVersion": "1.0",
                "metadataVersion": "1",
            })
        })
        .collect();
    Value::Array(events)
}

/// What one sink's batches of one shape measured.
pub struct Batch {
    pub sink: &'static str,
    pub shape: Shape,
    pub resources: usize,
    pub body_bytes: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
    pub events_per_s: f64,
    /// Every answer's status, the warm-up request's first.
    pub statuses: Vec<u16>,
    pub found: u64,
    pub expected: u64,
}

impl Batch {
    /// Why this batch fails the scenario: an answer other than `200`, the slowest (warm-up
    /// aside) over the publish budget, or events missing from the destination.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let other: Vec<(usize, u16)> =
            self.statuses.iter().copied().enumerate().filter(|&(_, s)| s != 200).collect();
        if let Some(&(first, _)) = other.first() {
            let mut counts = std::collections::BTreeMap::new();
            for &(_, s) in &other {
                *counts.entry(s).or_insert(0) += 1;
            }
            let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
            out.push(format!(
                "{} of {} answers were not 200 ({}; the first was request {first}, 0 the warm-up)",
                other.len(),
                self.statuses.len(),
                counts.join(", ")
            ));
        }
        let budget_ms = BUDGET.as_secs_f64() * 1e3;
        if self.max_ms > budget_ms {
            out.push(format!(
                "the slowest answer took {:.1} ms, over the {budget_ms:.0} ms publish budget",
                self.max_ms
            ));
        }
        if self.found < self.expected {
            out.push(format!("{} of {} events in the destination", self.found, self.expected));
        }
        out
    }
}

pub async fn run(ctx: &Ctx, sink: Sink, shape: Shape, n: usize) -> Result<Batch, String> {
    let (endpoint, credential) = shape.endpoint();
    let label = format!("ld{}-batch-{endpoint}-{}", ctx.run_id, sink.name());
    let dest = Destination::create(sink, &label, ctx.dir.path()).await?;
    let port = sut::free_port().map_err(|e| e.to_string())?;
    let mut cmd = sut::regbridge(ctx, port, &label, &[(credential, AUTH)]);
    cmd.envs(dest.env());
    let proc = sut::start_ready(ctx, cmd, port, &label).await?;
    let http = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let url = format!("http://127.0.0.1:{port}/webhooks/{endpoint}");
    let (mut took, mut statuses, mut body_bytes) = (Vec::new(), Vec::new(), 0);
    for request in 0..=REQUESTS {
        let body = shape.payload(&label, request, n);
        body_bytes = body.len();
        let started = Instant::now();
        let mut res = http
            .post(&url)
            .insert_header(("content-type", shape.content_type()))
            .insert_header(("authorization", AUTH))
            .send_body(body)
            .await
            .map_err(|e| format!("{} request {request}: {e}", shape.name()))?;
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
        shape,
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
        "payload",
        "events per request",
        "body KB",
        "answer p50 ms",
        "answer max ms",
        "events/s",
        "non-200",
        "in destination",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            vec![
                b.sink.to_owned(),
                b.shape.name().to_owned(),
                b.resources.to_string(),
                format!("{:.0}", b.body_bytes as f64 / 1024.0),
                format!("{:.1}", b.p50_ms),
                format!("{:.1}", b.max_ms),
                format!("{:.0}", b.events_per_s),
                b.statuses.iter().filter(|&&s| s != 200).count().to_string(),
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
