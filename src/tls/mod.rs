//! TLS on the listener (rustls, ring): its certificate, reloaded when the files change; client certificates.
//!
//! Plain HTTP stays the default; `REGBRIDGE_TLS_CERT` and `REGBRIDGE_TLS_KEY` turn TLS on. The
//! client CA (`REGBRIDGE_TLS_CLIENT_CA`) is checked at the TLS layer only when a client presents
//! a certificate: a certificate that does not verify (expired, another CA) fails the handshake,
//! one that does is handed to the connection's data, and each endpoint's `client_cert` rule
//! decides per request whether it needs one and whose it takes (`verify::ClientCertRule`).

mod reload;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use serde_json::{json, Value};

pub use reload::{Reloader, Served};

use crate::verify::ClientCertificate;

/// The stream `on_connect` is handed on a TLS listener.
type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>;

/// How often the certificate files are looked at: cert-manager renews days before the end, and
/// the kubelet takes up to a minute to update a mounted Secret, so seconds are plenty.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Where the listener's certificate, key and client CA are. Paths only: the key is read when the
/// listener is built and when the files change, and then lives only in rustls's signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: one private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
    pub reload_interval: Duration,
}

/// Which file a problem is in, so that configuration names the variable that points at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Certificate,
    Key,
    ClientCa,
}

/// A certificate, key or CA that cannot be used. The message names the file and the problem,
/// never the key's bytes.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct TlsError {
    pub part: Part,
    pub path: PathBuf,
    pub problem: String,
}

impl TlsError {
    fn new(part: Part, path: &Path, problem: impl std::fmt::Display) -> Self {
        Self { part, path: path.to_owned(), problem: problem.to_string() }
    }
}

/// ring, as lapin and async-nats use: one crypto provider in the binary, and no aws-lc-rs.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a file whole (PEM files are small).
fn read(part: Part, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::new(part, path, format!("cannot read: {e}")))
}

/// Every certificate in a PEM file, in order; at least one.
fn certificates(part: Part, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(part, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(part, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The certificate chain and key as one signing pair, refused unless the key belongs to the
/// certificate (a half-rotated pair must never be served).
fn pair(
    files: (&Path, &Path),
    pem: (&[u8], &[u8]),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = files;
    let chain = certificates(Part::Certificate, cert_path, pem.0)?;
    let key = PrivateKeyDer::from_pem_slice(pem.1).map_err(|e| {
        TlsError::new(Part::Key, key_path, format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError::new(Part::Key, key_path, format!("cannot be used with {}: {e}", cert_path.display()))
    })
}

/// A verifier of client certificates issued by the CAs in `path`.
fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let pem = read(Part::ClientCa, path)?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(Part::ClientCa, path, &pem)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::new(Part::ClientCa, path, format!("not a usable CA certificate: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        // Verified when presented, but not demanded at the TLS layer: the health probes and the
        // endpoints without a `client_cert` rule are served to anyone, and an endpoint that needs
        // one answers 401 with a reason instead of a bare handshake alert.
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::new(Part::ClientCa, path, e))
}

/// Loads everything as the listener would, without serving: what `check-config` and start-up
/// validation run, so a bad file stops start-up with the variable named.
pub fn check(settings: &TlsSettings) -> Result<(), TlsError> {
    let provider = provider();
    reload::load(settings, &provider)?;
    if let Some(ca) = &settings.client_ca {
        client_verifier(ca, &provider)?;
    }
    Ok(())
}

/// The listener's rustls configuration, and the reloader that keeps its certificate current
/// (the caller owns it; dropping it stops the polling).
pub fn server_config(settings: &TlsSettings) -> Result<(ServerConfig, Reloader), TlsError> {
    let provider = provider();
    let (served, seen) = reload::load(settings, &provider)?;
    let served = Arc::new(Served::new(served));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let builder = match &settings.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, &provider)?),
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_cert_resolver(served.clone());
    Ok((config, Reloader::spawn(served, seen, settings.clone(), provider)))
}

/// The TCP stream under a connection `on_connect` is handed, plain or TLS.
pub fn tcp_stream(io: &dyn Any) -> Option<&TcpStream> {
    io.downcast_ref::<TcpStream>().or_else(|| io.downcast_ref::<TlsStream>().map(|tls| tls.get_ref().0))
}

/// The client certificate a TLS connection presented. rustls verified it against the client CA
/// in the handshake (one that does not verify fails the handshake), so a certificate here is a
/// verified one.
pub fn client_certificate(io: &dyn Any) -> Option<ClientCertificate> {
    let tls = io.downcast_ref::<TlsStream>()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?;
    ClientCertificate::from_der(leaf)
}

/// What `check-config` shows: the paths, and the served certificate's names and end as the file
/// holds them now. Never key material.
pub fn describe(settings: &TlsSettings) -> Value {
    let served = read(Part::Certificate, &settings.cert)
        .and_then(|pem| certificates(Part::Certificate, &settings.cert, &pem))
        .map_or_else(|e| json!({ "error": e.to_string() }), |chain| certificate_info(&chain[0]));
    json!({
        "cert": settings.cert,
        "key": settings.key,
        "client_ca": settings.client_ca,
        "reload_interval_ms": settings.reload_interval.as_millis() as u64,
        "certificate": served,
    })
}

/// A certificate's DNS names and common name, and its end (RFC 3339), for logs and check-config.
fn certificate_info(der: &CertificateDer<'_>) -> Value {
    let names = ClientCertificate::from_der(der).map(|c| c.names().to_vec()).unwrap_or_default();
    let not_after = x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, c)| chrono::DateTime::from_timestamp(c.validity().not_after.timestamp(), 0))
        .map(|t| t.to_rfc3339());
    json!({ "names": names, "not_after": not_after })
}
