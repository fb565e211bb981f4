//! Source networks (CIDRs): who may send to an endpoint, and which peers are trusted proxies.

use std::net::IpAddr;

/// One network: an address and how many leading bits of it must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    bits: u128,
    prefix: u8,
    v4: bool,
}

impl Cidr {
    fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("`{text}` is not an address or CIDR"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max),
            None => Some(max),
        }
        .ok_or_else(|| format!("`{text}`: the prefix length must be 0-{max}"))?;
        let bits = mask(bits_of(addr), prefix, max);
        Ok(Self { bits, prefix, v4: addr.is_ipv4() })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let max = if self.v4 { 32 } else { 128 };
        ip.is_ipv4() == self.v4 && mask(bits_of(ip), self.prefix, max) == self.bits
    }
}

/// An address's bits, right-aligned (IPv4 in the low 32).
fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The leading `prefix` of `max` bits of `bits`.
fn mask(bits: u128, prefix: u8, max: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX >> (128 - u32::from(max))) & !((1u128 << (max - p)) - 1),
    }
}

/// A list of networks; an address is in it when any of them contains it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks(Vec<Cidr>);

impl Networks {
    /// A comma-separated list (or the file's list, joined): `10.0.0.0/8, 192.0.2.7, 2001:db8::/32`.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let cidrs = items
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(cidrs))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|c| c.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For `check-config`.
    pub fn describe(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|c| {
                let addr: IpAddr = match c.v4 {
                    true => std::net::Ipv4Addr::from(c.bits as u32).into(),
                    false => std::net::Ipv6Addr::from(c.bits).into(),
                };
                format!("{addr}/{}", c.prefix)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_what_they_should_and_nothing_else() {
        let n = Networks::parse("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,172.16.5.9/20".split(',')).unwrap();
        for yes in
            ["10.255.1.2", "192.0.2.7", "::ffff:10.1.1.1", "2001:db8:ffff::1", "172.16.0.1", "172.16.15.255"]
        {
            assert!(n.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "172.16.16.0", "::1"] {
            assert!(!n.contains(ip(no)), "{no}");
        }
        assert_eq!(n.describe(), ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "172.16.0.0/20"]);
        let all = Networks::parse(["0.0.0.0/0", "::/0"]).unwrap();
        assert!(all.contains(ip("203.0.113.1")) && all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(Networks::parse(["10.0.0.0/33"]).unwrap_err().contains("0-32"));
        assert!(Networks::parse(["2001:db8::/129"]).unwrap_err().contains("0-128"));
        assert!(Networks::parse(["example.com"]).unwrap_err().contains("example.com"));
        assert!(Networks::parse(["10.0.0.0/x"]).is_err());
        assert!(Networks::parse(["", " "]).unwrap().is_empty());
    }
}
