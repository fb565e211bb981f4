//! The normalized `data.scan` object that every dialect's scan events share.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Deserialize, Serialize, Clone, Debug)]
pub(crate) struct Scanner {
    name: Option<String>,
    vendor: Option<String>,
    version: Option<String>,
}

/// The normalized `data.scan` object. It is a struct rather than ad-hoc JSON so that every dialect
/// and every scan kind emits the same key set, absent values as `null`: consumers get one schema.
#[derive(Serialize, Default, Debug)]
pub(crate) struct Scan {
    /// `vulnerability` or `sbom`.
    #[serde(rename = "type")]
    pub ty: Option<String>,
    /// The vendor's status word, e.g. Harbor's `Success` / `Error` / `Stopped`.
    pub status: Option<String>,
    pub severity: Option<String>,
    pub total: Option<u64>,
    pub fixable: Option<u64>,
    /// Lower-cased severity name → count.
    pub summary: Option<Map<String, Value>>,
    pub scanner: Option<Scanner>,
    pub report_id: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub sbom_digest: Option<String>,
    pub error: Option<String>,
}

impl Scan {
    pub(crate) fn into_value(self) -> Value {
        // Serializing strings, integers and string-keyed maps cannot fail.
        serde_json::to_value(self).expect("a Scan always serializes")
    }
}
