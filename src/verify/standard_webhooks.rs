//! Standard Webhooks HMAC-SHA256 signatures, in both key/encoding modes seen in the wild.
//!
//! The specification keys the HMAC with `base64-decode(secret minus "whsec_")` and sends the tag
//! in base64. Root's reference receiver keys it with the whole secret string and sends lowercase
//! hex. The shape of each `v1,` entry tells which mode it is (64 hex digits vs 44 base64 chars),
//! so `auto` accepts either without trying both keys on every entry.

use actix_web::http::header::{HeaderMap, HeaderName};
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::keys::{Finder, Keys, Matched};
use super::{header, VerifyError};

type HmacSha256 = Hmac<Sha256>;

/// Secrets and signatures are accepted with or without `=` padding and with stray trailing bits,
/// as the official libraries (Python, JavaScript) accept them.
// The three headers of the scheme, named once: looking one up by `&str` parses the name anew.
const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Which signature encodings an endpoint accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureMode {
    /// Either, told apart by the signature's shape.
    #[default]
    Auto,
    /// The specification's: base64-decoded key, base64 tag.
    Standard,
    /// Root's reference receiver's: raw secret string as key, lowercase hex tag.
    Hex,
}

impl std::str::FromStr for SignatureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "standard" => Ok(Self::Standard),
            "hex" => Ok(Self::Hex),
            other => Err(format!("unknown signature mode `{other}` (valid: auto, standard, hex)")),
        }
    }
}

/// One active secret, as two pre-keyed HMAC states (cloning a keyed state skips re-deriving the
/// key block on every request).
#[derive(Clone)]
struct Key {
    /// `None` when the secret is not valid base64: such a secret can only sign in hex mode.
    standard: Option<HmacSha256>,
    raw: HmacSha256,
}

/// Verifier for one endpoint: its active secrets (several during rotation), mode and tolerance.
#[derive(Clone)]
pub struct StandardWebhooks {
    keys: Vec<Key>,
    mode: SignatureMode,
    tolerance: u64,
    pub(super) info: Keys,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("secrets", &format_args!("{} (redacted)", self.keys.len()))
            .field("mode", &self.mode)
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// Failure to build a verifier from configuration.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("secret #{0} is empty")]
    Empty(usize),
    #[error("secret #{0} is not base64 after `whsec_`, which mode `standard` requires")]
    NotBase64(usize),
}

impl StandardWebhooks {
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
        mode: SignatureMode,
        tolerance: u64,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, secret) in secrets.into_iter().enumerate() {
            if secret.is_empty() {
                return Err(KeyError::Empty(i + 1));
            }
            let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
            let standard = LENIENT_B64
                .decode(b64)
                .ok()
                .filter(|k| !k.is_empty())
                .map(|k| HmacSha256::new_from_slice(&k).expect("HMAC takes keys of any length"));
            if standard.is_none() && mode == SignatureMode::Standard {
                return Err(KeyError::NotBase64(i + 1));
            }
            let raw = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
            keys.push(Key { standard, raw });
        }
        Ok(Self { keys, mode, tolerance, info: Keys::default() })
    }

    /// Labels and ends of the secrets, in the order they were given.
    pub fn with_keys(self, info: Keys) -> Self {
        Self { info, ..self }
    }

    pub fn tolerance(&self) -> u64 {
        self.tolerance
    }

    /// The signature headers: present, the timestamp fresh, at least one `v1,` entry of a shape
    /// this endpoint accepts. All of it before the body is read.
    fn head<'h>(&self, headers: &'h HeaderMap, now: i64) -> Result<Head<'h>, VerifyError> {
        let id = header(headers, ID).ok_or(VerifyError::MissingHeader("webhook-id"))?;
        let ts = header(headers, TIMESTAMP).ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
        let sigs = header(headers, SIGNATURE).ok_or(VerifyError::MissingHeader("webhook-signature"))?;

        let ts_num: i64 = ts.parse().map_err(|_| VerifyError::InvalidTimestamp)?;
        let skew = now.saturating_sub(ts_num);
        if skew.unsigned_abs() > self.tolerance {
            return Err(VerifyError::StaleTimestamp { skew, tolerance: self.tolerance });
        }

        let candidates: Vec<Candidate> = sigs.split(' ').filter_map(|e| self.parse(e)).collect();
        if candidates.is_empty() {
            return Err(VerifyError::InvalidSignature);
        }
        Ok(Head { id, ts, candidates })
    }

    pub(super) fn check_head(&self, headers: &HeaderMap, now: i64) -> Result<(), VerifyError> {
        self.head(headers, now).map(drop)
    }

    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Matched, VerifyError> {
        let Head { id, ts, candidates } = self.head(headers, now)?;
        let wants_std = candidates.iter().any(|c| !c.hex);
        let wants_hex = candidates.iter().any(|c| c.hex);

        let mut finder = Finder::new();
        for (i, key) in self.keys.iter().enumerate() {
            let sign = |mac: &HmacSha256| -> [u8; 32] {
                let mut mac = mac.clone();
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(ts.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.finalize().into_bytes().into()
            };
            let std_tag = key.standard.as_ref().filter(|_| wants_std).map(sign);
            let hex_tag = wants_hex.then(|| sign(&key.raw));
            for c in &candidates {
                let expected = if c.hex { hex_tag.as_ref() } else { std_tag.as_ref() };
                if let Some(expected) = expected {
                    finder.check(i, u8::from(c.hex), expected.ct_eq(&c.tag));
                }
            }
        }
        finder.found(&["standard", "hex"]).ok_or(VerifyError::InvalidSignature)
    }

    /// Reads one `v1,<sig>` entry; other versions and malformed entries are skipped, as the spec
    /// requires (a header may carry signatures for schemes this receiver does not know).
    fn parse(&self, entry: &str) -> Option<Candidate> {
        let sig = entry.strip_prefix("v1,")?;
        let hex_shaped = sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit());
        let mut tag = [0u8; 32];
        if hex_shaped {
            if self.mode == SignatureMode::Standard {
                return None;
            }
            hex::decode_to_slice(sig, &mut tag).ok()?;
            Some(Candidate { hex: true, tag })
        } else {
            if self.mode == SignatureMode::Hex {
                return None;
            }
            let bytes = LENIENT_B64.decode(sig).ok()?;
            tag = bytes.try_into().ok()?;
            Some(Candidate { hex: false, tag })
        }
    }
}

struct Candidate {
    hex: bool,
    tag: [u8; 32],
}

/// The signature headers of a request, read and checked.
struct Head<'h> {
    id: &'h str,
    ts: &'h str,
    candidates: Vec<Candidate>,
}

#[cfg(test)]
mod tests;
