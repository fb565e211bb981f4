//! Reading a sink's queue directory back at start-up (or for `regbridge outbox status`): every
//! segment is checked frame by frame; a torn tail is cut off, corruption is cut off and its bytes
//! kept aside, fully delivered segments are removed, and what is left is counted.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::segment::{Bad, FrameReader};

/// A queue segment file: named after the sequence number of its first entry.
#[derive(Clone, Debug)]
pub struct Segment {
    pub first: u64,
    pub path: PathBuf,
    /// Bytes of whole, committed frames.
    pub len: u64,
}

/// What a queue directory holds.
#[derive(Debug, Default)]
pub struct Recovered {
    pub segments: Vec<Segment>,
    /// Every entry up to this one has been delivered.
    pub acked: u64,
    /// The sequence number the next entry gets.
    pub next: u64,
    /// Where the first undelivered entry starts: (segment's first seq, offset).
    pub head: Option<(u64, u64)>,
    pub queued: u64,
    pub queued_bytes: u64,
    pub oldest_ms: Option<u64>,
    pub dead: u64,
    pub dead_bytes: u64,
}

pub const CURSOR: &str = "acked";
pub const DEAD: &str = "dead.log";

pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// The delivered-up-to cursor: 8 bytes of sequence number and their checksum.
pub fn read_cursor(dir: &Path) -> Option<u64> {
    let bytes = fs::read(dir.join(CURSOR)).ok()?;
    let (seq, sum) = (bytes.get(..8)?, bytes.get(8..12)?);
    (crc32fast::hash(seq).to_le_bytes() == sum).then(|| u64::from_le_bytes(seq.try_into().expect("8 bytes")))
}

/// Replaces the cursor: written aside, synced, then renamed over the old one. A cursor lost in a
/// crash only makes delivered entries be delivered again.
pub fn write_cursor(dir: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = dir.join("acked.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&seq.to_le_bytes())?;
    f.write_all(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes())?;
    f.sync_data()?;
    fs::rename(tmp, dir.join(CURSOR))
}

/// Segment files of `dir`, oldest first.
fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
            out.push((first, path));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Cuts `path` at `at`. Corruption (as opposed to a torn last write) keeps the cut bytes in
/// `<file>.<offset>.corrupt` for an operator to look at.
fn cut(path: &Path, at: u64, bad: &Bad, sink: &str) -> std::io::Result<()> {
    let len = fs::metadata(path)?.len();
    match bad {
        Bad::Torn { .. } => tracing::warn!(
            sink,
            file = %path.display(),
            offset = at,
            bytes = len - at,
            "outbox: cut off a torn entry at the end of the file (its write was interrupted, so it was never acknowledged)"
        ),
        Bad::Corrupt { why, .. } => {
            let aside = PathBuf::from(format!("{}.{at}.corrupt", path.display()));
            let bytes = fs::read(path)?;
            fs::write(&aside, &bytes[at as usize..])?;
            tracing::error!(
                sink,
                file = %path.display(),
                offset = at,
                bytes = len - at,
                kept = %aside.display(),
                why = %why,
                "outbox: corrupt entry; the rest of the file was cut off and kept aside"
            );
        }
    }
    OpenOptions::new().write(true).open(path)?.set_len(at)?;
    Ok(())
}

/// Reads `dir` for `sink`. With `repair`, bad tails are cut and delivered segments removed;
/// without it nothing is changed (another process may be writing: a bad tail is just the end).
pub fn recover(dir: &Path, sink: &str, repair: bool) -> std::io::Result<Recovered> {
    let listed = list_segments(dir)?;
    let first_on_disk = listed.first().map_or(0, |(f, _)| f.saturating_sub(1));
    let acked = read_cursor(dir).unwrap_or(first_on_disk).max(first_on_disk);
    let mut r = Recovered { acked, next: acked + 1, ..Recovered::default() };
    let count = listed.len();
    for (i, (first, path)) in listed.into_iter().enumerate() {
        let mut reader = FrameReader::open(&path, 0, None, Some(first))?;
        let mut last = None;
        loop {
            match reader.next_frame()? {
                Ok(Some(f)) => {
                    if f.seq > acked {
                        if r.head.is_none() {
                            r.head = Some((first, f.start));
                            // The entry's second field is when it was spooled.
                            r.oldest_ms =
                                f.payload.get(1..9).map(|b| u64::from_le_bytes(b.try_into().expect("8")));
                        }
                        r.queued += 1;
                        r.queued_bytes += f.end - f.start;
                    }
                    last = Some(f.seq);
                }
                Ok(None) => break,
                Err(bad) => {
                    let at = match &bad {
                        Bad::Torn { at } | Bad::Corrupt { at, .. } => *at,
                    };
                    let torn_at_end = matches!(bad, Bad::Torn { .. }) && i + 1 == count;
                    if repair {
                        let bad = if torn_at_end || matches!(bad, Bad::Corrupt { .. }) {
                            bad
                        } else {
                            Bad::Corrupt { at, why: "a frame runs past the end of a finished segment".into() }
                        };
                        cut(&path, at, &bad, sink)?;
                    }
                    break;
                }
            }
        }
        let len = reader.pos();
        if let Some(seq) = last {
            r.next = r.next.max(seq + 1);
        }
        // A segment's entries start at the number in its name, even when it is empty (a crash
        // right after a roll) and what came before was cut off.
        r.next = r.next.max(first);
        r.segments.push(Segment { first, path, len });
    }
    if repair {
        // Segments whose every entry was delivered go, the last one included (no writer yet).
        let next = r.next;
        let mut kept = Vec::with_capacity(r.segments.len());
        let segments = std::mem::take(&mut r.segments);
        let firsts: Vec<u64> = segments.iter().map(|s| s.first).skip(1).chain([next]).collect();
        for (s, following) in segments.into_iter().zip(firsts) {
            if following - 1 <= acked {
                fs::remove_file(&s.path)?;
            } else {
                kept.push(s);
            }
        }
        r.segments = kept;
    }
    let dead = dead_letters(dir, sink, repair)?;
    (r.dead, r.dead_bytes) = dead;
    Ok(r)
}

/// Counts the dead letters (and their bytes), cutting a torn tail when repairing.
fn dead_letters(dir: &Path, sink: &str, repair: bool) -> std::io::Result<(u64, u64)> {
    let path = dir.join(DEAD);
    if !path.exists() {
        return Ok((0, 0));
    }
    let mut reader = FrameReader::open(&path, 0, None, None)?;
    let mut n = 0;
    loop {
        match reader.next_frame()? {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(bad) => {
                if repair {
                    let at = match &bad {
                        Bad::Torn { at } | Bad::Corrupt { at, .. } => *at,
                    };
                    cut(&path, at, &bad, sink)?;
                }
                break;
            }
        }
    }
    Ok((n, reader.pos()))
}
