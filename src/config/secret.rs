//! `Secret`: a configured credential that cannot reach `Debug`, `Display` or a log line by accident;
//! in the file, optionally with a label and an end (`not_after`) for rotations.

use crate::verify::{KeyInfo, Keys};

/// Holds a credential; formatting prints `[redacted]`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What `check-config` prints: the length and nothing else of the value.
    pub fn masked(&self) -> String {
        format!("[redacted, {} chars]", self.0.chars().count())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One credential of the file: the value alone, or with a label (named in metrics and logs
/// instead of its position) and an end after which it is refused, so that the old secret of a
/// rotation stops working by itself.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum CredentialFile {
    Value(Secret),
    Described(Described),
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Described {
    value: Secret,
    label: Option<String>,
    /// RFC 3339 (`2026-12-31T23:59:59Z`).
    not_after: Option<String>,
}

/// The values of `list` and what is known of each; `key` names the list in errors.
pub fn split(list: &[CredentialFile], key: &str) -> Result<(Vec<Secret>, Keys), super::ConfigError> {
    let mut values = Vec::with_capacity(list.len());
    let mut info = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        match c {
            CredentialFile::Value(v) => {
                values.push(v.clone());
                info.push(KeyInfo::default());
            }
            CredentialFile::Described(d) => {
                let not_after = d
                    .not_after
                    .as_deref()
                    .map(|t| {
                        chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp()).map_err(|e| {
                            super::ConfigError::invalid(
                                format!("{key}[{i}].not_after"),
                                format!("`{t}` is not an RFC 3339 time ({e})"),
                            )
                        })
                    })
                    .transpose()?;
                values.push(d.value.clone());
                info.push(KeyInfo { label: d.label.clone(), not_after });
            }
        }
    }
    Ok((values, Keys::new(info)))
}
