//! What the dialects' unit tests all need to write expected occurrences briefly.

use chrono::{DateTime, Utc};

/// An owned optional string, for `Occurrence` fields.
pub(crate) fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// An RFC 3339 instant, for `Occurrence::time`.
pub(crate) fn at(rfc3339: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc))
}
