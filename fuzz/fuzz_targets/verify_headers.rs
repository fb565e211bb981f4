//! The credential parsers: Standard Webhooks headers (every mode), the body-HMAC header forms of
//! every dialect that signs its body, static headers and `?token=`, through the public
//! `Verifier::check_head` and `Verifier::verify` with fixed test secrets.
//!
//! Input: an HTTP-like head, then a blank line, then the body. Head lines are `name: value`
//! headers (repeats are kept), `?<query string>`, or `@<unix seconds>` for the clock (default: the
//! first Standard Webhooks vector's timestamp). Seeds: the Standard Webhooks vectors and signed
//! fixtures (`fuzz/seed`).
//!
//! Beyond "never panics": whatever `verify` accepts, `check_head` accepts too (a real sender is
//! never refused before its body); where the head proves the sender, both agree; a verified
//! request carries the body and query unchanged; no error message holds a secret.
#![no_main]

use std::sync::LazyLock;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use regbridge::dialects::{MediaType, REGISTRY};
use regbridge::verify::{
    AuthorizationHeader, BodyHmac, KeyInfo, Keys, QueryToken, SignatureMode, StandardWebhooks,
    UnverifiedRequest, Verifier,
};

/// The Standard Webhooks vectors' secrets (tests/fixtures/standardwebhooks), the suite's Root
/// secret, and secrets of the other schemes' tests. None may appear in an error message.
const SECRETS: &[&str] = &[
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "It's a Secret to Everybody",
    "s3cr3t-value",
    "Bearer s3cr3t-value",
    "t/k+n=token-value",
];
const DEFAULT_NOW: i64 = 1_614_265_330;

/// The first credential of each list ended at the default clock (rotation: `not_after`).
fn rotated() -> Keys {
    Keys::new(vec![KeyInfo { label: Some("old".into()), not_after: Some(DEFAULT_NOW) }, KeyInfo::default()])
}

static VERIFIERS: LazyLock<Vec<Verifier>> = LazyLock::new(|| {
    let sw = |mode| StandardWebhooks::new(SECRETS[..3].iter().copied(), mode, 300).unwrap();
    let mut all = vec![
        Verifier::StandardWebhooks(sw(SignatureMode::Auto)),
        Verifier::StandardWebhooks(sw(SignatureMode::Standard).with_keys(rotated())),
        // Hex mode takes any secret text, base64 or not.
        Verifier::StandardWebhooks(
            StandardWebhooks::new(SECRETS.iter().copied(), SignatureMode::Hex, 300).unwrap(),
        ),
        Verifier::Authorization(AuthorizationHeader::new([SECRETS[5], "Basic b2xk"])),
        Verifier::Authorization(
            AuthorizationHeader::named(HeaderName::from_static("x-api-key"), [SECRETS[4], "k2"])
                .with_keys(rotated()),
        ),
        Verifier::Token(QueryToken::new([SECRETS[6], SECRETS[4]])),
        Verifier::Token(QueryToken::new([SECRETS[6], SECRETS[4]]).with_keys(rotated())),
        Verifier::Unauthenticated,
    ];
    // GitHub, Nexus, JFrog: each dialect's own header and forms.
    for spec in REGISTRY.iter().filter_map(|d| d.hmac) {
        all.push(Verifier::Hmac(BodyHmac::new(spec, [SECRETS[3], SECRETS[4]])));
        all.push(Verifier::Hmac(BodyHmac::new(spec, [SECRETS[3], SECRETS[4]]).with_keys(rotated())));
    }
    all
});

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut query = String::new();
    let mut now = DEFAULT_NOW;
    for line in head.split(|&b| b == b'\n') {
        match line {
            [b'?', q @ ..] => query = String::from_utf8_lossy(q).into_owned(),
            [b'@', n @ ..] => now = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(now),
            _ => {
                let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
                let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value))
                {
                    headers.append(name, value);
                }
            }
        }
    }

    for verifier in VERIFIERS.iter() {
        let head = verifier.check_head(&headers, &query, now);
        let req = UnverifiedRequest {
            headers: &headers,
            query: &query,
            media: MediaType::Json,
            body: Bytes::copy_from_slice(body),
            now,
        };
        let full = verifier.verify(req);
        let scheme = verifier.scheme();
        match &full {
            Ok(verified) => {
                assert!(head.is_ok(), "{scheme:?}: verify accepts what check_head refuses: {head:?}");
                assert_eq!(verified.body(), body, "{scheme:?}");
                assert_eq!(verified.query(), query, "{scheme:?}");
            }
            Err(e) => {
                let text = format!("{e} {}", e.reason());
                assert!(!SECRETS.iter().any(|s| text.contains(s)), "{scheme:?}: an error names a secret");
            }
        }
        if verifier.proven_by_head() {
            assert_eq!(head.as_ref().err(), full.as_ref().err(), "{scheme:?}: head and body disagree");
        }
    }
});
