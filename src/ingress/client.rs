//! The sender's address: the TCP peer, or behind a trusted proxy the address it forwarded.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;

use crate::config::Networks;

/// Who sent a request, as far as can be told.
///
/// A forwarding header is believed only from a peer in `trusted` (anyone can write one). Its
/// entries are read from the right, the one the nearest proxy appended: trusted proxies are
/// skipped, and the first address that is not one is the client. `Forwarded` (RFC 7239) wins
/// over `X-Forwarded-For` when both are there. `None` when the header a trusted proxy sent
/// names no address that can be read (`for=unknown`, an obfuscated identifier): such a sender
/// matches no allowlist.
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &Networks) -> Option<IpAddr> {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip()).to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let chain: Vec<&str> = if let Some(forwarded) = all_values(headers, "forwarded") {
        forwarded.iter().flat_map(|v| v.split(',')).filter_map(forwarded_for).collect()
    } else if let Some(xff) = all_values(headers, "x-forwarded-for") {
        xff.iter().flat_map(|v| v.split(',')).map(str::trim).collect()
    } else {
        return Some(peer);
    };
    let mut client = peer;
    for entry in chain.iter().rev() {
        client = parse_node(entry)?.to_canonical();
        if !trusted.contains(client) {
            return Some(client);
        }
    }
    Some(client)
}

/// Every value of a header that may be repeated, in order; `None` when absent.
fn all_values<'h>(headers: &'h HeaderMap, name: &str) -> Option<Vec<&'h str>> {
    let values: Vec<&str> = headers.get_all(name).filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then_some(values)
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })
}

/// `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]:4711`, `2001:db8::17`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn from(peer: &str, pairs: &[(&'static str, &'static str)], trusted: &[&str]) -> Option<String> {
        let peer = SocketAddr::new(peer.parse().unwrap(), 40000);
        let trusted = Networks::parse(trusted.iter().copied()).unwrap();
        client_address(Some(peer), &headers(pairs), &trusted).map(|ip| ip.to_string())
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(from("198.51.100.1", &xff, &[]).unwrap(), "198.51.100.1");
        assert_eq!(from("198.51.100.1", &xff, &["10.0.0.0/8"]).unwrap(), "198.51.100.1");
        assert_eq!(from("10.0.0.5", &xff, &["10.0.0.0/8"]).unwrap(), "203.0.113.9");
        // No header from the proxy: the proxy itself.
        assert_eq!(from("10.0.0.5", &[], &["10.0.0.0/8"]).unwrap(), "10.0.0.5");
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_trusted_proxy_is_the_client() {
        let trusted = ["10.0.0.0/8"];
        // A sender's own (forged) entry on the left does not count.
        let xff = [("x-forwarded-for", "192.0.2.1, 203.0.113.9, 10.0.0.7")];
        assert_eq!(from("10.0.0.5", &xff, &trusted).unwrap(), "203.0.113.9");
        let repeated = [("x-forwarded-for", "192.0.2.1"), ("x-forwarded-for", "203.0.113.9")];
        assert_eq!(from("10.0.0.5", &repeated, &trusted).unwrap(), "203.0.113.9");
        let forwarded = [
            ("forwarded", r#"for=192.0.2.1, for="[2001:db8::17]:4711";proto=https"#),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(from("10.0.0.5", &forwarded, &trusted).unwrap(), "2001:db8::17");
        let forwarded = [("forwarded", "for=198.51.100.7:80;by=10.0.0.1, For=10.1.1.1")];
        assert_eq!(from("10.0.0.5", &forwarded, &trusted).unwrap(), "198.51.100.7");
        // Every hop trusted: the leftmost.
        assert_eq!(
            from("10.0.0.5", &[("x-forwarded-for", "10.9.9.9, 10.0.0.7")], &trusted).unwrap(),
            "10.9.9.9"
        );
    }

    #[test]
    fn an_address_that_cannot_be_read_is_no_address() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(from("10.0.0.5", &[("forwarded", "for=unknown")], &trusted), None);
        assert_eq!(from("10.0.0.5", &[("forwarded", "for=_hidden, for=10.0.0.9")], &trusted), None);
        assert_eq!(from("10.0.0.5", &[("x-forwarded-for", "not-an-ip")], &trusted), None);
    }
}
