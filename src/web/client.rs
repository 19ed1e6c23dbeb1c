//! Who is on the other end of a request: the client's address, which the login and
//! API-key throttles count against. Behind a reverse proxy every connection comes from
//! the proxy, so its `X-Forwarded-For` is read, but only when the connection comes
//! from a proxy the operator listed (`--trusted-proxies`): anyone else could write any
//! address there and escape their own throttle or frame someone else's.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::TrustedProxies;

/// The client's address: the peer, or when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one (proxies append the address they saw,
/// so the list is read from the right; entries to the left of the first untrusted one
/// were written by the client and are ignored).
pub fn address(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    resolve(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
}

fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = peer?;
    // Several headers are one list, in order.
    let hops: Vec<&str> = forwarded.flat_map(|h| h.split(',')).map(str::trim).collect();
    for hop in hops.iter().rev() {
        if !trusted.contains(&client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip,
            // A hop a trusted proxy could not have written: stop at the proxy.
            None => break,
        }
    }
    Some(client)
}

/// `203.0.113.7`, `203.0.113.7:5100`, `2001:db8::1` or `[2001:db8::1]:5100`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// The key an address is counted under: IPv4 as it is, IPv6 by its /64 (a
/// subscriber's usual allocation, which a client can walk through at will).
pub fn throttle_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_proxy() {
        let proxy = trusted("10.0.0.0/8");
        // From the proxy: the address it appended.
        let via = resolve(Some(ip("10.0.0.5")), ["198.51.100.7"].into_iter(), &proxy);
        assert_eq!(via, Some(ip("198.51.100.7")));
        // From anyone else: the header is theirs, so it is ignored.
        let direct = resolve(Some(ip("203.0.113.9")), ["198.51.100.7"].into_iter(), &proxy);
        assert_eq!(direct, Some(ip("203.0.113.9")));
        // Nothing trusted: never read.
        let none = resolve(Some(ip("10.0.0.5")), ["198.51.100.7"].into_iter(), &trusted(""));
        assert_eq!(none, Some(ip("10.0.0.5")));
    }

    #[test]
    fn what_the_client_wrote_to_the_left_is_ignored() {
        let proxies = trusted("10.0.0.0/8");
        // The client sent "1.2.3.4"; the proxy appended the address it saw.
        let spoofed = resolve(Some(ip("10.0.0.5")), ["1.2.3.4, 198.51.100.7"].into_iter(), &proxies);
        assert_eq!(spoofed, Some(ip("198.51.100.7")));
        // Two trusted hops, the outer one appended by the inner: skipped too.
        let chain =
            resolve(Some(ip("10.0.0.5")), ["1.2.3.4", "198.51.100.7, 10.1.1.1"].into_iter(), &proxies);
        assert_eq!(chain, Some(ip("198.51.100.7")));
        // Garbage where a proxy's hop should be: the proxy itself is the client.
        let garbage = resolve(Some(ip("10.0.0.5")), ["unknown"].into_iter(), &proxies);
        assert_eq!(garbage, Some(ip("10.0.0.5")));
    }

    #[test]
    fn hops_with_ports_and_brackets_are_read() {
        assert_eq!(parse_hop("203.0.113.7:5100"), Some(ip("203.0.113.7")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("_hidden"), None);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_block() {
        let a = throttle_key(Some(ip("2001:db8:1:2:aaaa::1")));
        let b = throttle_key(Some(ip("2001:db8:1:2:bbbb::9")));
        assert_eq!(a, b);
        assert_ne!(a, throttle_key(Some(ip("2001:db8:1:3::1"))));
        assert_eq!(throttle_key(Some(ip("::ffff:192.0.2.1"))), "192.0.2.1");
        assert_eq!(throttle_key(Some(ip("192.0.2.1"))), "192.0.2.1");
    }
}
