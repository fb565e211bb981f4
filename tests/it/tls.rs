//! TLS on the listener: certificates generated here (rcgen), a real rustls client, client
//! certificates held to each endpoint's rule, and a certificate replaced under a running service.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use regbridge::app::App;
use regbridge::config::{Config, Env};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::fixture;

/// A certificate authority that signs the test's certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let pem = pem("CERTIFICATE", params.self_signed(&key).unwrap().der());
        Self { issuer: Issuer::new(params, key), pem }
    }

    /// A server certificate for `localhost`, told apart from others by its common name.
    fn server(&self, cn: &str) -> Leaf {
        self.leaf(cn, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A client certificate with the common name `cn` and DNS names `sans`.
    fn client(&self, cn: &str, sans: &[&str], expired: bool) -> Leaf {
        self.leaf(cn, sans, ExtendedKeyUsagePurpose::ClientAuth, expired)
    }

    fn leaf(&self, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key_pem = pem("PRIVATE KEY", &key.serialize_der());
        Leaf { cert_pem: pem("CERTIFICATE", cert.der()), key_pem, der: cert.der().clone() }
    }
}

/// PEM of DER bytes (rcgen's own would bring a second base64 crate into the tree).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Leaf {
    /// Writes the pair where the service reads it, key first (as a rotation written file by file
    /// would: for a moment the files do not match).
    fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(key, &self.key_pem).unwrap();
        std::fs::write(cert, &self.cert_pem).unwrap();
    }
}

/// A service on TLS, its files in `dir`; stopped when dropped.
struct TlsApp {
    port: u16,
    handle: ServerHandle,
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

/// The variables every TLS app of this file gets: a free port, its own sink and outbox in `dir`,
/// the server pair and the client CA written there.
fn env(dir: &Path, server: &Leaf, client_ca: Option<&Ca>) -> Vec<(String, String)> {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    server.write(&cert, &key);
    let mut env = vec![
        ("REGBRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("REGBRIDGE_FILE_SINK".to_owned(), dir.join("events.jsonl").display().to_string()),
        ("REGBRIDGE_OUTBOX_DIR".to_owned(), dir.join("outbox").display().to_string()),
        ("REGBRIDGE_TLS_CERT".to_owned(), cert.display().to_string()),
        ("REGBRIDGE_TLS_KEY".to_owned(), key.display().to_string()),
    ];
    if let Some(ca) = client_ca {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, &ca.pem).unwrap();
        env.push(("REGBRIDGE_TLS_CLIENT_CA".to_owned(), path.display().to_string()));
    }
    env
}

fn load(env: Vec<(String, String)>) -> Result<Config, String> {
    Config::load(&env.into_iter().collect::<Env>()).map_err(|e| e.to_string())
}

async fn spawn(env: Vec<(String, String)>, reload: Duration) -> TlsApp {
    let mut config = load(env).expect("test configuration is valid");
    config.tls.as_mut().expect("TLS is configured").reload_interval = reload;
    let app = App::builder(config).workers(1).build().await.expect("app builds");
    let (port, handle) = (app.port(), app.handle());
    actix_rt::spawn(async move { app.run_until_stopped().await.expect("app runs") });
    TlsApp { port, handle }
}

/// A TLS connection to `port` trusting `server_ca`, presenting `client` if given.
async fn connect(port: u16, server_ca: &Ca, client: Option<&Leaf>) -> std::io::Result<TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(server_ca.pem.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.der.clone()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// One HTTP/1.1 request on a kept-alive connection; its status and JSON body. An error when the
/// connection fails or closes without an answer (a refused client certificate).
async fn exchange(
    stream: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Value)> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(&[head.as_bytes(), body].concat()).await?;
    let mut buf = Vec::new();
    let closed = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without an answer");
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await?? {
            0 => return Err(closed()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .map_or(0, |(_, v)| v.trim().parse().unwrap());
    while buf.len() < end + length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await? {
            0 => return Err(closed()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Ok((status, serde_json::from_slice(&buf[end..end + length]).unwrap_or(Value::Null)))
}

/// Connects and sends one request: `Err` with the reason when the handshake or the answer fails.
async fn request(
    port: u16,
    server_ca: &Ca,
    client: Option<&Leaf>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Value), String> {
    let mut stream = connect(port, server_ca, client).await.map_err(|e| e.to_string())?;
    let method = if body.is_empty() { "GET" } else { "POST" };
    exchange(&mut stream, method, path, headers, body).await.map_err(|e| e.to_string())
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

const JSON: (&str, &str) = ("content-type", "application/json");
const TOKEN: &str = "quay-tls-token";

#[actix_rt::test]
async fn https_is_served_with_the_configured_certificate_and_plain_http_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let server = ca.server("regbridge one");
    let mut env = env(dir.path(), &server, None);
    env.push(("REGBRIDGE_HARBOR_AUTH".to_owned(), "Bearer harbor-tls".to_owned()));
    env.push(("REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS".to_owned(), "1".to_owned()));
    let app = spawn(env, Duration::from_secs(5)).await;

    let mut stream = connect(app.port, &ca, None).await.unwrap();
    assert_eq!(served_certificate(&stream), server.der);
    let (status, body) = exchange(&mut stream, "GET", "/healthz", &[], b"").await.unwrap();
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let harbor = fixture("harbor/push_artifact.default.json");
    let auth = ("authorization", "Bearer harbor-tls");
    let (status, _) =
        exchange(&mut stream, "POST", "/webhooks/harbor", &[JSON, auth], &harbor).await.unwrap();
    assert_eq!(status, 200);
    // A TLS connection takes its place in the per-address table like a plain one: a second one
    // from the same address is over the cap of 1.
    let mut second = connect(app.port, &ca, None).await.unwrap();
    let (status, problem) =
        exchange(&mut second, "POST", "/webhooks/harbor", &[JSON, auth], &harbor).await.unwrap();
    assert_eq!((status, problem["reason"].as_str()), (429, Some("too_many_connections")));

    // A plain HTTP request on the TLS port gets no HTTP answer.
    let plain = awc::Client::default().get(format!("http://127.0.0.1:{}/healthz", app.port)).send().await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
}

/// The endpoints of the client-certificate tests: `quay` takes a certificate naming
/// `quay.example.com` and nothing else; `quay-either` takes such a certificate or its token; the
/// built-in `harbor` has no rule (its header alone counts, certificate or not).
fn mtls_app_env(dir: &Path, server: &Leaf, client_ca: &Ca) -> Vec<(String, String)> {
    let file = dir.join("regbridge.yaml");
    std::fs::write(
        &file,
        format!(
            "endpoints:\n  quay:\n    client_cert: required\n    client_subjects: [quay.example.com]\n  \
             quay-either:\n    dialect: quay\n    tokens: [{TOKEN}]\n    client_cert: optional\n    \
             client_subjects: [quay.example.com]\n"
        ),
    )
    .unwrap();
    let mut env = env(dir, server, Some(client_ca));
    env.push(("REGBRIDGE_CONFIG".to_owned(), file.display().to_string()));
    env.push(("REGBRIDGE_HARBOR_AUTH".to_owned(), "Bearer harbor-tls".to_owned()));
    env
}

/// Posts to one service, trusting its CA, with or without a client certificate.
struct Poster<'a> {
    port: u16,
    ca: &'a Ca,
}

impl Poster<'_> {
    async fn post(
        &self,
        client: Option<&Leaf>,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        request(self.port, self.ca, client, path, headers, body).await.unwrap()
    }

    /// Why a connection presenting `client` is refused: the handshake's error, or the alert the
    /// first read gets (TLS 1.3 reports a refused client certificate after the client's side of
    /// the handshake is done). Nothing is written first, so the server's close is orderly and
    /// the alert arrives.
    async fn refusal(&self, client: &Leaf) -> String {
        let mut stream = match connect(self.port, self.ca, Some(client)).await {
            Ok(stream) => stream,
            Err(e) => return e.to_string(),
        };
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await {
            Ok(Err(e)) => e.to_string(),
            other => panic!("the connection was not refused: {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn client_certificates_are_verified_and_held_to_each_endpoints_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = server_ca.server("regbridge");
    let app = spawn(mtls_app_env(dir.path(), &server, &client_ca), Duration::from_secs(5)).await;
    let to = Poster { port: app.port, ca: &server_ca };

    let good = client_ca.client("Quay", &["quay.example.com"], false);
    let stranger = client_ca.client("mallory", &["mallory.example.com"], false);
    let expired = client_ca.client("Quay", &["quay.example.com"], true);
    let foreign = Ca::new("another CA").client("Quay", &["quay.example.com"], false);
    let quay = fixture("other/synthetic/quay.repo-push.json");

    // A good certificate is the credential of `quay`.
    let (status, answer) = to.post(Some(&good), "/webhooks/quay", &[JSON], &quay).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");

    // Without one, or with one naming another subject: 401 with the reason.
    for (client, reason) in
        [(None, "missing_client_certificate"), (Some(&stranger), "client_certificate_not_allowed")]
    {
        let (status, problem) = to.post(client, "/webhooks/quay", &[JSON], &quay).await;
        assert_eq!(status, 401, "{problem}");
        assert_eq!(problem["type"], "urn:regbridge:problem:unauthorized");
        assert_eq!(problem["reason"], reason);
    }

    // An expired certificate, or one of another CA, does not get through the handshake: no
    // request is answered on such a connection, not even a probe.
    for (what, client, alert) in
        [("expired", &expired, "CertificateExpired"), ("foreign", &foreign, "UnknownCA")]
    {
        let refusal = to.refusal(client).await;
        assert!(refusal.contains(alert), "{what} certificate: {refusal}");
        let refused = request(app.port, &server_ca, Some(client), "/webhooks/quay", &[JSON], &quay).await;
        assert!(refused.is_err(), "{what} certificate: {refused:?}");
        assert!(request(app.port, &server_ca, Some(client), "/healthz", &[], b"").await.is_err());
    }

    // `optional`: the certificate or the token, either one; a certificate it does not list is
    // refused, token or not.
    let with_token = format!("/webhooks/quay-either?token={TOKEN}");
    assert_eq!(to.post(None, &with_token, &[JSON], &quay).await.0, 200);
    assert_eq!(to.post(Some(&good), "/webhooks/quay-either", &[JSON], &quay).await.0, 200);
    let (status, problem) = to.post(None, "/webhooks/quay-either", &[JSON], &quay).await;
    assert_eq!((status, problem["reason"].as_str()), (401, Some("missing_credential")));
    let (status, problem) = to.post(Some(&stranger), &with_token, &[JSON], &quay).await;
    assert_eq!((status, problem["reason"].as_str()), (401, Some("client_certificate_not_allowed")));

    // No rule: a certificate is neither needed nor enough.
    let harbor = fixture("harbor/push_artifact.default.json");
    let auth = ("authorization", "Bearer harbor-tls");
    assert_eq!(to.post(None, "/webhooks/harbor", &[JSON, auth], &harbor).await.0, 200);
    assert_eq!(to.post(Some(&good), "/webhooks/harbor", &[JSON], &harbor).await.0, 401);
    // Probes need no certificate.
    assert_eq!(to.post(None, "/readyz", &[], b"").await.0, 200);
}

#[actix_rt::test]
async fn a_replaced_certificate_is_served_to_new_connections_while_open_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let (first, second) = (ca.server("first"), ca.server("second"));
    let app = spawn(env(dir.path(), &first, None), Duration::from_millis(100)).await;
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));

    let mut kept = connect(app.port, &ca, None).await.unwrap();
    assert_eq!(served_certificate(&kept), first.der);
    assert_eq!(exchange(&mut kept, "GET", "/healthz", &[], b"").await.unwrap().0, 200);

    second.write(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = connect(app.port, &ca, None).await.unwrap();
        if served_certificate(&fresh) == second.der {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection made before the reload is still open and answered.
    assert_eq!(exchange(&mut kept, "GET", "/healthz", &[], b"").await.unwrap().0, 200);

    // A pair that cannot be used (a certificate that is no PEM) is not taken: the last good one
    // stays, also after several polls.
    std::fs::write(&cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = connect(app.port, &ca, None).await.unwrap();
    assert_eq!(served_certificate(&fresh), second.der);
    first.write(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&connect(app.port, &ca, None).await.unwrap()) != first.der {
        assert!(Instant::now() < deadline, "the repaired pair was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn bad_tls_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let server = ca.server("regbridge");
    let base = env(dir.path(), &server, Some(&ca));
    let without = |names: &[&str]| -> Vec<(String, String)> {
        base.iter().filter(|(k, _)| !names.contains(&k.as_str())).cloned().collect()
    };
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut env = without(&[name]);
        env.push((name.to_owned(), value.to_owned()));
        env
    };
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, ca.server("other").key_pem).unwrap();
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (without(&["REGBRIDGE_TLS_KEY"]), "REGBRIDGE_TLS_CERT: is set but REGBRIDGE_TLS_KEY is not"),
        (without(&["REGBRIDGE_TLS_CERT"]), "REGBRIDGE_TLS_KEY: is set but REGBRIDGE_TLS_CERT is not"),
        (
            without(&["REGBRIDGE_TLS_CERT", "REGBRIDGE_TLS_KEY"]),
            "REGBRIDGE_TLS_CLIENT_CA: client certificates need TLS",
        ),
        (
            with("REGBRIDGE_TLS_CERT", "/nonexistent/tls.crt"),
            "REGBRIDGE_TLS_CERT: /nonexistent/tls.crt: cannot read",
        ),
        (with("REGBRIDGE_TLS_CERT", &garbage.display().to_string()), "REGBRIDGE_TLS_CERT:"),
        (with("REGBRIDGE_TLS_KEY", &garbage.display().to_string()), "REGBRIDGE_TLS_KEY:"),
        (with("REGBRIDGE_TLS_KEY", &other_key.display().to_string()), "REGBRIDGE_TLS_KEY:"),
        (with("REGBRIDGE_TLS_CLIENT_CA", &garbage.display().to_string()), "REGBRIDGE_TLS_CLIENT_CA:"),
    ];
    for (env, expected) in cases {
        let error = load(env).unwrap_err();
        assert!(error.starts_with(expected), "{error} (expected {expected})");
    }

    // A client-certificate rule needs a client CA; `optional` needs another credential.
    let file = dir.path().join("regbridge.yaml");
    let with_file = |yaml: &str, env: Vec<(String, String)>| {
        std::fs::write(&file, yaml).unwrap();
        let mut env = env;
        env.push(("REGBRIDGE_CONFIG".to_owned(), file.display().to_string()));
        load(env)
    };
    let required = "endpoints:\n  quay:\n    client_cert: required\n";
    let error = with_file(required, without(&["REGBRIDGE_TLS_CLIENT_CA"])).unwrap_err();
    assert!(error.starts_with("endpoints.quay.client_cert: needs a client CA"), "{error}");
    let error = with_file("endpoints:\n  quay:\n    client_cert: optional\n", base.clone()).unwrap_err();
    assert!(error.starts_with("endpoints.quay.client_cert: `optional`"), "{error}");
    let error = with_file("endpoints:\n  quay:\n    client_subjects: [a]\n", base.clone()).unwrap_err();
    assert!(error.starts_with("endpoints.quay.client_subjects:"), "{error}");
    // The certificate alone enables an endpoint.
    let config = with_file(required, base.clone()).unwrap();
    assert!(config.endpoints.iter().any(|e| e.name == "quay" && e.verifier.is_some()));
}

#[test]
fn check_config_shows_the_tls_files_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let server = ca.server("regbridge");
    let mut env = env(dir.path(), &server, Some(&ca));
    let file = dir.path().join("regbridge.yaml");
    std::fs::write(&file, "endpoints:\n  quay:\n    client_cert: required\n    client_subjects: [quay]\n")
        .unwrap();
    env.push(("REGBRIDGE_CONFIG".to_owned(), file.display().to_string()));
    let described = load(env).unwrap().describe();
    let tls = &described["tls"];
    let path = |name: &str| Value::from(dir.path().join(name).display().to_string());
    assert_eq!(tls["cert"], path("tls.crt"));
    assert_eq!(tls["key"], path("tls.key"));
    assert_eq!(tls["client_ca"], path("client-ca.crt"));
    assert_eq!(tls["certificate"]["names"], serde_json::json!(["regbridge", "localhost"]));
    assert!(tls["certificate"]["not_after"].as_str().is_some_and(|t| t.starts_with("4096-")), "{tls}");
    let quay = described["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "quay").unwrap();
    assert_eq!(quay["client_cert"], serde_json::json!({ "mode": "required", "subjects": ["quay"] }));
    let text = described.to_string();
    let key_line = server.key_pem.lines().nth(1).unwrap();
    assert!(!text.contains("PRIVATE KEY") && !text.contains(key_line), "{text}");
    // The key is not in the configuration's Debug either.
    assert!(!format!("{:?}", load(vec![]).unwrap()).contains("PRIVATE KEY"));
}
