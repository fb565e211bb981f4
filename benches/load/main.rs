//! `cargo bench --bench load -- [options]`: drives the release regbridge with signed ~1 KB Root
//! webhooks per sink and concurrency, measures the HTTP and broker ceilings in the same run, and
//! reports throughput, latency, CPU, memory, start-up time and exact delivery counts.
//!
//! Process model: one fresh regbridge per (sink, concurrency) scenario, each with its own
//! destination, so peak RSS, start-up time and the broker count belong to that scenario alone.
//! The harness itself is single-threaded (one actix/tokio current-thread runtime): the load
//! client, the broker ceilings' producers and the counting all run on it.

mod attack;
mod batch;
mod brokers;
mod callgrind;
mod ceilings;
mod client;
mod outage;
mod report;
mod sut;
mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use serde_json::json;

use brokers::{Destination, Sink};
use client::Phases;
use report::{Row, Target};
use webhook::{Body, RequestBuilder};

/// Load harness for regbridge (see benches/load/main.rs).
#[derive(Parser)]
#[command(name = "load")]
struct Cli {
    /// Sinks to drive regbridge with, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kafka,nats,amqp,file")]
    sinks: Vec<Sink>,
    /// Connections (one request in flight each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128,512")]
    concurrency: Vec<usize>,
    /// Measured window per run (`10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before each measured window, on the same connections.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// CI smoke run: --sinks file,kafka --concurrency 8,32 --duration 2s --warmup 1s (each
    /// unless given explicitly), and the outage scenario at 32 connections.
    #[arg(long)]
    quick: bool,
    /// Also print the results as a Markdown table.
    #[arg(long)]
    markdown: bool,
    /// Write every result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Use this regbridge binary instead of running `cargo build --release --bin regbridge`.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Upper bound on requests per run (warm-up included), on top of the time bound.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Skip the bare-HTTP and broker ceilings (no ratios then).
    #[arg(long)]
    no_ceilings: bool,
    /// Also freeze a Kafka broker of its own under load at each concurrency: spool throughput,
    /// then the relay's replay time once it resumes (see benches/load/outage.rs). `--quick` runs
    /// it at 32 connections.
    #[arg(long)]
    outage: bool,
    /// Keep this many stalled uploads open beside the load of every regbridge scenario (see
    /// benches/load/attack.rs): the figures are then the legitimate senders' under attack.
    #[arg(long, default_value_t = 0)]
    attack: usize,
    /// Also send Harbor pushes listing this many resources, Distribution envelopes and Event Grid
    /// (ACR) arrays of this many entries (that many events per request) to each sink, one request
    /// after the other: answer time and events/s of large fan-outs; fails on any answer but 200
    /// or one over the publish budget. `--quick` runs 1,000.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Only the outage scenarios (implies --outage).
    #[arg(long)]
    outage_only: bool,
    /// The concurrencies the outage scenario runs at (set from the others).
    #[arg(skip)]
    outage_concurrency: Vec<usize>,
    /// Count instructions instead of timing: regbridge and the bare server run under callgrind,
    /// which counts only the measured window. Repeatable on a noisy machine, ~50× slower; the
    /// broker ceilings are skipped. Default phases: --concurrency 8 --warmup 5s --duration 20s.
    #[arg(long)]
    instructions: bool,
    /// With --instructions: keep each process's callgrind profile in this directory (for
    /// `callgrind_annotate`); by default they go with the scratch directory.
    #[arg(long, requires = "instructions")]
    profiles: Option<PathBuf>,
    /// With --instructions: compare each scenario's instructions per webhook with this earlier
    /// run's `--json` file (the regression check between commits; `benches/load/baseline.json`
    /// is the last recorded one).
    #[arg(long, requires = "instructions", value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// A librdkafka setting (`linger.ms=0`) for regbridge's producer and the direct producer
    /// alike, on top of regbridge's defaults; repeatable. For comparing producer settings.
    #[arg(long = "kafka-set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    kafka_set: Vec<(String, String)>,
    /// Internal: serve the bare actix-web ceiling on this port.
    #[arg(long, hide = true)]
    bare_server: Option<u16>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a duration like 10s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in `{s}` (ms, s, m)")),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("`{s}` must be above 0 and at most an hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '.') => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("`{s}` is not a librdkafka setting like linger.ms=0")),
    }
}

/// Everything the scenarios share.
pub struct Ctx {
    pub binary: PathBuf,
    pub dir: tempfile::TempDir,
    /// Random per harness run; every destination name and event id starts with it.
    pub run_id: String,
    pub body: Body,
    pub phases: Phases,
    pub clk_tck: u64,
    /// `--instructions`: the processes under test run under callgrind, writing their profiles to
    /// this directory.
    pub callgrind: Option<PathBuf>,
    /// `--kafka-set`: librdkafka settings for both Kafka producers.
    pub kafka_settings: Vec<(String, String)>,
    /// `--attack`: stalled uploads beside each regbridge scenario.
    pub attack: usize,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let explicit = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if let Some(port) = cli.bare_server {
        return match ceilings::serve_bare(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.quick {
        if !explicit("sinks") {
            cli.sinks = vec![Sink::File, Sink::Kafka];
        }
        if !explicit("concurrency") {
            cli.concurrency = vec![8, 32];
        }
        if !explicit("duration") {
            cli.duration = Duration::from_secs(2);
        }
        if !explicit("warmup") {
            cli.warmup = Duration::from_secs(1);
        }
        cli.outage = true;
        if !explicit("batch") {
            cli.batch = 1000;
        }
    }
    cli.outage |= cli.outage_only;
    cli.outage_concurrency =
        if cli.quick && !explicit("concurrency") { vec![32] } else { cli.concurrency.clone() };
    if cli.instructions {
        if let Err(e) = callgrind::available() {
            eprintln!("load: {e}");
            return ExitCode::from(2);
        }
        if !explicit("concurrency") {
            cli.concurrency = vec![8];
        }
        if !explicit("warmup") {
            cli.warmup = Duration::from_secs(5);
        }
        if !explicit("duration") {
            cli.duration = Duration::from_secs(20);
        }
    }
    if let Some(bad) = cli.concurrency.iter().find(|&&c| c == 0 || c > 4096) {
        eprintln!("load: --concurrency {bad} is outside 1..=4096");
        return ExitCode::from(2);
    }
    // Absolute: each child runs in the scratch directory, where a relative path would not resolve.
    let given =
        cli.binary.clone().map(|b| std::fs::canonicalize(&b).map_err(|e| format!("{}: {e}", b.display())));
    let binary = match given.unwrap_or_else(sut::build_regbridge) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("load: FAIL: {e}");
            return ExitCode::FAILURE;
        }
    };
    actix_rt::System::new().block_on(run(cli, binary))
}

async fn run(mut cli: Cli, binary: PathBuf) -> ExitCode {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/root/image-created.e2e-rendered.json");
    let (body, dir) = match (Body::from_fixture(&fixture), tempfile::tempdir()) {
        (Ok(b), Ok(d)) => (b, d),
        (Err(e), _) => return fail(&e),
        (_, Err(e)) => return fail(&e.to_string()),
    };
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd).expect("the OS has randomness");
    let (clk_tck, clk_known) = sut::clk_tck();
    let phases = Phases { warmup: cli.warmup, duration: cli.duration, max_ops: cli.max_requests };
    let kafka_settings = std::mem::take(&mut cli.kafka_set);
    let mut ctx = Ctx {
        binary,
        dir,
        run_id: hex::encode(rnd),
        body,
        phases,
        clk_tck,
        callgrind: None,
        kafka_settings,
        attack: cli.attack,
    };
    if cli.instructions {
        let profiles = cli.profiles.clone().unwrap_or_else(|| ctx.dir.path().to_owned());
        if let Err(e) = std::fs::create_dir_all(&profiles) {
            return fail(&format!("{}: {e}", profiles.display()));
        }
        ctx.callgrind = Some(profiles);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body_len = RequestBuilder::new(0, ctx.body.clone()).body_len();
    eprintln!(
        "load: regbridge {} | {cores} cores | sinks {:?} | conns {:?} | warm-up {:?} + {:?} per run | \
         body ~{body_len} B | CLK_TCK {clk_tck}{}",
        ctx.binary.display(),
        cli.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
        cli.concurrency,
        cli.warmup,
        cli.duration,
        if clk_known { "" } else { " (assumed; getconf failed)" },
    );

    let mut rows = Vec::new();
    let matrix = !cli.outage_only;
    if matrix && !cli.no_ceilings {
        for &c in &cli.concurrency {
            rows.push(progress(ceilings::bare(&ctx, c).await));
        }
    }
    for &sink in cli.sinks.iter().filter(|_| matrix) {
        if !cli.no_ceilings && !cli.instructions && sink == Sink::Kafka {
            for &c in &cli.concurrency {
                rows.push(progress(ceilings::kafka(&ctx, c).await));
            }
        }
        if !cli.no_ceilings && !cli.instructions && sink == Sink::Nats {
            for &c in &cli.concurrency {
                rows.push(progress(ceilings::nats(&ctx, c).await));
            }
        }
        if !cli.no_ceilings && !cli.instructions && sink == Sink::Amqp {
            for &c in &cli.concurrency {
                rows.push(progress(ceilings::amqp(&ctx, c).await));
            }
        }
        for &c in &cli.concurrency {
            rows.push(progress(regbridge_scenario(&ctx, sink, c).await));
        }
    }

    let mut batches = Vec::new();
    let mut batch_failed = false;
    if cli.batch > 0 && matrix && !cli.instructions {
        for &sink in &cli.sinks {
            for shape in batch::Shape::ALL {
                match batch::run(&ctx, sink, shape, cli.batch).await {
                    Ok(b) => {
                        eprintln!(
                            "load: batch {} {} ×{}: p50 {:.1} ms, max {:.1} ms, {:.0} events/s, {} of {} events",
                            b.sink,
                            shape.name(),
                            b.resources,
                            b.p50_ms,
                            b.max_ms,
                            b.events_per_s,
                            b.found,
                            b.expected
                        );
                        batches.push(b);
                    }
                    Err(e) => {
                        println!("FAIL: batch {} {} did not run: {e}", sink.name(), shape.name());
                        batch_failed = true;
                    }
                }
            }
        }
    }
    let mut outages = Vec::new();
    let mut outage_failed = false;
    if cli.outage && !cli.instructions {
        for c in cli.outage_concurrency.clone() {
            match outage::kafka(&ctx, c).await {
                Ok(o) => {
                    eprintln!(
                        "load: outage kafka ×{c}: spooled {:.0}/s, backlog {} replayed in {:.2} s, {} of {} 2xx in Kafka",
                        o.spool_rps,
                        o.backlog,
                        o.replay.as_secs_f64(),
                        o.distinct,
                        o.acknowledged
                    );
                    outages.push(o);
                }
                Err(e) => {
                    println!("FAIL: outage kafka ×{c} did not run: {e}");
                    outage_failed = true;
                }
            }
        }
    }

    if cli.instructions {
        println!("\n{}", report::instructions_table(&rows, cli.markdown));
        println!(
            "instructions = user-space instructions of every thread of the measured process, counted \
             by callgrind in the measured window only, ÷ 2xx in that window; the kernel's share \
             (socket I/O, epoll, futex) is not included."
        );
    } else if !rows.is_empty() {
        println!("\n{}", report::text_table(&rows));
        println!(
            "req/s counts 2xx only, over the measured window (until the last answer); latencies of 2xx; \
         CPU = utime+stime of the measured process (regbridge, the bare server, or for the broker \
         ceilings the harness itself with its producer threads) in the window ÷ 2xx, CLK_TCK {clk_tck}; \
         switches = voluntary + involuntary context switches of the same process's threads in the \
         window ÷ 2xx (thread hand-offs and preemptions); peak RSS = VmHWM since the process \
         started; idle RSS = VmRSS once /readyz answered 200; \
         ready = spawn until /readyz answered 200; in broker = events in the scenario's own \
         destination afterwards vs all 2xx (warm-up included); client = the harness's own CPU per 2xx \
         (raw HTTP/1.1 keep-alive client, one request in flight per connection, one thread)."
        );
    }
    if cli.markdown && !cli.instructions && !rows.is_empty() {
        println!("\n{}", report::markdown_table(&rows));
    }
    if !batches.is_empty() {
        println!(
            "\nLarge fan-outs ({n} events per request: one Harbor push listing {n} resources, one \
             Distribution envelope of {n} manifest pushes, one Event Grid array of {n} ACR pushes; \
             {} in a row after a warm-up, each shape on a fresh regbridge; publish budget {:?}):\n{}",
            batch::REQUESTS,
            batch::BUDGET,
            batch::table(&batches, cli.markdown),
            n = cli.batch,
        );
    }
    if !outages.is_empty() {
        println!(
            "\nKafka frozen (SIGSTOP) under load, then resumed:\n{}",
            outage::table(&outages, cli.markdown)
        );
        println!(
            "spool 2xx/s, p50/p99 and CPU over the measured window with the broker frozen (after a 2 s \
             warm-up in which the first publishes run out of their budget); backlog = events in the \
             outbox when it resumed; replay = until /readyz showed it empty; 2xx = every 2xx of the \
             scenario, healthy phase included; in Kafka = distinct event ids / records read back \
             (records above distinct are redelivered copies)."
        );
    }
    let mut checks = report::targets(&rows);
    if let Some(path) = &cli.baseline {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()))
        {
            Ok(baseline) => checks.extend(report::against_baseline(&rows, &baseline)),
            Err(e) => {
                eprintln!("load: FAIL: reading the baseline {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if !checks.is_empty() {
        println!("\nratios and targets:");
        for (line, verdict) in &checks {
            let mark = match verdict {
                Some(true) => "met   ",
                Some(false) => "MISSED",
                None => "      ",
            };
            println!("  {mark} {line}");
        }
    }
    if let Some(path) = &cli.json {
        let meta = json!({
            "cores": cores, "clk_tck": clk_tck, "clk_tck_from_getconf": clk_known,
            "duration_s": cli.duration.as_secs_f64(), "warmup_s": cli.warmup.as_secs_f64(),
            "body_bytes": body_len, "binary": ctx.binary.display().to_string(),
            "process_per": "sink and concurrency",
            "client": "raw HTTP/1.1 keep-alive on one current-thread tokio runtime",
        });
        let text = serde_json::to_string_pretty(&report::json(&rows, meta)).expect("JSON serializes");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("load: FAIL: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }

    let mut failed = outage_failed || batch_failed;
    for b in &batches {
        for why in b.failures() {
            println!("FAIL: batch {} {} ×{}: {why}", b.sink, b.shape.name(), b.resources);
            failed = true;
        }
    }
    for o in &outages {
        if o.distinct < o.acknowledged {
            println!(
                "FAIL: outage kafka ×{}: {} distinct events in Kafka but {} answers were 2xx",
                o.conns, o.distinct, o.acknowledged
            );
            failed = true;
        }
    }
    for r in &rows {
        let what = format!("{} {} ×{}", r.target.name(), r.sink, r.concurrency);
        if let Some(e) = &r.error {
            println!("FAIL: {what} did not run: {e}");
            failed = true;
        } else if let Some((found, want)) = r.count.filter(|_| !r.count_matches()) {
            println!("FAIL: {what}: {found} events in the broker but {want} answers were 2xx");
            failed = true;
        }
    }
    if failed {
        println!("FAIL: see above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("load: FAIL: {e}");
    ExitCode::FAILURE
}

/// One line per finished scenario on stderr, so a long run shows where it is.
fn progress(row: Row) -> Row {
    let what = format!("{} {} ×{}", row.target.name(), row.sink, row.concurrency);
    match (&row.error, row.pct) {
        (Some(e), _) => eprintln!("load: {what}: did not run: {e}"),
        (None, p) => eprintln!(
            "load: {what}: {:.0}/s, p99 {} ms, non-2xx {}, count {}",
            row.rps,
            p.map_or("-".into(), |p| format!("{:.2}", p[1])),
            row.failed,
            row.count.map_or("-".into(), |(f, w)| if f == w {
                format!("{f} ok")
            } else {
                format!("{f} ≠ {w} FAIL")
            }),
        ),
    }
    row
}

/// regbridge on one sink at one concurrency, fresh process and destination.
async fn regbridge_scenario(ctx: &Ctx, sink: Sink, conns: usize) -> Row {
    let row = |e: String| Row::failed_to_run(Target::Regbridge, sink.name(), conns, e);
    let label = format!("ld{}-{}-c{conns}", ctx.run_id, sink.name());
    let dest = match Destination::create(sink, &label, ctx.dir.path()).await {
        Ok(d) => d,
        Err(e) => return row(format!("{e} (brokers: scripts/brokers up)")),
    };
    let port = match sut::free_port() {
        Ok(p) => p,
        Err(e) => return row(e.to_string()),
    };
    let mut cmd = Command::new(&ctx.binary);
    cmd.env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_ROOT_SECRETS", webhook::SECRET)
        .env("REGBRIDGE_RATE_LIMIT", "0")
        .env("REGBRIDGE_SHUTDOWN_TIMEOUT", "5s")
        // Each scenario its own outbox: nothing spooled by one is replayed into the next.
        .env("REGBRIDGE_OUTBOX_DIR", ctx.dir.path().join(format!("outbox-{label}")))
        // The service's default level, whatever the caller's RUST_LOG says.
        .env("RUST_LOG", "info")
        // Every connection comes from 127.0.0.1: an operator whose one sender opens more than the
        // default 256 connections raises the per-address limit the same way.
        .env("REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS", conns.max(256).to_string())
        .envs(dest.env());
    if sink == Sink::Kafka {
        // regbridge's pass-through: REGBRIDGE_KAFKA_LINGER_MS → linger.ms.
        for (k, v) in &ctx.kafka_settings {
            cmd.env(format!("REGBRIDGE_KAFKA_{}", k.to_ascii_uppercase().replace('.', "_")), v);
        }
    }
    let outcome = sut::drive_process(ctx, cmd, port, conns, &label).await;
    let result = match outcome {
        Ok((run, foot)) => {
            // Every 2xx, warm-up included, went to this destination and nothing else did.
            let expected = run.ok + run.warm_ok;
            let mut r = Row::from_run(Target::Regbridge, sink.name(), conns, run, ctx.clk_tck);
            r.foot = foot;
            match dest.count(expected).await {
                Ok(found) => r.count = Some((found, expected)),
                Err(e) => r.error = Some(format!("counting: {e}")),
            }
            r
        }
        Err(e) => row(e),
    };
    dest.remove().await;
    result
}
