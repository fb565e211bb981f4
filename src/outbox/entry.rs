//! One outbox entry: a delivery (its target and the event) plus what the outbox knows of it.

use std::sync::Arc;

use crate::event::stored::{self, DecodeError, Reader, Writer};
use crate::event::CloudEvent;
use crate::sinks::{ContentMode, Delivery, Target};

/// Leading byte of an entry's payload; a layout change gets a new one.
const VERSION: u8 = 1;

/// A delivery as the outbox keeps it. `attempts` and `last_error` are set on dead letters.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in its sink's queue (from the frame, not the payload).
    pub seq: u64,
    /// When it was spooled, in Unix milliseconds.
    pub spooled_at_ms: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivery: Delivery,
}

/// The payload of a fresh entry for `d`.
pub fn encode(d: &Delivery, spooled_at_ms: u64) -> Vec<u8> {
    encode_with(d, spooled_at_ms, 0, None)
}

/// The payload with the outbox's bookkeeping, as a dead letter carries it.
pub fn encode_with(d: &Delivery, spooled_at_ms: u64, attempts: u32, last_error: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.event.data().len() + 512);
    let mut w = Writer(&mut out);
    w.u8(VERSION);
    w.u64(spooled_at_ms);
    w.u32(attempts);
    w.opt(last_error);
    w.u8(match d.target.mode {
        ContentMode::Binary => 0,
        ContentMode::Structured => 1,
    });
    w.bytes(d.target.name.as_bytes());
    w.opt(d.target.key.as_deref());
    stored::encode(&d.event, &mut out);
    out
}

/// Reads a payload [`encode_with`] wrote.
pub fn decode(seq: u64, payload: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader(payload);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let spooled_at_ms = r.u64()?;
    let attempts = r.u32()?;
    let last_error = r.opt()?;
    let mode = match r.u8()? {
        0 => ContentMode::Binary,
        _ => ContentMode::Structured,
    };
    let name = r.string()?;
    let key = r.opt()?;
    let event: CloudEvent = stored::decode(&mut r)?;
    Ok(Entry {
        seq,
        spooled_at_ms,
        attempts,
        last_error,
        delivery: Delivery { event: Arc::new(event), target: Target { name, key, mode } },
    })
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
