//! A small Redis client for the dedupe store: RESP2 over one pipelined TCP connection, with
//! bounded waits and a reconnect backoff.
//!
//! The `redis` crate would do, but brings a parser-combinator library, URL parsing and a
//! connection manager for the three commands this needs (`EXISTS`, `SET … NX PX`, `PING`, plus
//! `AUTH`/`SELECT` on connect). What it takes is here: one task owns the socket, every caller's
//! commands are written as they come and their replies matched in order (Redis answers a
//! connection's commands in the order it sent them), so concurrent webhooks share one connection
//! without waiting for each other's round trips.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Secret;

mod resp;

pub use resp::{parse, Pipeline, Reply};

/// The default port of `redis://host` without one.
const DEFAULT_PORT: u16 = 6379;
/// Connecting, authenticating and the first `PING` together; a host that blackholes packets
/// costs at most this per reconnect attempt (callers stop waiting long before).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection whose oldest unanswered command is this old is taken for dead (a frozen server
/// still accepts connections and reads, but never answers).
const STALL: Duration = Duration::from_secs(1);
/// After a failed connect, commands fail at once for this long (doubling to `BACKOFF_MAX`), so
/// an outage costs webhooks nothing but the suppression.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Jobs waiting for the connection task; beyond it callers fail at once.
const QUEUE: usize = 4096;

/// Where the store is: `redis://[[user]:password@]host[:port][/db]`. The password never reaches
/// `Debug` or `check-config`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
    db: u32,
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some(("redis", rest)) => rest,
            Some(("rediss", _)) => {
                return Err("TLS (`rediss://`) is not supported; reach Redis over a TLS proxy (a stunnel \
                            sidecar) with `redis://`"
                    .into())
            }
            Some((scheme, _)) => return Err(format!("unsupported scheme `{scheme}://` (use redis://)")),
            None => return Err(format!("`{}` is not a redis:// URL", mask(url))),
        };
        if rest.contains(['?', '#']) {
            return Err("query parameters are not supported (the database goes in the path: /1)".into());
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let user = percent_decode(user)?;
                let pass = pass.map(percent_decode).transpose()?;
                ((!user.is_empty()).then_some(user), pass.filter(|p| !p.is_empty()).map(Secret::new))
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unterminated `[` in the host")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("the URL names no host".into());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
            None => DEFAULT_PORT,
        };
        let db = match path {
            "" => 0,
            db => db.parse().map_err(|_| format!("`/{db}` is not a database number"))?,
        };
        Ok(Self { host: host.to_owned(), port, username, password, db })
    }

    /// The URL with its password masked, for logs and `check-config`.
    pub fn describe(&self) -> String {
        let auth = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(u), None) => format!("{u}@"),
            (u, Some(_)) => format!("{}:[redacted]@", u.as_deref().unwrap_or("")),
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let db = if self.db == 0 { String::new() } else { format!("/{}", self.db) };
        format!("redis://{auth}{host}:{}{db}", self.port)
    }

    /// What a connection sends before anything else: `AUTH`, `SELECT`, and a `PING` that proves
    /// the server answers.
    fn handshake(&self) -> Pipeline {
        let mut p = Pipeline::new();
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) => p.cmd(&[b"AUTH", user.as_bytes(), pass.expose().as_bytes()]),
            (None, Some(pass)) => p.cmd(&[b"AUTH", pass.expose().as_bytes()]),
            _ => &mut p,
        };
        if self.db != 0 {
            p.cmd(&[b"SELECT", self.db.to_string().as_bytes()]);
        }
        p.cmd(&[b"PING"]);
        p
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A URL that failed to parse, for its error message: everything after the scheme and before
/// an `@` may be a password.
fn mask(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://[redacted]@{host}"),
        _ => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next(), bytes.next()];
            let digit = |d: Option<u8>| (d? as char).to_digit(16);
            match (digit(hex[0]), digit(hex[1])) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err("a `%` in the user or password is not followed by two hex digits".into()),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8 once decoded".into())
}

/// Why a command got no usable answer. Every one means "unknown": the caller proceeds as if
/// the store were not there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    #[error("connecting to {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("the connection to redis failed: {0}")]
    Io(String),
    #[error("redis answered an error: {0}")]
    Server(String),
    #[error("not a redis reply: {0}")]
    Protocol(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis was unreachable at the last attempt; the next one in {0:?}")]
    Down(Duration),
    #[error("too many redis commands waiting")]
    Busy,
    #[error("the redis client stopped")]
    Closed,
}

/// Commands on their way to the connection task, and where their replies go.
struct Job {
    pipeline: Pipeline,
    reply: oneshot::Sender<Result<Vec<Reply>, RedisError>>,
}

/// A job written to the socket, waiting for its replies.
struct Pending {
    expected: usize,
    got: Vec<Reply>,
    sent: Instant,
    reply: oneshot::Sender<Result<Vec<Reply>, RedisError>>,
}

/// A handle on the connection task; cheap to clone. The task ends when the last handle goes.
#[derive(Clone)]
pub struct Client {
    jobs: mpsc::Sender<Job>,
}

impl Client {
    /// Starts the connection task on the current Tokio runtime. Nothing connects until the
    /// first command: start-up never waits on Redis.
    pub fn spawn(url: RedisUrl) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(drive(url, rx));
        Self { jobs }
    }

    /// Sends `pipeline` and waits at most `timeout` for all its replies (one per command, error
    /// replies included: they concern that command alone).
    pub async fn run(&self, pipeline: Pipeline, timeout: Duration) -> Result<Vec<Reply>, RedisError> {
        if pipeline.is_empty() {
            return Ok(Vec::new()); // it would wait for no reply for ever
        }
        let (reply, rx) = oneshot::channel();
        self.jobs.try_send(Job { pipeline, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RedisError::Busy,
            mpsc::error::TrySendError::Closed(_) => RedisError::Closed,
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RedisError::Closed),
            Err(_) => Err(RedisError::Timeout(timeout)),
        }
    }
}

/// The connection task: connects on demand, serves jobs over the connection until it fails,
/// and after a failed connect fails jobs at once until the backoff has passed.
async fn drive(url: RedisUrl, mut jobs: mpsc::Receiver<Job>) {
    let mut backoff = BACKOFF_MIN;
    let mut retry_at: Option<Instant> = None;
    while let Some(job) = jobs.recv().await {
        if job.reply.is_closed() {
            continue; // its caller gave up while it waited
        }
        if let Some(at) = retry_at {
            let now = Instant::now();
            if now < at {
                let _ = job.reply.send(Err(RedisError::Down(at - now)));
                continue;
            }
        }
        match connect(&url).await {
            Ok(stream) => {
                backoff = BACKOFF_MIN;
                retry_at = None;
                let error = serve(stream, job, &mut jobs).await;
                tracing::debug!(%error, "dedupe: redis connection closed");
                // A connection that worked and broke is retried at once, on the next job.
            }
            Err(error) => {
                tracing::debug!(%error, ?backoff, "dedupe: redis connect failed");
                let _ = job.reply.send(Err(error));
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Connects, authenticates, selects the database and sees a `PONG`, within `CONNECT_TIMEOUT`.
async fn connect(url: &RedisUrl) -> Result<TcpStream, RedisError> {
    let addr = format!("{}:{}", url.host, url.port);
    let failed = |error: String| RedisError::Connect { addr: addr.clone(), error };
    let attempt = async {
        let mut stream =
            TcpStream::connect((url.host.as_str(), url.port)).await.map_err(|e| failed(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let hello = url.handshake();
        stream.write_all(&hello.buf).await.map_err(|e| failed(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(256);
        let mut replies = Vec::with_capacity(hello.count);
        while replies.len() < hello.count {
            if stream.read_buf(&mut buf).await.map_err(|e| failed(e.to_string()))? == 0 {
                return Err(failed("closed by the server during the handshake".into()));
            }
            while let Some(reply) = parse(&mut buf)? {
                replies.push(reply);
            }
        }
        match replies.into_iter().find_map(|r| match r {
            Reply::Error(e) => Some(e),
            _ => None,
        }) {
            Some(e) => Err(failed(e)),
            None => Ok(stream),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| failed(format!("no answer within {CONNECT_TIMEOUT:?}")))?
}

/// Serves jobs over `stream`, starting with `first`, until the connection fails or every
/// handle is gone; fails what is still pending with the reason, which it returns.
async fn serve(stream: TcpStream, first: Job, jobs: &mut mpsc::Receiver<Job>) -> RedisError {
    let (mut rd, mut wr) = stream.into_split();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut input = BytesMut::with_capacity(4096);
    let mut output = BytesMut::new();
    let mut next = Some(first);
    let error = loop {
        // Everything queued goes out in one write: the pipelining.
        while let Some(job) = next.take().or_else(|| jobs.try_recv().ok()) {
            if job.reply.is_closed() {
                continue;
            }
            output.extend_from_slice(&job.pipeline.buf);
            pending.push_back(Pending {
                expected: job.pipeline.count,
                got: Vec::with_capacity(job.pipeline.count),
                sent: Instant::now(),
                reply: job.reply,
            });
        }
        if !output.is_empty() {
            if let Err(e) = wr.write_all(&output).await {
                break RedisError::Io(e.to_string());
            }
            output.clear();
        }
        let stalled = pending.front().map(|p| p.sent + STALL);
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => next = Some(job),
                None => break RedisError::Closed,
            },
            read = rd.read_buf(&mut input) => match read {
                Ok(0) => break RedisError::Io("closed by the server".into()),
                Err(e) => break RedisError::Io(e.to_string()),
                Ok(_) => {
                    if let Err(e) = deliver_replies(&mut input, &mut pending) {
                        break e;
                    }
                }
            },
            () = sleep_until(stalled) => break RedisError::Timeout(STALL),
        }
    };
    for p in pending {
        let _ = p.reply.send(Err(error.clone()));
    }
    error
}

/// Hands every complete reply in `input` to the oldest pending job.
fn deliver_replies(input: &mut BytesMut, pending: &mut VecDeque<Pending>) -> Result<(), RedisError> {
    while let Some(reply) = parse(input)? {
        let Some(front) = pending.front_mut() else {
            return Err(RedisError::Protocol("a reply to no command".into()));
        };
        front.got.push(reply);
        if front.got.len() == front.expected {
            let done = pending.pop_front().expect("the front exists");
            let _ = done.reply.send(Ok(done.got));
        }
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
