//! `spawn_app()` and the request helpers every integration test shares.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use regbridge::app::App;
use regbridge::config::{Config, Env};
use serde_json::Value;
use sha2::Sha256;

pub const ROOT_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const HARBOR_AUTH: &str = "Bearer harbor-test-token";
pub const MSR_TOKEN: &str = "msr-test-token";

/// Where the fixtures live (verbatim vendor samples and our synthetic ones).
pub fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

/// A running regbridge on a free loopback port, writing to its own events file.
pub struct TestApp {
    pub base: String,
    pub events_path: PathBuf,
    pub handle: ServerHandle,
    pub client: awc::Client,
    _dir: tempfile::TempDir,
}

/// The response parts tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Options {
    pub env: Vec<(String, String)>,
    pub clock: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: vec![
                ("REGBRIDGE_ROOT_SECRETS".into(), ROOT_SECRET.into()),
                ("REGBRIDGE_HARBOR_AUTH".into(), HARBOR_AUTH.into()),
                ("REGBRIDGE_MSR_TOKENS".into(), MSR_TOKEN.into()),
            ],
            clock: None,
        }
    }
}

impl Options {
    pub fn with(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn clock(mut self, now: i64) -> Self {
        self.clock = Some(now);
        self
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");
    let mut env = vec![
        ("REGBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("REGBRIDGE_FILE_SINK".to_owned(), events_path.display().to_string()),
        // Each app its own outbox (a directory is locked by the process that has it open).
        ("REGBRIDGE_OUTBOX_DIR".to_owned(), dir.path().join("outbox").display().to_string()),
        ("REGBRIDGE_SHUTDOWN_TIMEOUT".to_owned(), "5s".to_owned()),
        // A first publish to a fresh broker connection can take seconds on a loaded machine; tests
        // that are about the budget set their own.
        ("REGBRIDGE_PUBLISH_TIMEOUT".to_owned(), "15s".to_owned()),
    ];
    env.extend(opts.env);
    let config = Config::load(&env.into_iter().collect::<Env>()).expect("test configuration is valid");
    let mut builder = App::builder(config).workers(1);
    if let Some(now) = opts.clock {
        builder = builder.clock(Arc::new(move || now));
    }
    let app = builder.build().await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_rt::spawn(async move { app.run_until_stopped().await.expect("app runs") });
    TestApp { base, events_path, handle, client: awc::Client::default(), _dir: dir }
}

impl TestApp {
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = req.send_body(body.into()).await.expect("request succeeds");
        let bytes = res.body().limit(4 << 20).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply { status: res.status().as_u16(), headers: res.headers().clone(), body }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut res = self.client.get(format!("{}{path}", self.base)).send().await.expect("request succeeds");
        let bytes = res.body().limit(4 << 20).await.unwrap();
        (res.status().as_u16(), String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Posts a Root delivery signed now (spec mode unless `hex`).
    pub async fn post_root(&self, body: &[u8], msg_id: &str, hex: bool) -> Reply {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = if hex {
            sign_hex(ROOT_SECRET, msg_id, &ts, body)
        } else {
            sign_standard(ROOT_SECRET, msg_id, &ts, body)
        };
        self.post(
            "/webhooks/root",
            &[
                ("content-type", "application/cloudevents+json"),
                ("webhook-id", msg_id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &sig),
            ],
            body.to_vec(),
        )
        .await
    }

    pub async fn post_harbor(&self, body: &[u8], content_type: &str) -> Reply {
        self.post(
            "/webhooks/harbor",
            &[("content-type", content_type), ("authorization", HARBOR_AUTH)],
            body.to_vec(),
        )
        .await
    }

    pub async fn post_msr(&self, body: &[u8]) -> Reply {
        self.post(
            &format!("/webhooks/msr?token={MSR_TOKEN}"),
            &[("content-type", "application/json")],
            body.to_vec(),
        )
        .await
    }

    /// Every event the file sink holds, oldest first.
    pub fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.events_path) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Fire and forget: the runtime ends with the test anyway.
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

fn mac(key: &[u8], id: &str, ts: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(format!("{id}.{ts}.").as_bytes());
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The Standard Webhooks specification's signature.
pub fn sign_standard(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac(&key, id, ts, body)))
}

/// Root's reference receiver's signature: raw secret string as key, hex digest.
pub fn sign_hex(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    format!("v1,{}", hex::encode(mac(secret.as_bytes(), id, ts, body)))
}

/// sha256(endpoint "\n" body) in hex: the id regbridge gives events from unsigned, id-less formats.
pub fn digest_id(endpoint: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(endpoint.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// Waits (30 s at most) until a regbridge process at `base` answers `/readyz` with 200.
pub async fn wait_ready(client: &awc::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !matches!(client.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success()) {
        assert!(std::time::Instant::now() < deadline, "regbridge at {base} not ready within 30 s");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts the regbridge binary with only `env` set (plus a free `REGBRIDGE_LISTEN` and its outbox
/// in `dir/outbox`, unless `env` names one), its log appended to `dir/regbridge.log`, and waits
/// until it is ready; returns the process and its base URL.
pub async fn start_binary(env: &[(&str, &str)], dir: &std::path::Path) -> (std::process::Child, String) {
    let port = crate::brokers::free_port();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("regbridge.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .env_clear()
        .env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_OUTBOX_DIR", dir.join("outbox"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&awc::Client::default(), &base).await;
    (child, base)
}

/// Sends SIGTERM to a child process, as an orchestrator stopping a pod does.
pub fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -TERM failed");
}

/// Waits (30 s at most) for a child process to exit.
pub async fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "process did not exit within 30 s of SIGTERM");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs `regbridge outbox <args>` against `dir` and returns its JSON output. On a blocking
/// thread: the service under test runs on this test's runtime and must go on meanwhile.
pub async fn outbox_cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_regbridge"));
    cmd.arg("outbox").args(args).arg("--dir").arg(dir).env_clear();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "regbridge outbox {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Posts `body` to `path` of `app` from the loopback address `from` (another sender than the
/// client's 127.0.0.1), over a plain HTTP/1.1 connection closed after the answer.
pub async fn post_from(
    app: &TestApp,
    from: [u8; 4],
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let mut stream = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: regbridge\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(&[head.as_bytes(), body].concat()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("answered within 30 s")
        .unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let mut headers = awc::http::header::HeaderMap::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let name = awc::http::header::HeaderName::try_from(k.trim()).unwrap();
        headers.append(name, awc::http::header::HeaderValue::from_str(v.trim()).unwrap());
    }
    // Chunked or not, the JSON answer is the one line that parses.
    let body = body.lines().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    Reply { status, headers, body }
}
