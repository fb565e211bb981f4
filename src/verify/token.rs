//! Fixed shared credentials: a header (Harbor's `Authorization`, or another a dialect names) and
//! MSR's `?token=`.

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::keys::{Finder, Keys, Matched};
use super::{header, VerifyError};

/// Digests of the accepted values. Comparing fixed-size digests keeps the comparison constant-time
/// in the length of the secret too, and the verifier never holds the secret text.
#[derive(Clone)]
pub(super) struct Accepted(Vec<[u8; 32]>);

impl Accepted {
    pub(super) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        Self(values.into_iter().map(digest).collect())
    }

    /// Checks every accepted value without an early exit, so timing does not tell which matched.
    pub(super) fn contains(&self, candidate: &str) -> bool {
        let d = digest(candidate);
        let hit = self.0.iter().fold(Choice::from(0), |acc, a| acc | a.ct_eq(&d));
        hit.into()
    }

    /// The position of the value `candidate` equals, checking every one (see [`Self::contains`]).
    pub(super) fn find(&self, candidate: &str, mode: &'static str) -> Option<Matched> {
        let d = digest(candidate);
        let mut finder = Finder::new();
        for (i, a) in self.0.iter().enumerate() {
            finder.check(i, 0, a.ct_eq(&d));
        }
        finder.found(&[mode])
    }
}

fn digest(v: &str) -> [u8; 32] {
    Sha256::digest(v.as_bytes()).into()
}

/// A header that must equal one configured value exactly: `Authorization` (Harbor, and the
/// senders that let their users set a header), or the one a dialect or endpoint names.
#[derive(Clone)]
pub struct AuthorizationHeader {
    header: HeaderName,
    accepted: Accepted,
    pub(super) keys: Keys,
}

impl AuthorizationHeader {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        Self::named(actix_web::http::header::AUTHORIZATION, values)
    }

    pub fn named<'a>(header: HeaderName, values: impl IntoIterator<Item = &'a str>) -> Self {
        Self { header, accepted: Accepted::new(values), keys: Keys::default() }
    }

    /// Labels and ends of the credentials, in the order the values were given.
    pub fn with_keys(self, keys: Keys) -> Self {
        Self { keys, ..self }
    }

    pub(super) fn verify(&self, headers: &HeaderMap) -> Result<Matched, VerifyError> {
        let value = header(headers, &self.header).ok_or(VerifyError::MissingCredential)?;
        self.accepted.find(value, "header").ok_or(VerifyError::InvalidCredential)
    }
}

impl std::fmt::Debug for AuthorizationHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthorizationHeader({}: {} values, redacted)", self.header, self.accepted.0.len())
    }
}

/// MSR: it cannot send headers, so the token rides in the URL (`?token=`). A proxy in front may
/// move it to `Authorization` (bare or `Bearer <token>`), which is accepted too.
#[derive(Clone)]
pub struct QueryToken(Accepted, pub(super) Keys);

impl QueryToken {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        Self(Accepted::new(values), Keys::default())
    }

    /// Labels and ends of the tokens, in the order the values were given.
    pub fn with_keys(self, keys: Keys) -> Self {
        Self(self.0, keys)
    }

    pub(super) fn verify(&self, headers: &HeaderMap, query: &str) -> Result<Matched, VerifyError> {
        let from_query =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
        let candidate = match (from_query, header(headers, AUTHORIZATION)) {
            (Some(t), _) => t,
            (None, Some(h)) => h.strip_prefix("Bearer ").unwrap_or(h).trim().to_owned(),
            (None, None) => return Err(VerifyError::MissingCredential),
        };
        self.0.find(&candidate, "token").ok_or(VerifyError::InvalidCredential)
    }
}

impl std::fmt::Debug for QueryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryToken({} values, redacted)", self.0 .0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(HeaderName::from_static("authorization"), HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn authorization_must_match_exactly() {
        let v = AuthorizationHeader::new(["Bearer s3cret", "Basic b2xk"]);
        let at = |index| Ok(Matched { index, mode: "header" });
        assert_eq!(v.verify(&headers(Some("Bearer s3cret"))), at(0));
        assert_eq!(v.verify(&headers(Some("Basic b2xk"))), at(1));
        assert_eq!(v.verify(&headers(Some("Bearer s3cre"))), Err(VerifyError::InvalidCredential));
        assert_eq!(v.verify(&headers(None)), Err(VerifyError::MissingCredential));
        assert!(!format!("{v:?}").contains("s3cret"));
    }

    #[test]
    fn token_from_query_or_proxy_header() {
        let v = QueryToken::new(["t/k+n"]);
        let ok = Ok(Matched { index: 0, mode: "token" });
        assert_eq!(v.verify(&headers(None), "a=1&token=t%2Fk%2Bn"), ok);
        assert_eq!(v.verify(&headers(Some("Bearer t/k+n")), ""), ok);
        assert_eq!(v.verify(&headers(Some("t/k+n")), ""), ok);
        assert_eq!(v.verify(&headers(None), "token=nope"), Err(VerifyError::InvalidCredential));
        assert_eq!(v.verify(&headers(None), ""), Err(VerifyError::MissingCredential));
    }
}
