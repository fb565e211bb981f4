//! Dead letters (entries a sink refused for good) and the operator's requests on them: list,
//! requeue, discard. A request for a running service is a file its relay picks up, so the CLI
//! never writes to files another process is appending to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry::{self, Entry};
use super::queue::sync_dir;
use super::recover::DEAD;
use super::segment::{self, FrameReader};

/// An operator's request file in a sink's directory, and the service's answer next to it.
pub const REQUEST: &str = "request.json";
pub const RESULT: &str = "request.result.json";

/// What to do with dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Back into the queue (at its end), to be delivered again.
    Requeue,
    /// Deleted for good.
    Discard,
}

/// A request on a sink's dead letters: those with the given event ids, or all of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

impl Request {
    fn selects(&self, e: &Entry) -> bool {
        self.ids.is_empty() || self.ids.iter().any(|id| id == e.delivery.event.id())
    }
}

/// What a request did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    pub sink: String,
    pub action: Option<Action>,
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every dead letter in a sink's directory, oldest first (read-only; a torn tail, a write in
/// progress, ends the list).
pub fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let path = dir.join(DEAD);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = FrameReader::open(&path, 0, None, None)?;
    let mut out = Vec::new();
    while let Ok(Some(f)) = reader.next_frame()? {
        match entry::decode(f.seq, &f.payload) {
            Ok(e) => out.push(e),
            Err(e) => {
                tracing::warn!(file = %path.display(), seq = f.seq, error = %e, "unreadable dead letter skipped")
            }
        }
    }
    Ok(out)
}

/// Splits the dead letters into those `req` selects and the rest.
pub fn select(dir: &Path, req: &Request) -> std::io::Result<(Vec<Entry>, Vec<Entry>)> {
    Ok(list(dir)?.into_iter().partition(|e| req.selects(e)))
}

/// Rewrites the dead letters as `kept` (written aside, synced, renamed over); returns the
/// file's new size.
pub fn rewrite(dir: &Path, kept: &[Entry]) -> std::io::Result<u64> {
    let mut buf = Vec::new();
    for e in kept {
        let payload = entry::encode_with(&e.delivery, e.spooled_at_ms, e.attempts, e.last_error.as_deref());
        segment::frame(e.seq, &payload, &mut buf);
    }
    let tmp = dir.join("dead.log.tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(DEAD))?;
    sync_dir(dir)?;
    Ok(buf.len() as u64)
}

/// Reads a pending request for the service, if the CLI left one.
pub fn take_request(dir: &Path) -> Option<Request> {
    let path = dir.join(REQUEST);
    let text = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable outbox request");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// Answers a request: the result first, then the request goes, which is what the CLI waits for.
pub fn answer(dir: &Path, applied: &Applied) -> std::io::Result<()> {
    write_json(&dir.join(RESULT), applied)?;
    std::fs::remove_file(dir.join(REQUEST))
}

/// Leaves `req` for the running service (replacing an older answer).
pub fn leave_request(dir: &Path, req: &Request) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dir.join(RESULT));
    write_json(&dir.join(REQUEST), req)
}

/// The service's answer, once the request file is gone.
pub fn result(dir: &Path) -> Option<Applied> {
    if dir.join(REQUEST).exists() {
        return None;
    }
    serde_json::from_slice(&std::fs::read(dir.join(RESULT)).ok()?).ok()
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, serde_json::to_vec(value).expect("plain data serializes"))?;
    std::fs::rename(tmp, path)
}
