//! `Secret`: a configured credential that cannot reach `Debug`, `Display` or a log line by accident.

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
