//! Who may connect, and whose PROXY protocol headers are believed: IP networks in CIDR
//! notation ([`Cidr`]), the `unix` keyword ([`Source`]), and comma-separated lists of them
//! ([`List`]) as the command line takes them.
//!
//! The rules, in one place:
//!
//! - **`allow_from` / `deny_from`** ([`connection_allowed`]) are checked on the socket's peer
//!   address right after `accept`, before TLS, the PROXY header or HTTP. A peer in `deny_from`
//!   is refused; otherwise, when `allow_from` is not empty, a peer outside it is refused; every
//!   other peer is let in. So `deny_from` wins over `allow_from` (Net::Server's order). Unix
//!   socket peers have no address and are always let in.
//! - **`proxy_allow_from`** ([`Source::matches`]) says which peers' PROXY headers are believed:
//!   IP networks for TCP peers, `unix` for every connection on a Unix socket listener.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::Error;

/// An IP network: an address and a prefix length, such as `10.0.0.0/8` or `2001:db8::/32`.
/// A bare address is a single host (`/32` or `/128`). Bits past the prefix are cleared, so
/// `10.1.2.3/8` is `10.0.0.0/8`. IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are stored
/// as the IPv4 network they denote, and IPv4-mapped peers match IPv4 networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` leading bits; fails when the prefix is longer than
    /// the address (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, Error> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix)))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix)))
            }
            _ => {
                return Err(Error::new(format!(
                    "prefix /{prefix} is longer than the address {addr}"
                )))
            }
        };
        Ok(Cidr { addr, prefix })
    }

    /// One host: the address with a full-length prefix.
    pub fn host(addr: IpAddr) -> Cidr {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, prefix }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// `ADDR` or `ADDR/PREFIX`, IPv4 or IPv6 (without brackets).
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let bad = || {
            Error::new(format!(
                "{s:?} is not an IP address or network (like 10.0.0.0/8 or ::1)"
            ))
        };
        if s.eq_ignore_ascii_case("unix") {
            return Err(Error::new(
                "\"unix\" is not an IP network here (Unix socket peers are always allowed)",
            ));
        }
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        Cidr::new(addr, prefix).map_err(|e| Error::new(format!("{s:?}: {e}")))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A peer that may send a PROXY protocol header: an IP network, or (`unix`) any connection on
/// a Unix socket listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// TCP peers in this network.
    Ip(Cidr),
    /// Every peer on a Unix socket listener (the `unix` keyword).
    Unix,
}

impl Source {
    /// Whether a peer matches: `Some(ip)` for a TCP peer, `None` for a Unix socket peer.
    pub fn matches(&self, peer: Option<IpAddr>) -> bool {
        match (self, peer) {
            (Source::Ip(net), Some(ip)) => net.contains(ip),
            (Source::Unix, None) => true,
            _ => false,
        }
    }
}

impl FromStr for Source {
    type Err = Error;

    /// `unix`, or a network as [`Cidr`] parses it.
    fn from_str(s: &str) -> Result<Source, Error> {
        if s.trim().eq_ignore_ascii_case("unix") {
            Ok(Source::Unix)
        } else {
            s.parse().map(Source::Ip)
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ip(net) => net.fmt(f),
            Source::Unix => f.write_str("unix"),
        }
    }
}

/// A comma-separated list, as one command-line value takes it: `10.0.0.0/8, ::1,unix`.
/// Blanks around items are ignored, and an empty string is an empty list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr<Err = Error>> FromStr for List<T> {
    type Err = Error;

    fn from_str(s: &str) -> Result<List<T>, Error> {
        if s.trim().is_empty() {
            return Ok(List(Vec::new()));
        }
        s.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(List)
    }
}

impl<T: fmt::Display> fmt::Display for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

/// The default `proxy_allow_from`: this host (`127.0.0.0/8`, `::1`) and Unix socket peers.
pub fn default_proxy_allow_from() -> Vec<Source> {
    vec![
        Source::Ip(Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        }),
        Source::Ip(Cidr {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        }),
        Source::Unix,
    ]
}

/// Whether a TCP peer may connect: not in `deny`, and in `allow` unless `allow` is empty.
pub fn connection_allowed(peer: IpAddr, allow: &[Cidr], deny: &[Cidr]) -> bool {
    if deny.iter().any(|n| n.contains(peer)) {
        return false;
    }
    allow.is_empty() || allow.iter().any(|n| n.contains(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(cidr(" ::1 ").to_string(), "::1/128");
        assert_eq!(cidr("2001:db8:ff::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("::ffff:10.1.0.0/112").to_string(), "10.1.0.0/16");
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/0008",
            "10.0.0/8",
            "010.0.0.1",
            "[::1]",
            "localhost",
            "unix",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
        assert!("unix"
            .parse::<Cidr>()
            .unwrap_err()
            .to_string()
            .contains("always allowed"));
    }

    #[test]
    fn contains() {
        let n = cidr("192.168.0.0/16");
        assert!(n.contains(ip("192.168.255.1")));
        assert!(!n.contains(ip("192.169.0.1")));
        assert!(
            n.contains(ip("::ffff:192.168.1.1")),
            "v4-mapped counts as v4"
        );
        assert!(!n.contains(ip("::1")));
        let all4 = cidr("0.0.0.0/0");
        assert!(all4.contains(ip("8.8.8.8")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        let host = Cidr::host(ip("10.0.0.7"));
        assert!(host.contains(ip("10.0.0.7")) && !host.contains(ip("10.0.0.8")));
        assert_eq!(Cidr::host(ip("::ffff:1.2.3.4")).to_string(), "1.2.3.4/32");
    }

    #[test]
    fn sources_and_lists() {
        let l: List<Source> = "127.0.0.0/8, ::1 ,UNIX".parse().unwrap();
        assert_eq!(l.0, default_proxy_allow_from());
        assert_eq!(l.to_string(), "127.0.0.0/8,::1/128,unix");
        assert!(l.0.iter().any(|s| s.matches(None)));
        assert!(l.0.iter().any(|s| s.matches(Some(ip("127.3.4.5")))));
        assert!(!l.0.iter().any(|s| s.matches(Some(ip("10.0.0.1")))));
        assert_eq!("".parse::<List<Source>>().unwrap().0, vec![]);
        assert!("10.0.0.0/8,".parse::<List<Source>>().is_err());
        assert!("10.0.0.0/8,unix".parse::<List<Cidr>>().is_err());
        assert!(!Source::Unix.matches(Some(ip("127.0.0.1"))));
        assert!(!Source::Ip(cidr("0.0.0.0/0")).matches(None));
    }

    #[test]
    fn allow_then_deny() {
        let p = ip("10.1.2.3");
        assert!(connection_allowed(p, &[], &[]));
        assert!(connection_allowed(p, &[cidr("10.0.0.0/8")], &[]));
        assert!(!connection_allowed(p, &[cidr("192.168.0.0/16")], &[]));
        assert!(!connection_allowed(p, &[], &[cidr("10.1.0.0/16")]));
        // deny wins over allow
        assert!(!connection_allowed(
            p,
            &[cidr("10.0.0.0/8")],
            &[cidr("10.1.2.3")]
        ));
        assert!(connection_allowed(
            ip("10.9.9.9"),
            &[cidr("10.0.0.0/8")],
            &[cidr("10.1.2.3")]
        ));
    }
}
