//! The on-disk frame: `[len u32][crc32 u32][seq u64][payload]`, little-endian, the checksum over
//! length, sequence number and payload; and the reader that walks a file of them and tells a
//! torn tail (a frame that runs past the end of the file) from corruption.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes before a frame's payload.
pub const HEADER: u64 = 16;
/// No entry is anywhere near this (bodies are limited to a few MiB); a larger length is corrupt.
const MAX_PAYLOAD: u32 = 256 << 20;

fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the frame of `payload` as entry `seq`.
pub fn frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("entries are far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The size of `payload`'s frame.
pub fn framed_len(payload: &[u8]) -> u64 {
    HEADER + payload.len() as u64
}

/// One frame read back.
pub struct Frame {
    pub seq: u64,
    pub payload: Vec<u8>,
    /// Offset of the frame, and just after it.
    pub start: u64,
    pub end: u64,
}

/// Why reading stopped before the end of the readable range.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// The last frame runs past the end: a write the crash interrupted (never acknowledged).
    Torn { at: u64 },
    /// A frame that does not check out, with more data after it or inside the range.
    Corrupt { at: u64, why: String },
}

/// Reads the frames of one file from `pos` up to `limit` bytes, checking each.
pub struct FrameReader {
    reader: BufReader<File>,
    pos: u64,
    limit: u64,
    /// The sequence number the next frame must carry, when known.
    expect: Option<u64>,
}

impl FrameReader {
    /// `limit: None` reads to the end of the file as it is now.
    pub fn open(path: &Path, pos: u64, limit: Option<u64>, expect: Option<u64>) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let limit = match limit {
            Some(l) => l,
            None => file.metadata()?.len(),
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(Self { reader: BufReader::with_capacity(64 << 10, file), pos, limit, expect })
    }

    /// Offset of the next frame.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The next frame; `Ok(None)` at the end of the range.
    pub fn next_frame(&mut self) -> std::io::Result<Result<Option<Frame>, Bad>> {
        let at = self.pos;
        let rest = self.limit - at;
        if rest == 0 {
            return Ok(Ok(None));
        }
        if rest < HEADER {
            return Ok(Err(Bad::Torn { at }));
        }
        let mut header = [0u8; HEADER as usize];
        self.reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let sum = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if len > MAX_PAYLOAD {
            return Ok(Err(Bad::Corrupt { at, why: format!("length {len} is not plausible") }));
        }
        if HEADER + u64::from(len) > rest {
            // Runs past the end: torn when this is the end of the file, corrupt inside a range.
            return Ok(Err(Bad::Torn { at }));
        }
        let mut payload = vec![0u8; len as usize];
        self.reader.read_exact(&mut payload)?;
        if checksum(len, seq, &payload) != sum {
            return Ok(Err(Bad::Corrupt { at, why: "checksum mismatch".into() }));
        }
        if let Some(expect) = self.expect {
            if seq != expect {
                return Ok(Err(Bad::Corrupt { at, why: format!("sequence {seq} where {expect} was due") }));
            }
        }
        self.expect = Some(seq + 1);
        self.pos = at + HEADER + u64::from(len);
        Ok(Ok(Some(Frame { seq, payload, start: at, end: self.pos })))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(path: &Path, frames: &[(u64, &[u8])], extra: &[u8]) {
        let mut buf = Vec::new();
        for (seq, p) in frames {
            frame(*seq, p, &mut buf);
        }
        buf.extend_from_slice(extra);
        std::fs::File::create(path).unwrap().write_all(&buf).unwrap();
    }

    fn read_all(path: &Path, expect: Option<u64>) -> (Vec<u64>, Option<Bad>) {
        let mut r = FrameReader::open(path, 0, None, expect).unwrap();
        let mut seqs = Vec::new();
        loop {
            match r.next_frame().unwrap() {
                Ok(Some(f)) => seqs.push(f.seq),
                Ok(None) => return (seqs, None),
                Err(bad) => return (seqs, Some(bad)),
            }
        }
    }

    #[test]
    fn frames_read_back_and_a_cut_last_frame_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write(&p, &[(7, b"one"), (8, b"two two"), (9, b"three")], b"");
        assert_eq!(read_all(&p, Some(7)), (vec![7, 8, 9], None));
        let full = std::fs::metadata(&p).unwrap().len();
        let second_end = HEADER * 2 + 3 + 7;
        // Every cut inside the last frame, header included, is a torn tail after frame 8.
        for cut in second_end + 1..full {
            std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(cut).unwrap();
            assert_eq!(read_all(&p, Some(7)), (vec![7, 8], Some(Bad::Torn { at: second_end })), "cut {cut}");
        }
    }

    #[test]
    fn flipped_bytes_and_wrong_sequences_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write(&p, &[(1, b"alpha"), (2, b"beta")], b"");
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let (seqs, bad) = read_all(&p, Some(1));
        assert_eq!(seqs, vec![1]);
        assert!(matches!(bad, Some(Bad::Corrupt { at, .. }) if at == HEADER + 5), "{bad:?}");

        write(&p, &[(1, b"alpha"), (3, b"gamma")], b"");
        let (seqs, bad) = read_all(&p, Some(1));
        assert_eq!(seqs, vec![1]);
        assert!(matches!(bad, Some(Bad::Corrupt { ref why, .. }) if why.contains("sequence 3")), "{bad:?}");

        write(&p, &[(1, b"alpha")], &[0xff; 40]);
        assert!(matches!(read_all(&p, None).1, Some(Bad::Corrupt { .. })));
    }
}
