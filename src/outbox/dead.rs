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

/// A request on a sink's dead letters: those with the given event ids, or all of them. The
/// nonce ties the service's answer to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(default)]
    pub nonce: u64,
}

impl Request {
    fn selects(&self, e: &Entry) -> bool {
        self.ids.is_empty() || self.ids.iter().any(|id| id == e.delivery.event.id())
    }
}

/// What a request did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    #[serde(default, skip_serializing)]
    pub nonce: u64,
    pub sink: String,
    pub action: Option<Action>,
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The dead letters in a sink's directory, oldest first, and whether that is all of them (read
/// to the end, every entry decoded). Read-only: a torn tail, or a write in progress, ends it.
pub fn read(dir: &Path) -> std::io::Result<(Vec<Entry>, bool)> {
    let path = dir.join(DEAD);
    if !path.exists() {
        return Ok((Vec::new(), true));
    }
    let mut reader = FrameReader::open(&path, 0, None, None)?;
    let (mut out, mut complete) = (Vec::new(), true);
    loop {
        match reader.next_frame()? {
            Ok(Some(f)) => match entry::decode(f.seq, &f.payload) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::warn!(file = %path.display(), seq = f.seq, error = %e, "unreadable dead letter");
                    complete = false;
                }
            },
            Ok(None) => break,
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    Ok((out, complete))
}

/// Every dead letter that reads back (see [`read`]).
pub fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    read(dir).map(|(entries, _)| entries)
}

/// Splits the dead letters into those `req` selects and the rest. Refused when not every dead
/// letter reads back: rewriting the file would lose those.
pub fn select(dir: &Path, req: &Request) -> std::io::Result<(Vec<Entry>, Vec<Entry>)> {
    let (entries, complete) = read(dir)?;
    if !complete {
        return Err(std::io::Error::other(format!(
            "{} does not read back whole; it is left as it is (set the damaged part aside by hand)",
            dir.join(DEAD).display()
        )));
    }
    Ok(entries.into_iter().partition(|e| req.selects(e)))
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

/// Answers a request: the result (with its nonce) first, then the request goes.
pub fn answer(dir: &Path, applied: &Applied) -> std::io::Result<()> {
    let mut v = serde_json::to_value(applied).expect("plain data serializes");
    v["nonce"] = applied.nonce.into();
    write_json(&dir.join(RESULT), &v)?;
    std::fs::remove_file(dir.join(REQUEST))
}

/// Leaves `req` for the running service; refused while another request is waiting there.
pub fn leave_request(dir: &Path, req: &Request) -> std::io::Result<()> {
    if dir.join(REQUEST).exists() {
        return Err(std::io::Error::other(
            "another request is waiting for the service; try again when it is answered",
        ));
    }
    write_json(&dir.join(REQUEST), req)
}

/// The service's answer to the request with `nonce`, once it is there.
pub fn result(dir: &Path, nonce: u64) -> Option<Applied> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        nonce: u64,
        #[serde(flatten)]
        applied: Applied,
    }
    let answer: Answer = serde_json::from_slice(&std::fs::read(dir.join(RESULT)).ok()?).ok()?;
    (answer.nonce == nonce).then_some(answer.applied)
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, serde_json::to_vec(value).expect("plain data serializes"))?;
    std::fs::rename(tmp, path)
}
