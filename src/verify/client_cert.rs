//! Client certificates as a credential: what a verified certificate names, and whom an endpoint admits.

use serde::{Deserialize, Serialize};

use super::{Verifier, VerifyError};

/// `client_cert:` of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertMode {
    /// No request without an allowed certificate; the endpoint's other credential (if it has
    /// one) is checked as well.
    Required,
    /// An allowed certificate is enough; without one, the endpoint's other credential decides.
    Optional,
}

/// An endpoint's rule for client certificates, built at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertRule {
    pub mode: ClientCertMode,
    /// Names one of which the certificate must carry (a DNS SAN or the subject CN, compared
    /// case-insensitively); empty: any certificate the client CA issued.
    pub subjects: Vec<String>,
}

/// The names of the client certificate a connection presented. Only a certificate the TLS layer
/// verified against the client CA becomes one (see `tls::client_certificate`); the connection's
/// data holds it, so every request on the connection sees the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    names: Vec<String>,
}

impl ClientCertificate {
    /// The DNS SANs and the subject's common names of a DER certificate; `None` when it does not
    /// parse (rustls verified it already, so this does not happen with a real connection).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names: Vec<String> =
            cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_owned).collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            names.extend(san.value.general_names.iter().filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            }));
        }
        Some(Self { names })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The verifier of a request an allowed certificate proved on its own: the one check left, done.
static CERTIFIED: Verifier = Verifier::Unauthenticated;

impl ClientCertRule {
    /// Judges the connection's certificate and returns the verifier the request still goes
    /// through, and whether the certificate proved the sender (who then counts as proven for the
    /// upload slots). With `optional`, an allowed certificate stands in for the endpoint's other
    /// credential; a certificate that names none of the subjects is refused rather than ignored,
    /// so a misconfigured sender learns why at once.
    pub fn admit<'v>(
        &self,
        cert: Option<&ClientCertificate>,
        verifier: &'v Verifier,
    ) -> Result<(&'v Verifier, bool), VerifyError> {
        let Some(cert) = cert else {
            return match self.mode {
                ClientCertMode::Required => Err(VerifyError::MissingClientCertificate),
                ClientCertMode::Optional => Ok((verifier, false)),
            };
        };
        let allowed = self.subjects.is_empty()
            || cert.names.iter().any(|n| self.subjects.iter().any(|s| s.eq_ignore_ascii_case(n)));
        match (allowed, self.mode) {
            (false, _) => Err(VerifyError::ClientCertificateNotAllowed),
            (true, ClientCertMode::Required) => Ok((verifier, true)),
            (true, ClientCertMode::Optional) => Ok((&CERTIFIED, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{QueryToken, Scheme};

    fn cert(names: &[&str]) -> ClientCertificate {
        ClientCertificate { names: names.iter().map(|n| (*n).to_owned()).collect() }
    }

    fn rule(mode: ClientCertMode, subjects: &[&str]) -> ClientCertRule {
        ClientCertRule { mode, subjects: subjects.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn required_refuses_a_missing_or_unlisted_certificate_and_keeps_the_other_credential() {
        let token = Verifier::Token(QueryToken::new(["t0k3n"]));
        let r = rule(ClientCertMode::Required, &["quay.example.com"]);
        assert_eq!(r.admit(None, &token).unwrap_err(), VerifyError::MissingClientCertificate);
        assert_eq!(
            r.admit(Some(&cert(&["other.example.com"])), &token).unwrap_err(),
            VerifyError::ClientCertificateNotAllowed
        );
        let (v, proven) = r.admit(Some(&cert(&["Quay", "QUAY.example.com"])), &token).unwrap();
        assert!(proven);
        assert_eq!(v.scheme(), Scheme::Token);
        // No allowlist: any certificate of the client CA.
        assert!(rule(ClientCertMode::Required, &[]).admit(Some(&cert(&[])), &token).unwrap().1);
    }

    #[test]
    fn a_certificate_names_its_common_name_and_dns_names() {
        let mut params =
            rcgen::CertificateParams::new(vec!["quay.example.com".to_owned(), "10.0.0.1".to_owned()])
                .unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Quay");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        // The IP address SAN is no name to allow by.
        assert_eq!(ClientCertificate::from_der(&der).unwrap().names(), ["Quay", "quay.example.com"]);
        assert_eq!(ClientCertificate::from_der(b"not DER"), None);
    }

    #[test]
    fn optional_lets_an_allowed_certificate_stand_in_for_the_credential() {
        let token = Verifier::Token(QueryToken::new(["t0k3n"]));
        let r = rule(ClientCertMode::Optional, &["quay"]);
        let (v, proven) = r.admit(None, &token).unwrap();
        assert_eq!((v.scheme(), proven), (Scheme::Token, false));
        let (v, proven) = r.admit(Some(&cert(&["quay"])), &token).unwrap();
        assert_eq!((v.scheme(), proven), (Scheme::None, true));
        assert_eq!(
            r.admit(Some(&cert(&["mallory"])), &token).unwrap_err().reason(),
            "client_certificate_not_allowed"
        );
    }
}
