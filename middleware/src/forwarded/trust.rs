//! [`TrustedProxies`]: which peers may speak for the client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The peers whose forwarding headers are believed: addresses, CIDR blocks, Unix-socket peers,
/// or everyone.
///
/// Built with [`TrustedProxies::parse`] from a comma-separated list such as
/// `"127.0.0.1, ::1, 10.0.0.0/8, fd00::/8, unix"`. The default trusts no one.
///
/// - An address (`192.0.2.1`, `2001:db8::1`, or `[2001:db8::1]`) trusts that address only.
/// - A CIDR block (`10.0.0.0/8`, `2001:db8::/32`) trusts every address in it. Host bits must be
///   zero (`10.0.0.1/8` is refused, so that a typo does not trust more, or less, than meant).
/// - `unix` trusts peers on a Unix socket: a scope with no `client` whose `server` is a
///   [`ServerAddr::Unix`](pagi::ServerAddr::Unix).
/// - `*` trusts every peer, on any transport.
///
/// IPv4 and IPv6 are matched in one space: a peer `::ffff:192.0.2.1` (an IPv4-mapped IPv6
/// address, as a dual-stack socket reports IPv4 clients) matches the entry `192.0.2.1` or
/// `192.0.2.0/24`, and an entry written in mapped form matches the plain IPv4 peer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
    unix: bool,
    any: bool,
}

/// One address block. Mapped IPv6 blocks are stored as IPv4.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses, CIDR blocks, `unix` and `*`.
    ///
    /// Whitespace around items (and around the `/` of a block) is ignored, and so are empty
    /// items, so `""` trusts no one. The keyword `unix` is case-insensitive.
    ///
    /// # Errors
    ///
    /// A message naming the first item that is not one of those forms, or a block with a prefix
    /// that is too long or host bits set.
    ///
    /// ```
    /// use pagi_middleware::forwarded::TrustedProxies;
    ///
    /// let t = TrustedProxies::parse(" 10.0.0.0/8 , ::1,unix ").unwrap();
    /// assert!(t.trusts(Some("10.20.30.40".parse().unwrap()), false));
    /// assert!(t.trusts(Some("::ffff:10.0.0.1".parse().unwrap()), false));
    /// assert!(t.trusts(None, true));
    /// assert!(!t.trusts(Some("192.0.2.1".parse().unwrap()), false));
    ///
    /// let err = TrustedProxies::parse("127.0.0.1, localhost").unwrap_err();
    /// assert!(err.contains("\"localhost\""));
    /// ```
    pub fn parse(spec: &str) -> Result<TrustedProxies, String> {
        let mut out = TrustedProxies::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                out.any = true;
            } else if item.eq_ignore_ascii_case("unix") {
                out.unix = true;
            } else {
                let net = parse_net(item)
                    .map_err(|why| format!("invalid trusted proxy {item:?}: {why}"))?;
                if !out.nets.contains(&net) {
                    out.nets.push(net);
                }
            }
        }
        Ok(out)
    }

    /// Whether a peer is trusted.
    ///
    /// `unix` says the peer came over a Unix socket (it then has no address, and `peer` is
    /// ignored); such a peer is trusted only with `unix` or `*` in the list. A TCP peer is
    /// trusted when its address is in one of the blocks, or with `*`. A peer that is neither
    /// (`None` and not `unix`) is trusted only with `*`.
    pub fn trusts(&self, peer: Option<IpAddr>, unix: bool) -> bool {
        if self.any {
            return true;
        }
        if unix {
            return self.unix;
        }
        match peer {
            Some(ip) => {
                let v4 = canonical(ip);
                self.nets.iter().any(|n| n.contains(ip) || n.contains(v4))
            }
            None => false,
        }
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for n in &self.nets {
            l.entry(&format_args!("{}/{}", n.addr, n.prefix));
        }
        if self.unix {
            l.entry(&format_args!("unix"));
        }
        if self.any {
            l.entry(&format_args!("*"));
        }
        l.finish()
    }
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask4(u32::from(a), self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask6(u128::from(a), self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask4(a: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => a & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask6(a: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => a & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_net(item: &str) -> Result<Net, String> {
    let (addr, prefix) = match item.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (item, None),
    };
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = bare
        .parse()
        .map_err(|_| "not an IP address, a CIDR block, `unix` or `*`".to_owned())?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match crate::util::parse_port(p) {
            Some(n) if n <= u16::from(max) => n as u8,
            _ => {
                return Err(format!(
                    "the prefix length must be a number from 0 to {max}"
                ))
            }
        },
    };
    let masked = match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask4(u32::from(a), prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask6(u128::from(a), prefix))),
    };
    if masked != ip {
        return Err(format!(
            "host bits are set (did you mean {masked}/{prefix}?)"
        ));
    }
    // A block inside ::ffff:0:0/96 is an IPv4 block written in IPv6 form.
    if let IpAddr::V6(v6) = ip {
        if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
            return Ok(Net {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
    }
    Ok(Net { addr: ip, prefix })
}
