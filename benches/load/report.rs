//! Results: per-scenario rows (percentiles, CPU, memory, counts), the text and Markdown tables,
//! the ratios to the ceilings, the target checks and the JSON file.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use crate::client::Run;
use crate::sut::Footprint;

/// What was measured: regbridge on a sink, or one of the ceilings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Regbridge,
    BareHttp,
    KafkaProducer,
    NatsPublisher,
    AmqpPublisher,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Regbridge => "regbridge",
            Self::BareHttp => "bare actix-web",
            Self::KafkaProducer => "kafka producer",
            Self::NatsPublisher => "jetstream publisher",
            Self::AmqpPublisher => "amqp publisher",
        }
    }
}

pub struct Row {
    pub target: Target,
    /// regbridge's sink, or the ceiling's broker; `-` for bare HTTP.
    pub sink: &'static str,
    pub concurrency: usize,
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub rps: f64,
    /// p50, p99, p99.9 of successful operations, milliseconds.
    pub pct: Option<[f64; 3]>,
    /// CPU microseconds per successful operation in the measured process.
    pub cpu_us: Option<f64>,
    /// Context switches per successful operation in the measured process.
    pub switches: Option<f64>,
    /// The same for the harness (load client) process, for HTTP runs.
    pub client_cpu_us: Option<f64>,
    /// `--instructions`: user-space instructions per successful operation in the measured process.
    pub instructions: Option<f64>,
    pub foot: Footprint,
    /// Events found in the destination, and how many 2xx (warm-up included) it must equal.
    pub count: Option<(u64, u64)>,
    /// Set when the scenario could not run; the other fields are then empty.
    pub error: Option<String>,
}

impl Row {
    pub fn from_run(target: Target, sink: &'static str, concurrency: usize, run: Run, clk_tck: u64) -> Self {
        let mut lat = run.latencies;
        lat.sort_unstable();
        // Nearest rank: the smallest latency with at least q of all at or below it.
        let at = |q: f64| {
            let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
            lat[rank - 1] as f64 / 1e6
        };
        let pct = (!lat.is_empty()).then(|| [at(0.50), at(0.99), at(0.999)]);
        let per_op = |ticks: Option<u64>| {
            ticks.filter(|_| run.ok > 0).map(|t| t as f64 * 1e6 / clk_tck as f64 / run.ok as f64)
        };
        let (cpu_us, client_cpu_us) = (per_op(run.cpu_ticks), per_op(run.client_ticks));
        let per_ok = |n: Option<u64>| n.filter(|_| run.ok > 0).map(|n| n as f64 / run.ok as f64);
        let (instructions, switches) = (per_ok(run.instructions), per_ok(run.switches));
        Self {
            target,
            sink,
            concurrency,
            ok: run.ok,
            failed: run.failed,
            failures: run.failures,
            rps: run.ok as f64 / run.elapsed.as_secs_f64(),
            pct,
            cpu_us,
            switches,
            // For the broker ceilings the harness is the measured process itself.
            client_cpu_us: client_cpu_us.filter(|_| matches!(target, Target::Regbridge | Target::BareHttp)),
            instructions,
            foot: Footprint::default(),
            count: None,
            error: None,
        }
    }

    pub fn failed_to_run(target: Target, sink: &'static str, concurrency: usize, error: String) -> Self {
        Self {
            target,
            sink,
            concurrency,
            ok: 0,
            failed: 0,
            failures: BTreeMap::new(),
            rps: 0.0,
            pct: None,
            cpu_us: None,
            switches: None,
            client_cpu_us: None,
            instructions: None,
            foot: Footprint::default(),
            count: None,
            error: Some(error),
        }
    }

    pub fn count_matches(&self) -> bool {
        self.count.is_none_or(|(found, want)| found == want)
    }

    fn count_cell(&self) -> String {
        match self.count {
            Some((found, want)) if found == want => format!("{found} = 2xx"),
            Some((found, want)) => format!("{found} ≠ {want} FAIL"),
            None => "-".into(),
        }
    }

    fn failures_cell(&self) -> String {
        if self.failures.is_empty() {
            return self.failed.to_string();
        }
        let kinds: Vec<String> = self.failures.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        format!("{} ({})", self.failed, kinds.join(", "))
    }
}

fn find(rows: &[Row], target: Target, concurrency: usize) -> Option<&Row> {
    rows.iter().find(|r| r.target == target && r.concurrency == concurrency && r.error.is_none())
}

/// regbridge's CPU per webhook ÷ the bare server's CPU per request, same concurrency; counted in
/// instructions when the run counted them (`--instructions`), else in CPU time.
fn cpu_ratio(rows: &[Row], r: &Row) -> Option<f64> {
    let bare = find(rows, Target::BareHttp, r.concurrency)?;
    match (r.instructions, bare.instructions) {
        (Some(mine), Some(theirs)) => Some(mine / theirs),
        _ => Some(r.cpu_us? / bare.cpu_us?),
    }
}

fn rps_ratio(rows: &[Row], r: &Row) -> Option<f64> {
    let bare = find(rows, Target::BareHttp, r.concurrency)?.rps;
    (bare > 0.0).then(|| r.rps / bare)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

const HEADER: [&str; 17] = [
    "what",
    "sink",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "non-2xx",
    "CPU µs/req",
    "CPU ÷ bare",
    "switches/req",
    "req/s ÷ bare",
    "peak RSS MB",
    "idle RSS MB",
    "ready ms",
    "in broker",
    "client µs/req",
];

fn cells(rows: &[Row], r: &Row) -> Vec<String> {
    let mb = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    let regbridge = r.target == Target::Regbridge;
    let mut c = vec![r.target.name().to_owned(), r.sink.to_owned(), r.concurrency.to_string()];
    if let Some(e) = &r.error {
        c.push(format!("did not run: {e}"));
        c.resize(HEADER.len(), String::new());
        return c;
    }
    c.push(format!("{:.0}", r.rps));
    for i in 0..3 {
        c.push(opt(r.pct, |p| format!("{:.2}", p[i])));
    }
    c.push(r.failures_cell());
    c.push(opt(r.cpu_us, |v| format!("{v:.1}")));
    c.push(opt(cpu_ratio(rows, r).filter(|_| regbridge), |v| format!("{v:.2}")));
    c.push(opt(r.switches, |v| format!("{v:.2}")));
    c.push(opt(rps_ratio(rows, r).filter(|_| regbridge), |v| format!("{v:.2}")));
    c.push(opt(r.foot.peak_rss_kib, mb));
    c.push(opt(r.foot.idle_rss_kib, mb));
    c.push(opt(r.foot.ready, |d| format!("{:.1}", d.as_secs_f64() * 1e3)));
    c.push(r.count_cell());
    c.push(opt(r.client_cpu_us, |v| format!("{v:.1}")));
    c
}

/// Aligned plain-text table.
pub fn text_table(rows: &[Row]) -> String {
    let all: Vec<Vec<String>> = std::iter::once(HEADER.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.iter().map(|r| cells(rows, r)))
        .collect();
    let widths: Vec<usize> =
        (0..HEADER.len()).map(|i| all.iter().map(|c| c[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for c in &all {
        let line: Vec<String> = c.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for r in rows {
        let _ = writeln!(out, "| {} |", cells(rows, r).join(" | "));
    }
    out
}

/// `--instructions` runs: instructions per 2xx and the ratio to the bare server, as an aligned
/// text table or Markdown.
pub fn instructions_table(rows: &[Row], markdown: bool) -> String {
    const HEAD: [&str; 7] = ["what", "sink", "conns", "2xx", "instructions/req", "÷ bare", "in broker"];
    let mut all = vec![HEAD.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for r in rows {
        let mut c = vec![r.target.name().to_owned(), r.sink.to_owned(), r.concurrency.to_string()];
        match &r.error {
            Some(e) => c.extend([format!("did not run: {e}"), "".into(), "".into(), "".into()]),
            None => c.extend([
                r.ok.to_string(),
                opt(r.instructions, |v| format!("{v:.0}")),
                opt(cpu_ratio(rows, r).filter(|_| r.target == Target::Regbridge), |v| format!("{v:.2}")),
                r.count_cell(),
            ]),
        }
        all.push(c);
    }
    let mut out = String::new();
    if markdown {
        for (i, c) in all.iter().enumerate() {
            let _ = writeln!(out, "| {} |", c.join(" | "));
            if i == 0 {
                let _ = writeln!(out, "|{}", "---|".repeat(HEAD.len()));
            }
        }
        return out;
    }
    let widths: Vec<usize> =
        (0..HEAD.len()).map(|i| all.iter().map(|c| c[i].chars().count()).max().unwrap_or(0)).collect();
    for c in &all {
        let line: Vec<String> = c.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// What the table in the README measured before this round, per sink: peak RSS MB, idle RSS MB
/// and the slowest ready time in ms. A target is "no worse", with 5 % allowed for the spread
/// between runs of the same build.
const PREVIOUS: [(&str, f64, f64, Option<f64>); 4] = [
    ("kafka", 54.9, 15.0, None),
    ("nats", 51.6, 13.5, None),
    ("amqp", 46.9, 14.2, None),
    ("file", 49.2, 12.4, Some(8.7)),
];
const SPREAD: f64 = 1.05;

/// The limit on regbridge's CPU per webhook ÷ what the ends cost on their own (the bare request,
/// plus the direct client's record for a broker), at the connection counts below.
const OWN_CPU_LIMIT: f64 = 1.3;
const OWN_CPU_AT: [usize; 2] = [128, 512];
/// Kafka's req/s at 512 connections ÷ the bare server's.
const KAFKA_RPS_LIMIT: f64 = 0.6;

/// The direct client a sink's CPU is compared with; `None` for the file sink.
fn ceiling(sink: &str) -> Option<Target> {
    match sink {
        "kafka" => Some(Target::KafkaProducer),
        "nats" => Some(Target::NatsPublisher),
        "amqp" => Some(Target::AmqpPublisher),
        _ => None,
    }
}

/// regbridge's CPU per webhook ÷ (bare CPU per request + the direct client's CPU per record).
fn own_cpu_ratio(rows: &[Row], r: &Row) -> Option<f64> {
    let bare = find(rows, Target::BareHttp, r.concurrency)?.cpu_us?;
    let direct = match ceiling(r.sink) {
        Some(c) => find(rows, c, r.concurrency)?.cpu_us?,
        None => 0.0,
    };
    Some(r.cpu_us? / (bare + direct))
}

fn worst(v: impl Iterator<Item = f64>) -> Option<f64> {
    v.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// The ratio lines and whether each target holds, as (line, verdict) pairs; verdict `None` for a
/// line that is not a target, or when the rows it needs were not measured. Under
/// `--instructions` only the ratio to the bare server means anything (no ceilings run).
pub fn targets(rows: &[Row]) -> Vec<(String, Option<bool>)> {
    let counted = rows.iter().any(|r| r.instructions.is_some());
    let mut out = Vec::new();
    let reg: Vec<&Row> = rows.iter().filter(|r| r.target == Target::Regbridge && r.error.is_none()).collect();
    let mut sinks: Vec<&str> = reg.iter().map(|r| r.sink).collect();
    sinks.dedup();
    let f2 = |v: f64| format!("{v:.2}");
    for sink in &sinks {
        let of = |c: Option<usize>| {
            reg.iter().filter(move |r| r.sink == *sink && c.is_none_or(|c| r.concurrency == c))
        };
        let per = |f: &dyn Fn(&Row) -> Option<f64>| -> String {
            of(None).map(|r| format!("{}: {}", r.concurrency, opt(f(r), f2))).collect::<Vec<_>>().join(", ")
        };
        out.push((
            format!(
                "{sink}: CPU/webhook ÷ bare CPU/request{} (per conns {})",
                if counted { ", in instructions" } else { "" },
                per(&|r| cpu_ratio(rows, r))
            ),
            None,
        ));
        if counted {
            continue;
        }
        let ends = match ceiling(sink) {
            Some(c) => format!("(bare CPU/request + {} CPU/record)", c.name()),
            None => "bare CPU/request".to_owned(),
        };
        let at: Vec<f64> = OWN_CPU_AT
            .iter()
            .filter_map(|c| of(Some(*c)).next().and_then(|r| own_cpu_ratio(rows, r)))
            .collect();
        out.push((
            format!(
                "{sink}: CPU/webhook ÷ {ends} ≤ {OWN_CPU_LIMIT} at 128 and 512 conns (per conns {})",
                per(&|r| own_cpu_ratio(rows, r))
            ),
            (at.len() == OWN_CPU_AT.len()).then(|| at.iter().all(|v| *v <= OWN_CPU_LIMIT)),
        ));
        let at512 = of(Some(512)).next().and_then(|r| rps_ratio(rows, r));
        let kafka = *sink == "kafka";
        out.push((
            format!(
                "{sink}: req/s at 512 ÷ bare req/s at 512{} ({})",
                if kafka { format!(" ≥ {KAFKA_RPS_LIMIT}") } else { String::new() },
                opt(at512, f2)
            ),
            at512.filter(|_| kafka).map(|v| v >= KAFKA_RPS_LIMIT),
        ));
        if let Some(c) = ceiling(sink) {
            let direct = |r: &Row| Some(r.rps / find(rows, c, r.concurrency)?.rps);
            out.push((format!("{sink}: req/s ÷ {} records/s (per conns {})", c.name(), per(&direct)), None));
        }
        let previous = PREVIOUS.iter().find(|p| p.0 == *sink);
        let mb = |k: u64| k as f64 / 1024.0;
        let no_worse = |what: &str, now: Option<f64>, before: Option<f64>, unit: &str| {
            let limit = before.map(|b| b * SPREAD);
            (
                format!(
                    "{sink}: {what} no worse than before ({} {unit} now, {} before, limit {})",
                    opt(now, |v| format!("{v:.1}")),
                    opt(before, |v| format!("{v:.1}")),
                    opt(limit, |v| format!("{v:.1}"))
                ),
                now.zip(limit).map(|(n, l)| n <= l),
            )
        };
        let peak = of(None).filter_map(|r| r.foot.peak_rss_kib).max().map(mb);
        out.push(no_worse("peak RSS", peak, previous.map(|p| p.1), "MB"));
        let idle = of(None).filter_map(|r| r.foot.idle_rss_kib).max().map(mb);
        out.push(no_worse("idle RSS", idle, previous.map(|p| p.2), "MB"));
        if let Some(before) = previous.and_then(|p| p.3) {
            let ready = worst(of(None).filter_map(|r| r.foot.ready).map(|d| d.as_secs_f64() * 1e3));
            out.push(no_worse("ready time", ready, Some(before), "ms"));
        }
        if kafka {
            let p99 = of(Some(128)).next().and_then(|r| r.pct).map(|p| p[1]);
            out.push((format!("kafka: p99 at 128 conns ({} ms)", opt(p99, f2)), None));
        }
    }
    out
}

/// `--instructions --baseline FILE`: instructions per webhook against an earlier run's `--json`
/// file, scenario by scenario. Counts repeat to 0.1 % between runs of one build, so anything
/// beyond the allowance is the code's doing.
pub fn against_baseline(rows: &[Row], baseline: &Value) -> Vec<(String, Option<bool>)> {
    const ALLOWED: f64 = 1.02;
    let before = |r: &Row| {
        baseline["results"].as_array()?.iter().find_map(|b| {
            (b["target"] == r.target.name() && b["sink"] == r.sink && b["concurrency"] == r.concurrency)
                .then(|| b["instructions_per_op"].as_f64())
                .flatten()
        })
    };
    rows.iter()
        .filter_map(|r| {
            let (now, then) = (r.instructions?, before(r));
            let line = format!(
                "{} {} at {}: instructions/webhook ≤ baseline + 2 % ({now:.0} now, {} before, {})",
                r.target.name(),
                r.sink,
                r.concurrency,
                opt(then, |v| format!("{v:.0}")),
                opt(then, |v| format!("{:+.1} %", (now / v - 1.0) * 100.0)),
            );
            Some((line, then.map(|t| now <= t * ALLOWED)))
        })
        .collect()
}

pub fn json(rows: &[Row], meta: Value) -> Value {
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "target": r.target.name(),
                "sink": r.sink,
                "concurrency": r.concurrency,
                "error": r.error,
                "ok": r.ok,
                "non_2xx": r.failed,
                "failures": r.failures,
                "rps": r.rps,
                "p50_ms": r.pct.map(|p| p[0]),
                "p99_ms": r.pct.map(|p| p[1]),
                "p999_ms": r.pct.map(|p| p[2]),
                "cpu_us_per_op": r.cpu_us,
                "context_switches_per_op": r.switches,
                "client_cpu_us_per_op": r.client_cpu_us,
                "instructions_per_op": r.instructions,
                "cpu_ratio_to_bare": cpu_ratio(rows, r).filter(|_| r.target == Target::Regbridge),
                "rps_ratio_to_bare": rps_ratio(rows, r).filter(|_| r.target == Target::Regbridge),
                "peak_rss_kib": r.foot.peak_rss_kib,
                "idle_rss_kib": r.foot.idle_rss_kib,
                "ready_ms": r.foot.ready.map(|d| d.as_secs_f64() * 1e3),
                "broker_count": r.count.map(|c| c.0),
                "expected_count": r.count.map(|c| c.1),
                "count_matches": r.count.map(|_| r.count_matches()),
            })
        })
        .collect();
    let targets: Vec<Value> =
        targets(rows).into_iter().map(|(line, ok)| json!({ "check": line, "holds": ok })).collect();
    json!({ "meta": meta, "results": results, "targets": targets })
}
