//! `data.original`: the vendor payload carried verbatim, as compact JSON text, without building
//! and re-serializing a `serde_json::Value` tree per event.

use bytes::Bytes;

/// The payload's JSON text with the whitespace between tokens removed, so a pretty-printed body
/// stays on one line of the file sink's JSON Lines. Strings, numbers and escapes are kept byte
/// for byte: consumers see exactly what the registry sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original(Bytes);

/// Why a body cannot be carried as JSON text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginalError {
    #[error("unbalanced string or escape at byte {0}")]
    Malformed(usize),
    /// JSON parsers that decode into UTF-8 strings (serde_json among them) refuse these, so a
    /// consumer could not read the event.
    #[error("unpaired UTF-16 surrogate escape at byte {0}")]
    LoneSurrogate(usize),
}

impl Original {
    /// Compacts `json`, which the caller has already parsed as a JSON document (this is not a
    /// validator). It still refuses what a decoding parser would choke on: unpaired surrogate
    /// escapes, which a parser that skips unused fields lets through.
    pub fn compact(json: &[u8]) -> Result<Self, OriginalError> {
        let mut out = Vec::with_capacity(json.len());
        let mut i = 0;
        while i < json.len() {
            // Structure between strings is short: copy it up to the next blank or string.
            let run = json[i..]
                .iter()
                .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'"'))
                .map_or(json.len(), |n| i + n);
            out.extend_from_slice(&json[i..run]);
            i = run;
            match json.get(i) {
                Some(b'"') => {
                    let end = string_end(json, i)?;
                    out.extend_from_slice(&json[i..end]);
                    i = end;
                }
                Some(_) => i += 1,
                None => {}
            }
        }
        Ok(Self(out.into()))
    }

    /// JSON text serde_json wrote (compact, and valid: it came from a parsed tree).
    pub fn from_rendered(json: Vec<u8>) -> Self {
        Self(json.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The index just past the closing quote of the string opening at `start`, checking that every
/// `\u` escape of a surrogate comes as a high-low pair. Jumps from one `"` or `\\` to the next.
fn string_end(json: &[u8], start: usize) -> Result<usize, OriginalError> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', &json[i..]).ok_or(OriginalError::Malformed(start))?;
        if json[i] == b'"' {
            return Ok(i + 1);
        }
        match json.get(i + 1) {
            Some(b'u') => match unit(json, i) {
                Some(0xD800..=0xDBFF) => {
                    // A high surrogate must be followed at once by a low one.
                    let low = i + 6;
                    if !matches!(unit(json, low), Some(0xDC00..=0xDFFF)) {
                        return Err(OriginalError::LoneSurrogate(low));
                    }
                    i = low + 6;
                }
                Some(0xDC00..=0xDFFF) => return Err(OriginalError::LoneSurrogate(i)),
                Some(_) => i += 6,
                None => return Err(OriginalError::Malformed(i)),
            },
            Some(_) => i += 2,
            None => return Err(OriginalError::Malformed(i)),
        }
    }
}

/// The code unit of the `\uXXXX` escape whose backslash is at `at`, if there is one.
fn unit(json: &[u8], at: usize) -> Option<u16> {
    if json.get(at..at + 2) != Some(b"\\u") {
        return None;
    }
    let hex = std::str::from_utf8(json.get(at + 2..at + 6)?).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(s: &str) -> Result<String, OriginalError> {
        Original::compact(s.as_bytes()).map(|o| String::from_utf8(o.as_bytes().to_vec()).unwrap())
    }

    #[test]
    fn whitespace_between_tokens_goes_and_strings_stay_verbatim() {
        let pretty = "{\n  \"a\" : [ 1 , 2.50 ],\r\n\t\"b\": \"x  y\\n\\\" \\u00e9 \\ud83d\\ude00\" }\n";
        assert_eq!(compact(pretty).unwrap(), r#"{"a":[1,2.50],"b":"x  y\n\" \u00e9 \ud83d\ude00"}"#);
        // Same document as serde_json reads it.
        let a: serde_json::Value = serde_json::from_str(pretty).unwrap();
        let b: serde_json::Value = serde_json::from_str(&compact(pretty).unwrap()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn unpaired_surrogates_are_refused() {
        assert_eq!(compact(r#"{"a":"\ud83d"}"#), Err(OriginalError::LoneSurrogate(12)));
        assert_eq!(compact(r#"{"a":"\ude00"}"#), Err(OriginalError::LoneSurrogate(6)));
        assert_eq!(compact(r#"{"a":"\ud83dx"}"#), Err(OriginalError::LoneSurrogate(12)));
        assert_eq!(compact(r#"{"a":"\ud83d\n"}"#), Err(OriginalError::LoneSurrogate(12)));
        assert!(matches!(compact(r#"{"a":"open"#), Err(OriginalError::Malformed(_))));
    }
}
