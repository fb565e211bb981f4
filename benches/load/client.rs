//! The closed-loop load driver (N workers, one operation in flight each) and its HTTP/1.1 client.
//!
//! Client choice: a minimal keep-alive HTTP/1.1 client on tokio's `TcpStream`, run with every
//! other task on the harness's single-threaded actix (tokio current-thread) runtime. Each worker
//! owns exactly one connection, writes one prebuilt request with a single `write_all` and parses
//! the status line and framing of the answer, nothing more. awc would work too, but its per-request
//! header maps, pool bookkeeping and body streams cost CPU on the same two cores the server runs
//! on, which would pull the bare-HTTP ceiling down and make the ratios flatter than they are.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_rt::net::TcpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::webhook::RequestBuilder;

/// No single operation may take longer; regbridge answers within its 2 s publish budget, so
/// hitting this means something hangs, and the worker drops its connection and goes on.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a transport error so a refused connection does not turn into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(5);
/// Larger response headers than this are not HTTP we expect.
const MAX_HEAD: usize = 64 * 1024;

pub enum Outcome {
    Ok,
    Status(u16),
    Error(&'static str),
}

/// One closed-loop worker: an operation is awaited before the next starts.
pub trait Worker {
    fn call(&mut self) -> impl Future<Output = Outcome>;
    /// The previous call was abandoned (timeout): drop whatever state it left half-used.
    fn reset(&mut self);
}

pub struct Phases {
    pub warmup: Duration,
    pub duration: Duration,
    /// Bound on operations per run, on top of the time bound.
    pub max_ops: u64,
}

/// What one run measured. Operations are attributed to the measured window by their completion
/// time, which is how the CPU window (sampled at the switch and after the last completion) sees
/// them.
#[derive(Default)]
pub struct Run {
    pub ok: u64,
    pub failed: u64,
    pub warm_ok: u64,
    pub warm_failed: u64,
    /// Failure kinds of the measured window: status codes and transport errors.
    pub failures: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Latencies of the measured window's successes, nanoseconds, unsorted.
    pub latencies: Vec<u64>,
    /// Clock ticks the measured process used in the measured window, if it could be read.
    pub cpu_ticks: Option<u64>,
    /// Context switches of the measured process's threads in the measured window.
    pub switches: Option<u64>,
    /// Clock ticks this harness process (the load client) used in the same window.
    pub client_ticks: Option<u64>,
    /// `--instructions`: user-space instructions the measured process executed in the window.
    pub instructions: Option<u64>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct Shared {
    stage: Cell<u8>,
    issued: Cell<u64>,
    max_ops: u64,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    warm_ok: u64,
    warm_failed: u64,
    failures: BTreeMap<String, u64>,
    latencies: Vec<u64>,
    last_done: Option<Instant>,
}

/// Runs `workers` concurrently: warm-up, then the measured window, then waits for the operations
/// in flight (each bounded by `OP_TIMEOUT`). `usage` samples the measured process.
pub async fn drive<W: Worker + 'static>(
    phases: &Phases,
    workers: Vec<W>,
    usage: impl Fn() -> crate::sut::Usage,
) -> Run {
    let shared = Rc::new(Shared { stage: Cell::new(WARMUP), issued: Cell::new(0), max_ops: phases.max_ops });
    let handles: Vec<_> = workers.into_iter().map(|w| actix_rt::spawn(work(shared.clone(), w))).collect();
    actix_rt::time::sleep(phases.warmup).await;
    let me = std::process::id();
    let (before, client_before) = (usage(), crate::sut::cpu_ticks(me));
    let start = Instant::now();
    shared.stage.set(MEASURE);
    actix_rt::time::sleep(phases.duration).await;
    shared.stage.set(STOP);
    let mut run = Run::default();
    let mut last = start;
    for h in handles {
        // A worker never panics by design; if one did, its counts are lost and say so.
        let Ok(t) = h.await else {
            *run.failures.entry("worker panicked".into()).or_default() += 1;
            continue;
        };
        run.ok += t.ok;
        run.failed += t.failed;
        run.warm_ok += t.warm_ok;
        run.warm_failed += t.warm_failed;
        for (k, v) in t.failures {
            *run.failures.entry(k).or_default() += v;
        }
        run.latencies.extend(t.latencies);
        last = last.max(t.last_done.unwrap_or(start));
    }
    let after = usage();
    run.cpu_ticks = before.ticks.zip(after.ticks).map(|(a, b)| b.saturating_sub(a));
    run.switches = before.switches.zip(after.switches).map(|(a, b)| b.saturating_sub(a));
    run.client_ticks = client_before.zip(crate::sut::cpu_ticks(me)).map(|(a, b)| b.saturating_sub(a));
    // Up to the last completion: the window plus the tail of operations in flight at its end
    // (or less, if `max_ops` ended the run early).
    run.elapsed = if last > start { last - start } else { phases.duration };
    run
}

async fn work<W: Worker>(shared: Rc<Shared>, mut w: W) -> Tally {
    let mut t = Tally::default();
    loop {
        if shared.stage.get() == STOP || shared.issued.get() >= shared.max_ops {
            break;
        }
        shared.issued.set(shared.issued.get() + 1);
        let began = Instant::now();
        let outcome = match actix_rt::time::timeout(OP_TIMEOUT, w.call()).await {
            Ok(o) => o,
            Err(_) => {
                w.reset();
                Outcome::Error("timeout")
            }
        };
        let done = Instant::now();
        let measured = shared.stage.get() != WARMUP;
        match outcome {
            Outcome::Ok if measured => {
                t.ok += 1;
                t.latencies.push((done - began).as_nanos() as u64);
                t.last_done = Some(done);
            }
            Outcome::Ok => t.warm_ok += 1,
            other => {
                let kind = match other {
                    Outcome::Status(s) => s.to_string(),
                    Outcome::Error(e) => e.to_owned(),
                    Outcome::Ok => unreachable!(),
                };
                if measured {
                    t.failed += 1;
                    *t.failures.entry(kind.clone()).or_default() += 1;
                    t.last_done = Some(done);
                } else {
                    t.warm_failed += 1;
                }
                if kind.parse::<u16>().is_err() {
                    actix_rt::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
    t
}

/// One keep-alive connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(8 * 1024) })
    }

    /// Reads more bytes; EOF before a complete response is an error.
    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads one response; returns its status and whether the connection may be reused.
    async fn response(&mut self) -> io::Result<(u16, bool)> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::other("response head too large"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(io::Error::other)?;
        let status: u16 = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("not an HTTP/1.1 status line"))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(io::Error::other)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep = !value.eq_ignore_ascii_case("close");
            }
        }
        self.buf.drain(..head_end);
        if matches!(status, 100..=199 | 204 | 304) {
            // No body by definition.
        } else if chunked {
            self.skip_chunked().await?;
        } else if let Some(n) = length {
            while self.buf.len() < n {
                self.fill().await?;
            }
            self.buf.drain(..n);
        } else {
            // Delimited by close: read to the end, and the connection is gone.
            while self.fill().await.is_ok() {}
            self.buf.clear();
            keep = false;
        }
        Ok((status, keep))
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line_end = self.line().await?;
            let size_text = std::str::from_utf8(&self.buf[..line_end - 2]).map_err(io::Error::other)?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(io::Error::other)?;
            self.buf.drain(..line_end);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = self.line().await?;
                    self.buf.drain(..end);
                    if end == 2 {
                        return Ok(());
                    }
                }
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            self.buf.drain(..size + 2);
        }
    }

    /// Index just past the next CRLF in the buffer, reading as needed.
    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Ok(i + 2);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::other("chunk line too long"));
            }
            self.fill().await?;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Posts signed webhooks over one keep-alive connection.
pub struct HttpWorker {
    port: u16,
    conn: Option<Conn>,
    builder: RequestBuilder,
    /// Unique per worker and scenario; the request number is appended.
    id_prefix: String,
    seq: u64,
    req: Vec<u8>,
}

impl HttpWorker {
    pub fn new(port: u16, builder: RequestBuilder, id_prefix: String) -> Self {
        Self { port, conn: None, builder, id_prefix, seq: 0, req: Vec::with_capacity(2048) }
    }

    async fn exchange(&mut self) -> io::Result<(u16, bool)> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(self.port).await?);
        }
        let conn = self.conn.as_mut().expect("just opened");
        conn.stream.write_all(&self.req).await?;
        conn.response().await
    }
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> Outcome {
        self.seq += 1;
        let id = format!("{}-{}", self.id_prefix, self.seq);
        self.builder.build(&id, &mut self.req);
        match self.exchange().await {
            Ok((status, keep)) => {
                if !keep {
                    self.conn = None;
                }
                if (200..300).contains(&status) {
                    Outcome::Ok
                } else {
                    Outcome::Status(status)
                }
            }
            Err(e) => {
                self.conn = None;
                Outcome::Error(match e.kind() {
                    io::ErrorKind::ConnectionRefused => "connection refused",
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "connection reset",
                    io::ErrorKind::UnexpectedEof => "connection closed",
                    _ => "transport error",
                })
            }
        }
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

/// `GET path` on a fresh connection; the status, or an error if nothing answered.
pub async fn get_status(port: u16, path: &str) -> io::Result<u16> {
    let mut conn = Conn::open(port).await?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n");
    conn.stream.write_all(req.as_bytes()).await?;
    Ok(conn.response().await?.0)
}

/// Polls `GET /readyz` every millisecond from `since` until it answers 200; gives up when
/// `alive` says the process exited or after `within`.
pub async fn wait_ready(
    port: u16,
    since: Instant,
    within: Duration,
    mut alive: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let mut last = String::from("no answer");
    while since.elapsed() < within {
        match actix_rt::time::timeout(Duration::from_millis(500), get_status(port, "/readyz")).await {
            Ok(Ok(200)) => return Ok(since.elapsed()),
            Ok(Ok(s)) => last = format!("/readyz answered {s}"),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "/readyz did not answer within 500 ms".into(),
        }
        if !alive() {
            return Err(format!("the process exited before it was ready ({last})"));
        }
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    Err(format!("not ready within {within:?} ({last})"))
}
