//! Which addresses the server may connect to on a client's behalf (`jwks_uri`): never to
//! loopback, private, link-local, unique-local, unspecified or other special-purpose addresses
//! unless the operator names the host (issue 13 item 9: server-side request forgery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The hosts an operator allows although they resolve to non-public addresses (test setups).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    pub fn new(hosts: &[String]) -> Self {
        Self(hosts.iter().map(|h| normalise(h)).filter(|h| !h.is_empty()).collect())
    }

    /// Whether `host` (a URL's host: a name, an IPv4 literal or a bracketed IPv6 literal) was
    /// named by the operator.
    pub fn contains(&self, host: &str) -> bool {
        let host = normalise(host);
        self.0.contains(&host)
    }

    /// Whether connecting to `ip` for `host` is allowed.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip) || self.contains(host)
    }
}

fn normalise(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A URL host that is refused before any lookup: `localhost` names and non-public literals.
pub fn refused_literal(host: &str, allowed: &AllowedHosts) -> bool {
    if allowed.contains(host) {
        return false;
    }
    let h = normalise(host);
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(ip) => !is_public(ip),
        Err(_) => false,
    }
}

/// Whether `ip` is an ordinary public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network" (RFC 791)
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (RFC 6890)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (RFC 7526)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || a >= 240) // reserved (RFC 1112)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d), and NAT64 (64:ff9b::/96) carry an IPv4 address
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // 64:ff9b::/96 (RFC 6052) and the local-use 64:ff9b:1::/48 (RFC 8215): the IPv4 address
    // is in the last 32 bits
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    // 6to4 (2002::/16, RFC 3056) carries an IPv4 address too
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] == 0x2001 && s[1] == 0) // Teredo (RFC 4380): reaches IPv4 hosts through a relay
        || (s[0] & 0xfe00) == 0xfc00 // unique local (RFC 4193)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible and other reserved ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "64:ff9b:1::a9fe:a9fe",
            "192.88.99.1",
            "2002:a00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn literals_and_allowed_hosts() {
        let none = AllowedHosts::default();
        for h in [
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "127.0.0.1",
            "[::1]",
            "10.0.0.7",
        ] {
            assert!(refused_literal(h, &none), "{h}");
        }
        assert!(!refused_literal("client.example.org", &none));
        let some = AllowedHosts::new(&["localhost".into(), "::1".into()]);
        assert!(!refused_literal("localhost", &some));
        assert!(!refused_literal("[::1]", &some));
        assert!(some.permits("LocalHost", "127.0.0.1".parse().unwrap()));
        assert!(!some.permits("evil.example", "127.0.0.1".parse().unwrap()));
    }
}
