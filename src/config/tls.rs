//! TLS settings (`REGBRIDGE_TLS_*` over the file's `tls:`), checked by loading them; `client_cert` rules.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::file::EndpointFile;
use super::{ConfigError, Endpoint, Env};
use crate::tls::{self, Part, TlsSettings};
use crate::verify::{ClientCertMode, ClientCertRule};

/// `tls:` in the file; each key is overridden by its variable.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
}

/// `None`: plain HTTP. Both the certificate and the key, or neither; a client CA only with them.
/// Every file is read and parsed here, so a bad one stops start-up naming its variable.
pub fn settings(env: &Env, file: Option<&TlsFile>) -> Result<Option<TlsSettings>, ConfigError> {
    let f = file.cloned().unwrap_or_default();
    // Where a path came from (the variable or the file's key), and the path.
    let pick = |var: &'static str, key: &'static str, from_file: &Option<String>| {
        env.get(var).map(|v| (var, PathBuf::from(v.trim()))).or_else(|| {
            from_file.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (key, v.into()))
        })
    };
    let cert = pick("REGBRIDGE_TLS_CERT", "tls.cert", &f.cert);
    let key = pick("REGBRIDGE_TLS_KEY", "tls.key", &f.key);
    let client_ca = pick("REGBRIDGE_TLS_CLIENT_CA", "tls.client_ca", &f.client_ca);
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            return match client_ca {
                Some((name, _)) => Err(ConfigError::invalid(
                    name,
                    "client certificates need TLS: set REGBRIDGE_TLS_CERT and REGBRIDGE_TLS_KEY too",
                )),
                None => Ok(None),
            };
        }
        (Some((name, _)), None) => {
            return Err(ConfigError::invalid(name, "is set but REGBRIDGE_TLS_KEY is not: TLS needs both"))
        }
        (None, Some((name, _))) => {
            return Err(ConfigError::invalid(name, "is set but REGBRIDGE_TLS_CERT is not: TLS needs both"))
        }
    };
    let settings = TlsSettings {
        cert: cert.1,
        key: key.1,
        client_ca: client_ca.as_ref().map(|(_, path)| path.clone()),
        reload_interval: tls::DEFAULT_RELOAD_INTERVAL,
    };
    tls::check(&settings).map_err(|e| {
        let name = match e.part {
            Part::Certificate => cert.0,
            Part::Key => key.0,
            Part::ClientCa => client_ca.as_ref().map_or("REGBRIDGE_TLS_CLIENT_CA", |(name, _)| name),
        };
        ConfigError::invalid(name, e)
    })?;
    Ok(Some(settings))
}

/// An endpoint's `client_cert` and `client_subjects`. `optional` needs another credential for the
/// senders without a certificate (else it would mean `required`, or an open endpoint by mistake).
pub fn endpoint_rule(
    f: &EndpointFile,
    name: &str,
    has_credentials: bool,
    open: bool,
) -> Result<Option<ClientCertRule>, ConfigError> {
    let key = |field: &str| format!("endpoints.{name}.{field}");
    let subjects: Vec<String> =
        f.client_subjects.iter().flatten().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    let Some(mode) = f.client_cert else {
        if f.client_subjects.is_some() {
            return Err(ConfigError::invalid(
                key("client_subjects"),
                "needs `client_cert: required` or `optional`",
            ));
        }
        return Ok(None);
    };
    if mode == ClientCertMode::Optional && !has_credentials && !open {
        return Err(ConfigError::invalid(
            key("client_cert"),
            "`optional` lets a sender without a certificate use the endpoint's other credential, and it has \
             none: use `required`, or configure credentials",
        ));
    }
    Ok(Some(ClientCertRule { mode, subjects }))
}

/// An endpoint with a `client_cert` rule needs a client CA to verify the certificates against.
pub fn require_client_ca(endpoints: &[Arc<Endpoint>], tls: Option<&TlsSettings>) -> Result<(), ConfigError> {
    if tls.is_some_and(|t| t.client_ca.is_some()) {
        return Ok(());
    }
    match endpoints.iter().find(|e| e.client_cert.is_some()) {
        Some(e) => Err(ConfigError::invalid(
            format!("endpoints.{}.client_cert", e.name),
            "needs a client CA to verify certificates against: set REGBRIDGE_TLS_CLIENT_CA (and TLS)",
        )),
        None => Ok(()),
    }
}
