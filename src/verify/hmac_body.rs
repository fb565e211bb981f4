//! An HMAC of the raw body in a header: GitHub (`X-Hub-Signature-256: sha256=<hex>`), Nexus
//! (`X-Nexus-Webhook-Signature: <hex HMAC-SHA1>`), JFrog (`X-JFrog-Event-Auth`, a signature in
//! either form receivers disagree on, or the secret itself). One verifier; a dialect names its
//! header and the forms the value may take ([`HmacSpec`]).

use actix_web::http::header::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::keys::{Finder, Keys, Matched};
use super::token::Accepted;
use super::{header, VerifyError};

/// The hash of an HMAC form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
}

impl Algorithm {
    fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }
}

/// One way the header's value may carry the signature: `<prefix><lowercase or uppercase hex>`.
#[derive(Clone, Copy, Debug)]
pub struct HmacForm {
    pub algorithm: Algorithm,
    pub prefix: &'static str,
}

/// A dialect's signature header and the forms its value may take; with `token_too`, the value may
/// also be the secret itself (JFrog's plain "secret token" mode).
#[derive(Debug)]
pub struct HmacSpec {
    pub header: &'static str,
    pub forms: &'static [HmacForm],
    pub token_too: bool,
}

/// The configured secrets of one endpoint, keyed once per algorithm.
#[derive(Clone)]
pub struct BodyHmac {
    spec: &'static HmacSpec,
    sha1: Vec<Hmac<Sha1>>,
    sha256: Vec<Hmac<Sha256>>,
    tokens: Option<Accepted>,
    pub(super) keys: Keys,
}

impl std::fmt::Debug for BodyHmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyHmac")
            .field("header", &self.spec.header)
            .field("secrets", &format_args!("{} (redacted)", self.sha256.len()))
            .finish()
    }
}

/// The value's signature, decoded, with the form it matched.
struct Candidate {
    algorithm: Algorithm,
    tag: Vec<u8>,
}

impl BodyHmac {
    pub fn new<'a>(spec: &'static HmacSpec, secrets: impl IntoIterator<Item = &'a str> + Clone) -> Self {
        let keys: Vec<&str> = secrets.clone().into_iter().collect();
        Self {
            spec,
            sha1: keys
                .iter()
                .map(|k| Hmac::<Sha1>::new_from_slice(k.as_bytes()).expect("any key length"))
                .collect(),
            sha256: keys
                .iter()
                .map(|k| Hmac::<Sha256>::new_from_slice(k.as_bytes()).expect("any key length"))
                .collect(),
            tokens: spec.token_too.then(|| Accepted::new(secrets)),
            keys: Keys::default(),
        }
    }

    /// Labels and ends of the secrets, in the order they were given.
    pub fn with_keys(self, keys: Keys) -> Self {
        Self { keys, ..self }
    }

    fn value<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, VerifyError> {
        header(headers, self.spec.header).ok_or(VerifyError::MissingHeader(self.spec.header))
    }

    /// The forms the value matches the shape of (prefix, hex of the hash's length).
    fn candidates(&self, value: &str) -> Vec<Candidate> {
        self.spec
            .forms
            .iter()
            .filter_map(|f| {
                let hex = value.strip_prefix(f.prefix)?;
                let tag = hex::decode(hex).ok().filter(|t| t.len() == f.algorithm.len())?;
                Some(Candidate { algorithm: f.algorithm, tag })
            })
            .collect()
    }

    /// Before the body: the header is there, and is a signature in one of the forms (or, where
    /// a plain token is allowed, it is one of the secrets: then nothing more is needed).
    pub(super) fn check_head(&self, headers: &HeaderMap) -> Result<(), VerifyError> {
        let value = self.value(headers)?;
        let token = self.tokens.as_ref().is_some_and(|t| t.contains(value));
        if token || !self.candidates(value).is_empty() {
            Ok(())
        } else {
            Err(VerifyError::InvalidSignature)
        }
    }

    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Matched, VerifyError> {
        let value = self.value(headers)?;
        if let Some(m) = self.tokens.as_ref().and_then(|t| t.find(value, "token")) {
            return Ok(m);
        }
        let mut finder = Finder::new();
        for c in self.candidates(value) {
            match c.algorithm {
                Algorithm::Sha1 => {
                    for (i, key) in self.sha1.iter().enumerate() {
                        let mut mac = key.clone();
                        mac.update(body);
                        finder.check(i, 0, mac.finalize().into_bytes().as_slice().ct_eq(&c.tag));
                    }
                }
                Algorithm::Sha256 => {
                    for (i, key) in self.sha256.iter().enumerate() {
                        let mut mac = key.clone();
                        mac.update(body);
                        finder.check(i, 1, mac.finalize().into_bytes().as_slice().ct_eq(&c.tag));
                    }
                }
            }
        }
        finder.found(&["hmac-sha1", "hmac-sha256"]).ok_or(VerifyError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    const GITHUB: HmacSpec = HmacSpec {
        header: "x-hub-signature-256",
        forms: &[HmacForm { algorithm: Algorithm::Sha256, prefix: "sha256=" }],
        token_too: false,
    };
    const JFROG: HmacSpec = HmacSpec {
        header: "x-jfrog-event-auth",
        forms: &[
            HmacForm { algorithm: Algorithm::Sha256, prefix: "" },
            HmacForm { algorithm: Algorithm::Sha1, prefix: "sha1=" },
        ],
        token_too: true,
    };

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn github_style_sha256_with_prefix() {
        // RFC 4231-independent vector: HMAC-SHA256("It's a Secret to Everybody", "Hello, World!"),
        // GitHub's own documented example.
        let v = BodyHmac::new(&GITHUB, ["It's a Secret to Everybody"]);
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            v.verify(&headers("x-hub-signature-256", good), b"Hello, World!").map(|m| m.mode),
            Ok("hmac-sha256")
        );
        assert_eq!(
            v.verify(&headers("x-hub-signature-256", good), b"Hello, World?"),
            Err(VerifyError::InvalidSignature)
        );
        let no_prefix = good.trim_start_matches("sha256=");
        assert_eq!(
            v.check_head(&headers("x-hub-signature-256", no_prefix)),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(v.check_head(&HeaderMap::new()), Err(VerifyError::MissingHeader("x-hub-signature-256")));
    }

    #[test]
    fn jfrog_accepts_the_token_or_either_signature_form() {
        let v = BodyHmac::new(&JFROG, ["s3cr3t"]);
        let body = b"{\"domain\":\"docker\"}";
        assert_eq!(v.verify(&headers("x-jfrog-event-auth", "s3cr3t"), body).map(|m| m.mode), Ok("token"));
        let mut sha256 = Hmac::<Sha256>::new_from_slice(b"s3cr3t").unwrap();
        sha256.update(body);
        let hex256 = hex::encode(sha256.finalize().into_bytes());
        assert_eq!(
            v.verify(&headers("x-jfrog-event-auth", &hex256), body).map(|m| m.mode),
            Ok("hmac-sha256")
        );
        let mut sha1 = Hmac::<Sha1>::new_from_slice(b"s3cr3t").unwrap();
        sha1.update(body);
        let hex1 = format!("sha1={}", hex::encode(sha1.finalize().into_bytes()));
        assert_eq!(v.verify(&headers("x-jfrog-event-auth", &hex1), body).map(|m| m.mode), Ok("hmac-sha1"));
        assert_eq!(
            v.verify(&headers("x-jfrog-event-auth", "wrong"), body),
            Err(VerifyError::InvalidSignature)
        );
    }
}
