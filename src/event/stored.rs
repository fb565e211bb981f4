//! The event as it is kept on disk (the outbox): every attribute and `data` byte for byte, so a
//! replayed event is the event that was accepted, with the same id and the same bindings.
//!
//! A compact length-prefixed layout rather than the JSON format: reading it back needs no JSON
//! parser and cannot change a byte of `data`. [`Writer`] and [`Reader`] are the primitives the
//! outbox's entries use for their own fields too.

use chrono::DateTime;

use super::CloudEvent;

/// Leading byte of a stored event; a layout change gets a new one.
const VERSION: u8 = 1;
/// Length marker of an absent optional field.
const NONE: u32 = u32::MAX;

/// Appends length-prefixed fields (u32 little-endian lengths) to a buffer.
pub struct Writer<'a>(pub &'a mut Vec<u8>);

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        // Entries are bounded far below 4 GiB (the body limit plus attributes).
        self.u32(u32::try_from(v.len()).expect("a field under 4 GiB"));
        self.0.extend_from_slice(v);
    }

    pub fn opt(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.bytes(v.as_bytes()),
            None => self.u32(NONE),
        }
    }
}

/// Why stored bytes could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("entry ends early")]
    Truncated,
    #[error("field is not UTF-8")]
    NotUtf8,
    #[error("unknown layout version {0}")]
    Version(u8),
}

/// Reads what [`Writer`] wrote, in the same order.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()?;
        self.take(n as usize)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::NotUtf8)
    }

    pub fn opt(&mut self) -> Result<Option<String>, DecodeError> {
        if self.0.get(..4) == Some(&NONE.to_le_bytes()[..]) {
            self.take(4)?;
            return Ok(None);
        }
        self.string().map(Some)
    }
}

/// Appends `ev` in the stored layout.
pub fn encode(ev: &CloudEvent, out: &mut Vec<u8>) {
    out.reserve(ev.data.len() + 256);
    let mut w = Writer(out);
    w.u8(VERSION);
    w.bytes(ev.id.as_bytes());
    w.bytes(ev.ty.as_bytes());
    w.bytes(ev.source.as_bytes());
    w.opt(ev.subject.as_deref());
    w.opt(ev.time_text.as_deref());
    w.bytes(ev.registry.as_bytes());
    w.bytes(ev.origtype.as_bytes());
    w.bytes(ev.partitionkey.as_bytes());
    w.opt(ev.traceparent.as_deref());
    w.opt(ev.tracestate.as_deref());
    w.bytes(&ev.data);
}

/// Reads an event [`encode`] wrote; `r` is left after it.
pub fn decode(r: &mut Reader<'_>) -> Result<CloudEvent, DecodeError> {
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let id = r.string()?;
    let ty = r.string()?;
    let source = r.string()?;
    let subject = r.opt()?;
    let time_text = r.opt()?;
    // The text is what the bindings carry; the parsed instant is a convenience, never a reason
    // to refuse an event that was accepted.
    let time = time_text.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    Ok(CloudEvent {
        id,
        ty: ty.into(),
        source,
        subject,
        time,
        time_text,
        registry: r.string()?.into(),
        origtype: r.string()?,
        partitionkey: r.string()?,
        traceparent: r.opt()?,
        tracestate: r.opt()?,
        data: bytes::Bytes::copy_from_slice(r.bytes()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{build, kinds, Envelope, Occurrence, Original};

    #[test]
    fn an_event_reads_back_equal_and_truncation_is_detected() {
        let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, "evt-1", "PUSH_ARTIFACT");
        occ.repository = Some("library/nginx".into());
        occ.tag = Some("1.27".into());
        occ.time = DateTime::from_timestamp(1_774_791_612, 250_000_000);
        let env = Envelope {
            endpoint: "harbor",
            registry: "harbor",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ..Envelope::default()
        };
        let original = Original::compact(br#"{"note":"caf\u00e9 \ud83d\ude00"}"#).unwrap();
        let ev = build(&occ, &env, Some(&original));
        let mut buf = Vec::new();
        encode(&ev, &mut buf);
        let back = decode(&mut Reader(&buf)).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.to_json(), ev.to_json());
        for cut in [0, 1, 5, buf.len() / 2, buf.len() - 1] {
            assert!(decode(&mut Reader(&buf[..cut])).is_err(), "cut at {cut}");
        }
        buf[0] = 9;
        assert!(matches!(decode(&mut Reader(&buf)), Err(DecodeError::Version(9))));
    }
}
