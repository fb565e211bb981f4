//! Which configured credential a request matched, found without an early exit, and its end.
//!
//! Rotation needs two answers: is the old secret still used (so it can go), and does it stop
//! working on its own once the rotation is over. A credential may carry a label (for metrics and
//! logs, never its value) and a `not_after`; each scheme reports the position that matched.

use subtle::{Choice, ConditionallySelectable};

use super::VerifyError;

/// Accumulates over every configured credential whether one matched and which (the first),
/// with the same work whichever it was.
pub(super) struct Finder {
    hit: Choice,
    index: u32,
    way: u8,
}

impl Finder {
    pub(super) fn new() -> Self {
        Self { hit: Choice::from(0), index: 0, way: 0 }
    }

    /// Credential `index` matched (or not) in the scheme's way number `way`: kept unless an
    /// earlier one did.
    pub(super) fn check(&mut self, index: usize, way: u8, matched: Choice) {
        let first = matched & !self.hit;
        self.index = u32::conditional_select(&self.index, &(index as u32), first);
        self.way = u8::conditional_select(&self.way, &way, first);
        self.hit |= matched;
    }

    /// The credential that matched and the way it did, as `modes[way]`.
    pub(super) fn found(&self, modes: &[&'static str]) -> Option<Matched> {
        bool::from(self.hit)
            .then(|| Matched { index: self.index as usize, mode: modes[usize::from(self.way)] })
    }
}

/// The credential a request matched: its position in the configuration, and how it matched
/// (Root: `standard` or `hex`; otherwise the scheme's one way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched {
    pub index: usize,
    pub mode: &'static str,
}

/// What is known of one credential besides its value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// A name for metrics and logs; the position (`#1`, `#2`, …) when not given.
    pub label: Option<String>,
    /// Unix seconds after which it is refused.
    pub not_after: Option<i64>,
}

/// Every credential's [`KeyInfo`], in configuration order; empty means "labelled by position,
/// never expiring".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys(Vec<KeyInfo>);

impl Keys {
    pub fn new(info: Vec<KeyInfo>) -> Self {
        Self(info)
    }

    /// For `check-config`: each credential's label and end, never its value.
    pub fn describe(&self, count: usize) -> Vec<serde_json::Value> {
        (0..count)
            .map(|i| {
                let end = self.0.get(i).and_then(|k| k.not_after);
                let end = end.and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|t| t.to_rfc3339());
                serde_json::json!({ "label": self.label(i), "not_after": end })
            })
            .collect()
    }

    /// The label of credential `index`.
    pub fn label(&self, index: usize) -> String {
        self.0.get(index).and_then(|k| k.label.clone()).unwrap_or_else(|| format!("#{}", index + 1))
    }

    /// A match is accepted unless its credential ended before `now`. Which one matched is no
    /// secret once it matched: the check may branch.
    pub(super) fn accept(&self, matched: Matched, now: i64) -> Result<Matched, VerifyError> {
        match self.0.get(matched.index).and_then(|k| k.not_after) {
            Some(end) if now > end => {
                tracing::warn!(credential = %self.label(matched.index), "a credential past its not_after was presented; refused");
                Err(VerifyError::ExpiredCredential)
            }
            _ => Ok(matched),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_match_is_found_whatever_follows() {
        let mut f = Finder::new();
        for (i, m) in [false, true, true, false].into_iter().enumerate() {
            f.check(i, i as u8 % 2, Choice::from(u8::from(m)));
        }
        assert_eq!(f.found(&["a", "b"]), Some(Matched { index: 1, mode: "b" }));
        let mut none = Finder::new();
        none.check(0, 0, Choice::from(0));
        assert_eq!(none.found(&["a"]), None);
    }

    #[test]
    fn an_ended_credential_is_refused_and_labels_default_to_positions() {
        let keys = Keys::new(vec![
            KeyInfo { label: Some("old".into()), not_after: Some(1_000) },
            KeyInfo::default(),
        ]);
        let m = |index| Matched { index, mode: "token" };
        assert_eq!(keys.accept(m(0), 1_000), Ok(m(0)), "still valid at its end");
        assert_eq!(keys.accept(m(0), 1_001), Err(VerifyError::ExpiredCredential));
        assert_eq!(keys.accept(m(1), i64::MAX), Ok(m(1)));
        assert_eq!((keys.label(0), keys.label(1)), ("old".to_owned(), "#2".to_owned()));
        assert_eq!(Keys::default().label(2), "#3");
    }
}
