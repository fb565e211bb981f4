//! Verify: the only way from an [`UnverifiedRequest`] to a [`VerifiedRequest`], before any parsing.
//!
//! One file per scheme; [`Verifier`] dispatches. Every comparison of a credential is constant-time,
//! and verifiers keep only derived keys or digests, never the configured secret text.

mod client_cert;
mod hmac_body;
mod keys;
mod standard_webhooks;
mod token;

use actix_web::http::header::{AsHeaderName, HeaderMap};
use bytes::Bytes;
use serde::Deserialize;

use crate::dialects::MediaType;

pub use client_cert::{ClientCertMode, ClientCertRule, ClientCertificate};
pub use hmac_body::{Algorithm, BodyHmac, HmacForm, HmacSpec};
pub use keys::{KeyInfo, Keys, Matched};
pub use standard_webhooks::{SignatureMode, StandardWebhooks};
pub use token::{AuthorizationHeader, QueryToken};

/// How an endpoint authenticates its sender. Each dialect has a default (Root: Standard
/// Webhooks; Harbor: `Authorization`; MSR: `?token=`; GitHub: an HMAC of the body); `none` must
/// be chosen explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    StandardWebhooks,
    /// A header equal to a configured value (`Authorization` unless the dialect or endpoint
    /// names another).
    Authorization,
    Token,
    /// An HMAC of the body in a header, as the dialect's [`HmacSpec`] says.
    Hmac,
    None,
}

/// A request as it arrived: nothing in it is trusted yet.
pub struct UnverifiedRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string (MSR puts its token there).
    pub query: &'a str,
    pub media: MediaType,
    pub body: Bytes,
    /// Unix seconds, from the application clock (injectable, so fixed vectors can be replayed).
    pub now: i64,
}

/// A request whose sender has been authenticated. Only [`Verifier::verify`] constructs one, so a
/// normalizer cannot be handed bytes nobody checked. Its headers stay with it: some dialects read
/// the event's type or id there (GitHub, CloudEvents' binary mode), and so does the query (Quay's
/// `event`, chosen by whoever registered the URL).
#[derive(Debug)]
pub struct VerifiedRequest<'a> {
    media: MediaType,
    body: Bytes,
    headers: &'a HeaderMap,
    query: &'a str,
    /// The credential it matched (`None` on an unauthenticated endpoint).
    credential: Option<Matched>,
}

impl<'a> VerifiedRequest<'a> {
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn media(&self) -> MediaType {
        self.media
    }

    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The raw query string. It may hold a credential (`token`): read parameters by name.
    pub fn query(&self) -> &'a str {
        self.query
    }

    pub fn credential(&self) -> Option<Matched> {
        self.credential
    }
}

/// Why a request was not authenticated (HTTP 401). Messages never echo a credential.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing `{0}` header")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not a Unix timestamp in seconds")]
    InvalidTimestamp,
    #[error("`webhook-timestamp` is {skew} s away from server time (tolerance {tolerance} s)")]
    StaleTimestamp { skew: i64, tolerance: u64 },
    #[error("no `webhook-signature` entry matches an active secret")]
    InvalidSignature,
    #[error("missing credential (`Authorization` header or `token` query parameter)")]
    MissingCredential,
    #[error("credential does not match any configured value")]
    InvalidCredential,
    #[error("the credential presented is past its end (not_after) and no longer accepted")]
    ExpiredCredential,
    #[error("the endpoint requires a client certificate (TLS) and the connection presented none")]
    MissingClientCertificate,
    #[error("the client certificate names none of the endpoint's allowed subjects")]
    ClientCertificateNotAllowed,
}

impl VerifyError {
    /// Stable machine-readable reason for problem bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::InvalidSignature => "invalid_signature",
            Self::MissingCredential => "missing_credential",
            Self::InvalidCredential => "invalid_credential",
            Self::ExpiredCredential => "expired_credential",
            Self::MissingClientCertificate => "missing_client_certificate",
            Self::ClientCertificateNotAllowed => "client_certificate_not_allowed",
        }
    }
}

/// The configured check of one endpoint, built once at start-up (keys decoded, digests taken).
#[derive(Debug)]
pub enum Verifier {
    StandardWebhooks(StandardWebhooks),
    Authorization(AuthorizationHeader),
    Token(QueryToken),
    Hmac(BodyHmac),
    /// Explicitly configured as unauthenticated.
    Unauthenticated,
}

impl Verifier {
    pub fn verify<'a>(&self, req: UnverifiedRequest<'a>) -> Result<VerifiedRequest<'a>, VerifyError> {
        let matched = match self {
            Self::StandardWebhooks(v) => Some(v.verify(req.headers, &req.body, req.now)?),
            Self::Authorization(v) => Some(v.verify(req.headers)?),
            Self::Token(v) => Some(v.verify(req.headers, req.query)?),
            Self::Hmac(v) => Some(v.verify(req.headers, &req.body)?),
            Self::Unauthenticated => None,
        };
        let credential = self.accept(matched, req.now)?;
        Ok(VerifiedRequest {
            media: req.media,
            body: req.body,
            headers: req.headers,
            query: req.query,
            credential,
        })
    }

    /// A match stands unless its credential has ended.
    fn accept(&self, matched: Option<Matched>, now: i64) -> Result<Option<Matched>, VerifyError> {
        match (matched, self.keys()) {
            (Some(m), Some(keys)) => keys.accept(m, now).map(Some),
            (other, _) => Ok(other),
        }
    }

    /// The labels and ends of the endpoint's credentials.
    pub fn keys(&self) -> Option<&Keys> {
        match self {
            Self::StandardWebhooks(v) => Some(&v.info),
            Self::Authorization(v) => Some(&v.keys),
            Self::Token(v) => Some(&v.1),
            Self::Hmac(v) => Some(&v.keys),
            Self::Unauthenticated => None,
        }
    }

    /// The ways a credential of this endpoint can match, for the metric of matches.
    pub fn modes(&self) -> &'static [&'static str] {
        match self {
            Self::StandardWebhooks(_) => &["standard", "hex"],
            Self::Authorization(_) => &["header"],
            Self::Token(_) => &["token"],
            Self::Hmac(_) => &["hmac-sha1", "hmac-sha256", "token"],
            Self::Unauthenticated => &[],
        }
    }

    /// What can be checked before the body is read: header and query credentials completely; for
    /// signed bodies, that the signature headers are there, well-formed and fresh. A sender
    /// without a credential is refused at once and never holds a slot for reading a body.
    pub fn check_head(&self, headers: &HeaderMap, query: &str, now: i64) -> Result<(), VerifyError> {
        match self {
            Self::StandardWebhooks(v) => v.check_head(headers, now),
            // Completely checked here: an ended credential is refused before the body too.
            Self::Authorization(v) => self.accept(Some(v.verify(headers)?), now).map(drop),
            Self::Token(v) => self.accept(Some(v.verify(headers, query)?), now).map(drop),
            Self::Hmac(v) => v.check_head(headers),
            Self::Unauthenticated => Ok(()),
        }
    }

    /// [`Self::check_head`] checks the credential completely: the sender has proven itself
    /// before its body is read. Signed bodies (and unauthenticated endpoints) prove nothing yet.
    pub fn proven_by_head(&self) -> bool {
        matches!(self, Self::Authorization(_) | Self::Token(_))
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Self::StandardWebhooks(_) => Scheme::StandardWebhooks,
            Self::Authorization(_) => Scheme::Authorization,
            Self::Token(_) => Scheme::Token,
            Self::Hmac(_) => Scheme::Hmac,
            Self::Unauthenticated => Scheme::None,
        }
    }
}

/// A header's trimmed, non-empty text. Pass a `HeaderName` where the name is fixed: a `&str` is
/// parsed into one on every lookup.
fn header(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}
