//! The load itself: ~1 KB Root deliveries, each with its own ids, signed per request.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The secret regbridge is started with (the tests' one; base64 of bytes 0..32 after `whsec_`).
pub const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Body size the padding aims at.
const TARGET_BODY: usize = 1024;
/// Where the id goes while the template is split; never occurs in the fixture.
const ID_MARK: &str = "@@LOAD-ID@@";
/// The id length the padding is computed for (`ld<run>-<sink>-c<conns>-<worker>-<seq>`).
const TYPICAL_ID: usize = 32;

/// The fixture split around its `id`, padded inside `data` to about `TARGET_BODY` bytes.
#[derive(Clone)]
pub struct Body {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Body {
    /// Reads the Root fixture and pads it with `data.annotations` (the normalizer ignores unknown
    /// fields, so the event is the fixture's plus a larger `original`).
    pub fn from_fixture(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut v: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        v["id"] = json!(ID_MARK);
        v["data"]["annotations"] = json!("");
        let bare = serde_json::to_string(&v).expect("a Value serializes").len() - ID_MARK.len();
        let pad = TARGET_BODY.saturating_sub(bare + TYPICAL_ID);
        v["data"]["annotations"] = json!("x".repeat(pad));
        let full = serde_json::to_string(&v).expect("a Value serializes");
        let (head, tail) = full.split_once(ID_MARK).expect("the mark is in the text");
        Ok(Self { head: head.as_bytes().to_vec(), tail: tail.as_bytes().to_vec() })
    }

    pub fn write(&self, id: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&self.tail);
    }

    pub fn render(&self, id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + id.len() + self.tail.len());
        self.write(id, &mut out);
        out
    }
}

/// Standard Webhooks signer in the specification's mode: key = base64-decoded secret after
/// `whsec_`, tag = base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
#[derive(Clone)]
pub struct Signer {
    // Keyed once; cloning the keyed state per request skips re-deriving the inner/outer pads.
    keyed: Hmac<Sha256>,
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("the secret is base64 after whsec_");
        Self { keyed: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length") }
    }

    /// Appends `v1,<base64 tag>` to `out`.
    pub fn sign(&self, id: &str, ts: &str, body: &[u8], out: &mut String) {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        out.push_str("v1,");
        base64::engine::general_purpose::STANDARD.encode_string(mac.finalize().into_bytes(), out);
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Builds complete HTTP/1.1 requests for `POST /webhooks/root`, one per call, each with a fresh
/// `id`/`webhook-id`, the current `webhook-timestamp` and its own signature. Built at send time
/// rather than beforehand: at 512 connections a 10 s run can need hundreds of thousands of
/// requests, and signing 1 KB costs a few microseconds.
#[derive(Clone)]
pub struct RequestBuilder {
    head: Vec<u8>,
    body: Body,
    signer: Signer,
    scratch: Vec<u8>,
    sig: String,
}

impl RequestBuilder {
    pub fn new(port: u16, body: Body) -> Self {
        let head = format!(
            "POST /webhooks/root HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
             content-type: application/cloudevents+json\r\n"
        );
        Self {
            head: head.into_bytes(),
            body,
            signer: Signer::new(SECRET),
            scratch: vec![],
            sig: String::new(),
        }
    }

    /// Writes the request for event `id` into `out` (cleared first).
    pub fn build(&mut self, id: &str, out: &mut Vec<u8>) {
        self.scratch.clear();
        self.body.write(id, &mut self.scratch);
        let msg_id = format!("msg_{id}");
        let ts = unix_now().to_string();
        self.sig.clear();
        self.signer.sign(&msg_id, &ts, &self.scratch, &mut self.sig);
        out.clear();
        out.extend_from_slice(&self.head);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "content-length: {}\r\nwebhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n\
             webhook-signature: {}\r\n\r\n",
            self.scratch.len(),
            self.sig
        );
        out.extend_from_slice(&self.scratch);
    }

    pub fn body_len(&self) -> usize {
        self.body.render("x".repeat(TYPICAL_ID).as_str()).len()
    }
}

/// What regbridge puts in a Kafka/NATS value for one of these deliveries in binary mode: the
/// normalized `data`, which embeds the whole Root payload as `original`. The broker ceilings send
/// this, so they move the same bytes regbridge moves.
pub fn normalized_data(body: &[u8]) -> Vec<u8> {
    let original: Value = serde_json::from_slice(body).expect("the body is JSON");
    let data = json!({
        "registry": "root",
        "host": "cr.root.io",
        "repository": "python",
        "tag": "3.13",
        "digest": "sha256:e2etest",
        "image": "cr.root.io/python:3.13",
        "platform": { "os": null, "architecture": "amd64" },
        "actor": null,
        "occurred_at": "2026-03-29T13:40:12Z",
        "scan": null,
        "original": original,
    });
    serde_json::to_vec(&data).expect("a Value serializes")
}

/// The CloudEvents attributes regbridge sends as `ce_`/`ce-` headers, minus `id`.
pub const CE_HEADERS: &[(&str, &str)] = &[
    ("specversion", "1.0"),
    ("type", "dev.regbridge.artifact.pushed.v1"),
    ("source", "https://cr.root.io"),
    ("subject", "python:3.13"),
    ("time", "2026-03-29T13:40:12Z"),
    ("registry", "root"),
    ("origtype", "io.root.cr.image.created.v1"),
    ("partitionkey", "python"),
    ("traceparent", "00-fc1da72ecc3a6b52559ca3cb74e02834-18205349f7b6687d-01"),
];
