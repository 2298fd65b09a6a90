//! The PROXY protocol, versions 1 and 2 (HAProxy's specification): a header a proxy sends at
//! the start of a connection, before any TLS or HTTP byte, naming the client it relays.
//!
//! This module only parses bytes ([`parse`], [`detect`]); the server reads them (see
//! [`Config::proxy_protocol`](crate::Config::proxy_protocol)).
//!
//! - **v1** is one text line of at most [`V1_MAX_LEN`] bytes:
//!   `PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n`, `PROXY TCP6 ...`, or `PROXY UNKNOWN`
//!   followed by anything up to the CRLF. Exactly one space between fields, addresses in their
//!   usual text form (no leading zeros in IPv4), ports 0 to 65535 without leading zeros.
//! - **v2** is binary: the 12-byte [`V2_SIGNATURE`], a version (2) and command (`LOCAL` or
//!   `PROXY`) byte, an address family and transport byte (`AF_UNSPEC`, `AF_INET`, `AF_INET6` or
//!   `AF_UNIX`, with `STREAM` or `DGRAM`), a 16-bit length, then that many bytes: the addresses
//!   and any TLVs, which are skipped. For `LOCAL` the whole block is ignored (the spec says so).
//!
//! What a header means for the client address is [`Header::client`].
//!
//! ```
//! use pagi_server::proxy_protocol::{parse, Command, Version};
//!
//! let bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\nGET / HTTP/1.1\r\n";
//! let (header, used) = parse(bytes).unwrap().unwrap();
//! assert_eq!(header.version, Version::V1);
//! assert_eq!(header.command, Command::Proxy);
//! assert_eq!(header.client().unwrap().unwrap().to_string(), "192.0.2.7:51000");
//! assert_eq!(&bytes[used..], b"GET / HTTP/1.1\r\n");
//! assert_eq!(parse(&bytes[..20]).unwrap(), None); // more bytes needed
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// How every v1 header starts.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version and command, family, length.
pub const V2_FIXED_LEN: usize = 16;

/// Which version of the protocol a header uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text form.
    V1,
    /// The binary form.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// What the header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// v2 only: the proxy made this connection itself (a health check, say); the real
    /// endpoints of the connection are the ones to use.
    Local,
    /// The connection is relayed for the client the addresses name (v1 headers are always
    /// this).
    Proxy,
}

/// The transport of the relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Not given (v1 `UNKNOWN`, v2 `AF_UNSPEC` or `LOCAL`).
    Unspec,
    /// A stream (TCP, or a stream Unix socket).
    Stream,
    /// Datagrams (UDP, or a datagram Unix socket); v2 only.
    Datagram,
}

/// The addresses a header carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// None: v1 `UNKNOWN`, v2 `AF_UNSPEC`, or a v2 `LOCAL` header (whose block is ignored).
    None,
    /// IPv4 or IPv6 source (the client) and destination (what it connected to).
    Inet {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// Unix socket paths (v2 `AF_UNIX`), without their trailing NUL padding.
    Unix {
        /// The client's socket path (often empty).
        source: Vec<u8>,
        /// The socket the client connected to.
        destination: Vec<u8>,
    },
}

/// A parsed PROXY protocol header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// v1 or v2.
    pub version: Version,
    /// `LOCAL` or `PROXY`.
    pub command: Command,
    /// The relayed connection's transport.
    pub transport: Transport,
    /// The relayed connection's endpoints.
    pub addresses: Addresses,
}

impl Header {
    /// What the header says the client's address is:
    ///
    /// - `None`: nothing; keep the connection's real peer (`LOCAL`, `UNKNOWN`, `AF_UNSPEC`);
    /// - `Some(Some(addr))`: an IPv4 or IPv6 client (`TCP4`, `TCP6`, `AF_INET`, `AF_INET6`);
    /// - `Some(None)`: a client on a Unix socket, which has no IP address (`AF_UNIX`).
    pub fn client(&self) -> Option<Option<SocketAddr>> {
        match (self.command, &self.addresses) {
            (Command::Local, _) | (_, Addresses::None) => None,
            (Command::Proxy, Addresses::Inet { source, .. }) => Some(Some(*source)),
            (Command::Proxy, Addresses::Unix { .. }) => Some(None),
        }
    }
}

/// Why bytes are not a valid PROXY protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The bytes do not start with `PROXY ` or the v2 signature.
    NotProxy,
    /// A v1 line without its CRLF within [`V1_MAX_LEN`] bytes.
    TooLong,
    /// A v1 line that breaks the grammar; the text says where.
    Malformed(&'static str),
    /// A v2 header with a version other than 2 (the high nibble of byte 13).
    Version(u8),
    /// A v2 command other than `LOCAL` (0) and `PROXY` (1).
    Command(u8),
    /// A v2 family and transport byte (byte 14) the spec does not define.
    Family(u8),
    /// A v2 length too short for the addresses of its family.
    Length {
        /// The family and transport byte.
        family: u8,
        /// The length the header gives.
        length: u16,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotProxy => f.write_str("no PROXY protocol signature"),
            ParseError::TooLong => write!(f, "v1 header without CRLF in {V1_MAX_LEN} bytes"),
            ParseError::Malformed(why) => write!(f, "malformed v1 header: {why}"),
            ParseError::Version(v) => write!(f, "v2 header with version {v}"),
            ParseError::Command(c) => write!(f, "v2 header with unknown command {c:#x}"),
            ParseError::Family(b) => write!(f, "v2 header with unknown family/transport {b:#04x}"),
            ParseError::Length { family, length } => write!(
                f,
                "v2 header length {length} is too short for family/transport {family:#04x}"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// What the first bytes of a connection look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detect {
    /// Too few bytes to tell: they are a prefix of a signature (or there are none).
    NeedMore,
    /// They start with `PROXY `.
    V1,
    /// They start with the v2 signature.
    V2,
    /// Not a PROXY protocol header.
    NotProxy,
}

/// Tells from the first bytes of a connection whether a PROXY header starts there, reading no
/// more than the signature (6 bytes for v1, 12 for v2).
pub fn detect(buf: &[u8]) -> Detect {
    if buf.is_empty() {
        return Detect::NeedMore;
    }
    for (sig, found) in [(V1_PREFIX, Detect::V1), (&V2_SIGNATURE[..], Detect::V2)] {
        let n = buf.len().min(sig.len());
        if buf[..n] == sig[..n] {
            return if n == sig.len() {
                found
            } else {
                Detect::NeedMore
            };
        }
    }
    Detect::NotProxy
}

/// Parses a header at the start of `buf`.
///
/// `Ok(Some((header, n)))`: a complete header of `n` bytes (what follows belongs to the next
/// layer); `Ok(None)`: `buf` is a valid start, more bytes are needed; `Err`: not a valid
/// header. Errors are reported as early as the bytes allow (a bad v2 version as soon as byte 13
/// is there), and no input makes it need more than [`V1_MAX_LEN`] bytes for v1 or
/// [`V2_FIXED_LEN`] + 65,535 for v2.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    match detect(buf) {
        Detect::NeedMore => Ok(None),
        Detect::NotProxy => Err(ParseError::NotProxy),
        Detect::V1 => parse_v1(buf),
        Detect::V2 => parse_v2(buf),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if window.len() >= V1_MAX_LEN {
            return Err(ParseError::TooLong);
        }
        // Without a LF yet, a CR can only be the last byte.
        if window[..window.len() - 1].contains(&b'\r') {
            return Err(ParseError::Malformed("CR inside the line"));
        }
        return Ok(None);
    };
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(ParseError::Malformed("line ends without CR"));
    };
    let line = &line[V1_PREFIX.len()..];
    if line.contains(&b'\r') {
        return Err(ParseError::Malformed("CR inside the line"));
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Malformed("not ASCII"))?;
    let consumed = lf + 1;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        // The receiver must ignore everything after UNKNOWN.
        let header = Header {
            version: Version::V1,
            command: Command::Proxy,
            transport: Transport::Unspec,
            addresses: Addresses::None,
        };
        return Ok(Some((header, consumed)));
    }
    let mut fields = line.split(' ');
    let mut next = |what: &'static str| match fields.next() {
        Some(f) if !f.is_empty() => Ok(f),
        _ => Err(ParseError::Malformed(what)),
    };
    let proto = next("no protocol")?;
    let (src, dst) = (next("no source address")?, next("no destination address")?);
    let (sport, dport) = (next("no source port")?, next("no destination port")?);
    if fields.next().is_some() {
        return Err(ParseError::Malformed("extra fields or spaces"));
    }
    let (src, dst) = match proto {
        "TCP4" => (
            v4(src).map_err(|_| ParseError::Malformed("bad TCP4 source address"))?,
            v4(dst).map_err(|_| ParseError::Malformed("bad TCP4 destination address"))?,
        ),
        "TCP6" => (
            v6(src).map_err(|_| ParseError::Malformed("bad TCP6 source address"))?,
            v6(dst).map_err(|_| ParseError::Malformed("bad TCP6 destination address"))?,
        ),
        _ => {
            return Err(ParseError::Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let sport = port(sport).ok_or(ParseError::Malformed("bad source port"))?;
    let dport = port(dport).ok_or(ParseError::Malformed("bad destination port"))?;
    let header = Header {
        version: Version::V1,
        command: Command::Proxy,
        transport: Transport::Stream,
        addresses: Addresses::Inet {
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        },
    };
    Ok(Some((header, consumed)))
}

fn v4(s: &str) -> Result<std::net::IpAddr, std::net::AddrParseError> {
    s.parse::<Ipv4Addr>().map(Into::into)
}

fn v6(s: &str) -> Result<std::net::IpAddr, std::net::AddrParseError> {
    s.parse::<Ipv6Addr>().map(Into::into)
}

/// A decimal port, 0 to 65535, without sign or leading zeros.
fn port(s: &str) -> Option<u16> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !ok {
        return None;
    }
    s.parse().ok()
}

/// Size of the address block of each v2 family (`fam >> 4`): UNSPEC, INET, INET6, UNIX.
const V2_ADDR_LEN: [usize; 4] = [0, 12, 36, 216];

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::Version(ver_cmd >> 4));
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        c => return Err(ParseError::Command(c)),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    // LOCAL: "the receiver must ... discard the protocol block including the family".
    let transport = match (command, family) {
        (Command::Local, _) | (_, 0x00) => Transport::Unspec,
        (_, 0x11 | 0x21 | 0x31) => Transport::Stream,
        (_, 0x12 | 0x22 | 0x32) => Transport::Datagram,
        _ => return Err(ParseError::Family(family)),
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(None);
    };
    let length = u16::from_be_bytes([hi, lo]);
    let need = match command {
        Command::Local => 0,
        Command::Proxy => V2_ADDR_LEN[usize::from(family >> 4) & 3],
    };
    if usize::from(length) < need {
        return Err(ParseError::Length { family, length });
    }
    let total = V2_FIXED_LEN + usize::from(length);
    let Some(block) = buf.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    // What follows the addresses (TLVs) is skipped.
    let addresses = match (command, family >> 4) {
        (Command::Proxy, 1) => {
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            Addresses::Inet {
                source: SocketAddr::new(ip(0).into(), be16(block, 8)),
                destination: SocketAddr::new(ip(4).into(), be16(block, 10)),
            }
        }
        (Command::Proxy, 2) => {
            let ip = |at: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(b)
            };
            Addresses::Inet {
                source: SocketAddr::new(ip(0).into(), be16(block, 32)),
                destination: SocketAddr::new(ip(16).into(), be16(block, 34)),
            }
        }
        (Command::Proxy, 3) => {
            let path = |b: &[u8]| b.split(|&c| c == 0).next().unwrap_or_default().to_vec();
            Addresses::Unix {
                source: path(&block[..108]),
                destination: path(&block[108..216]),
            }
        }
        _ => Addresses::None,
    };
    let header = Header {
        version: Version::V2,
        command,
        transport,
        addresses,
    };
    Ok(Some((header, total)))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ok(buf: &[u8]) -> (Header, usize) {
        match parse(buf) {
            Ok(Some(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8]) -> ParseError {
        match parse(buf) {
            Err(e) => e,
            other => panic!(
                "{:?}: expected an error, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    /// Every strict prefix needs more bytes, the whole parses, and extra bytes are not taken.
    fn byte_by_byte(header: &[u8]) -> Header {
        for i in 0..header.len() {
            assert_eq!(parse(&header[..i]), Ok(None), "prefix of {i} bytes");
        }
        let (h, n) = ok(header);
        assert_eq!(n, header.len());
        let mut more = header.to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01");
        assert_eq!(ok(&more), (h.clone(), header.len()));
        h
    }

    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    fn inet4_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 7, 198, 51, 100, 1];
        b.extend_from_slice(&51000u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    fn inet6_block() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&65535u16.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b
    }

    #[test]
    fn detects() {
        assert_eq!(detect(b""), Detect::NeedMore);
        assert_eq!(detect(b"PROX"), Detect::NeedMore);
        assert_eq!(detect(b"PROXY"), Detect::NeedMore);
        assert_eq!(detect(b"PROXY "), Detect::V1);
        assert_eq!(detect(b"PROXYZ"), Detect::NotProxy);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detect::NotProxy);
        assert_eq!(detect(b"PUT"), Detect::NotProxy);
        assert_eq!(detect(b"\x16\x03\x01"), Detect::NotProxy);
        assert_eq!(detect(b"\r\n\r\n\0\r\nQUI"), Detect::NeedMore);
        assert_eq!(detect(&V2_SIGNATURE), Detect::V2);
        assert_eq!(detect(b"\r\n\r\nGET"), Detect::NotProxy);
        assert_eq!(err(b"GET / HTTP/1.1\r\n"), ParseError::NotProxy);
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn v1_tcp4() {
        let h = byte_by_byte(b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n");
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.command, Command::Proxy);
        assert_eq!(h.transport, Transport::Stream);
        assert_eq!(
            h.addresses,
            Addresses::Inet {
                source: sa("192.0.2.7:51000"),
                destination: sa("198.51.100.1:443")
            }
        );
        assert_eq!(h.client(), Some(Some(sa("192.0.2.7:51000"))));
    }

    #[test]
    fn v1_tcp6() {
        let h = byte_by_byte(b"PROXY TCP6 2001:db8::7 ::1 0 65535\r\n");
        assert_eq!(
            h.addresses,
            Addresses::Inet {
                source: sa("[2001:db8::7]:0"),
                destination: sa("[::1]:65535")
            }
        );
        // The longest TCP6 header: 104 bytes.
        let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                        ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), 104);
        let h = byte_by_byte(longest);
        assert_eq!(
            h.client(),
            Some(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(u128::MAX)),
                65535
            )))
        );
        // An IPv4-mapped address is an IPv6 address in TCP6.
        let (h, _) = ok(b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n");
        assert_eq!(h.client(), Some(Some(sa("[::ffff:10.0.0.1]:1"))));
    }

    #[test]
    fn v1_unknown_keeps_the_real_peer() {
        let h = byte_by_byte(b"PROXY UNKNOWN\r\n");
        assert_eq!(h.addresses, Addresses::None);
        assert_eq!(h.transport, Transport::Unspec);
        assert_eq!(h.client(), None);
        // Whatever follows UNKNOWN on the line is ignored, up to the 107-byte limit.
        let (h, n) = ok(b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\nGET");
        assert_eq!((h.client(), n), (None, 43));
        // The spec's worst case: 107 bytes.
        let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                      ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(worst.len(), V1_MAX_LEN);
        assert_eq!(byte_by_byte(worst).client(), None);
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 2, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(ok(&long).1, V1_MAX_LEN);
        long.insert(20, b'x');
        assert_eq!(err(&long), ParseError::TooLong);
    }

    #[test]
    fn v1_malformed() {
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443 1\r\n",
            b"PROXY TCP4 192.0.2.7  198.51.100.1 51000 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443 \r\n",
            b"PROXY  TCP4 192.0.2.7 198.51.100.1 51000 443\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 51000 443\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 51000 443\r\n",
            b"PROXY TCP4 192.0.2.07 198.51.100.1 51000 443\r\n",
            b"PROXY TCP4 192.0.2 198.51.100.1 51000 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 051000 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +5 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 0x1bb\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 51000 443\r\n",
            b"PROXY tcp4 192.0.2.7 198.51.100.1 51000 443\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 [::1] ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 4\xc3\xa9\r\n",
        ];
        for b in bad {
            assert!(
                matches!(err(b), ParseError::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        // A CR that is not followed by LF fails as soon as the next byte arrives.
        assert!(matches!(err(b"PROXY TCP4\rx"), ParseError::Malformed(_)));
        assert_eq!(parse(b"PROXY TCP4\r"), Ok(None));
    }

    #[test]
    fn v1_oversized() {
        let mut b = b"PROXY TCP4 ".to_vec();
        b.resize(V1_MAX_LEN - 1, b'1');
        assert_eq!(parse(&b), Ok(None));
        b.push(b'1');
        assert_eq!(err(&b), ParseError::TooLong);
        b.extend_from_slice(b"\r\n");
        assert_eq!(err(&b), ParseError::TooLong);
        // A LF past the limit does not count.
        let mut b = b"PROXY UNKNOWN".to_vec();
        b.resize(200, b' ');
        b.extend_from_slice(b"\r\n");
        assert_eq!(err(&b), ParseError::TooLong);
    }

    #[test]
    fn v2_ipv4() {
        let bytes = v2(0x21, 0x11, &inet4_block());
        assert_eq!(bytes.len(), 28);
        let h = byte_by_byte(&bytes);
        assert_eq!(h.version, Version::V2);
        assert_eq!(h.command, Command::Proxy);
        assert_eq!(h.transport, Transport::Stream);
        assert_eq!(
            h.addresses,
            Addresses::Inet {
                source: sa("192.0.2.7:51000"),
                destination: sa("198.51.100.1:443")
            }
        );
        assert_eq!(h.client(), Some(Some(sa("192.0.2.7:51000"))));
        let (h, _) = ok(&v2(0x21, 0x12, &inet4_block()));
        assert_eq!(h.transport, Transport::Datagram);
    }

    #[test]
    fn v2_ipv6() {
        let h = byte_by_byte(&v2(0x21, 0x21, &inet6_block()));
        assert_eq!(
            h.addresses,
            Addresses::Inet {
                source: sa("[2001:db8::7]:65535"),
                destination: sa("[2001:db8::1]:0")
            }
        );
        let (h, _) = ok(&v2(0x21, 0x22, &inet6_block()));
        assert_eq!(h.transport, Transport::Datagram);
    }

    #[test]
    fn v2_unix() {
        let mut block = vec![0u8; 216];
        block[..9].copy_from_slice(b"/tmp/c.sk");
        block[108..117].copy_from_slice(b"/run/s.sk");
        let h = byte_by_byte(&v2(0x21, 0x31, &block));
        assert_eq!(
            h.addresses,
            Addresses::Unix {
                source: b"/tmp/c.sk".to_vec(),
                destination: b"/run/s.sk".to_vec()
            }
        );
        assert_eq!(h.client(), Some(None), "a Unix client has no IP address");
        assert_eq!(ok(&v2(0x21, 0x32, &block)).0.transport, Transport::Datagram);
    }

    #[test]
    fn v2_local_and_unspec_keep_the_real_peer() {
        // LOCAL with no block, with an address block, and with a family it ignores.
        for (family, block) in [
            (0x00, Vec::new()),
            (0x11, inet4_block()),
            (0xff, vec![1, 2, 3]),
        ] {
            let bytes = v2(0x20, family, &block);
            let h = byte_by_byte(&bytes);
            assert_eq!(h.command, Command::Local);
            assert_eq!(h.addresses, Addresses::None);
            assert_eq!(h.client(), None);
        }
        let h = byte_by_byte(&v2(0x21, 0x00, &[]));
        assert_eq!(
            (h.command, h.transport),
            (Command::Proxy, Transport::Unspec)
        );
        assert_eq!(h.client(), None);
        // AF_UNSPEC with bytes in the block: ignored.
        let (h, n) = ok(&v2(0x21, 0x00, &[9; 20]));
        assert_eq!((h.client(), n), (None, 36));
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut block = inet4_block();
        // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", a NOOP.
        block.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
        block.extend_from_slice(&[0x02, 0, 11]);
        block.extend_from_slice(b"example.com");
        block.extend_from_slice(&[0x04, 0, 0]);
        let bytes = v2(0x21, 0x11, &block);
        let h = byte_by_byte(&bytes);
        assert_eq!(h.client(), Some(Some(sa("192.0.2.7:51000"))));
        // The largest block a header can carry.
        let mut big = inet6_block();
        big.resize(65535, 0xaa);
        let bytes = v2(0x21, 0x21, &big);
        assert_eq!(parse(&bytes[..bytes.len() - 1]), Ok(None));
        assert_eq!(ok(&bytes).1, V2_FIXED_LEN + 65535);
    }

    #[test]
    fn v2_malformed() {
        // Version 1 and 3 in the binary form.
        assert_eq!(err(&v2(0x11, 0x11, &inet4_block())), ParseError::Version(1));
        assert_eq!(err(&v2(0x31, 0x11, &inet4_block())), ParseError::Version(3));
        assert_eq!(err(&v2(0x22, 0x11, &inet4_block())), ParseError::Command(2));
        assert_eq!(
            err(&v2(0x2f, 0x11, &inet4_block())),
            ParseError::Command(15)
        );
        for family in [0x01, 0x10, 0x13, 0x20, 0x41, 0x33, 0xff] {
            assert_eq!(
                err(&v2(0x21, family, &inet6_block())),
                ParseError::Family(family)
            );
        }
        // Length too short for the family's addresses.
        assert_eq!(
            err(&v2(0x21, 0x11, &inet4_block()[..11])),
            ParseError::Length {
                family: 0x11,
                length: 11
            }
        );
        assert_eq!(
            err(&v2(0x21, 0x21, &inet4_block())),
            ParseError::Length {
                family: 0x21,
                length: 12
            }
        );
        assert_eq!(
            err(&v2(0x21, 0x31, &[0; 215])),
            ParseError::Length {
                family: 0x31,
                length: 215
            }
        );
        // Errors show as soon as the byte that carries them arrives.
        let bytes = v2(0x31, 0x11, &inet4_block());
        assert_eq!(err(&bytes[..13]), ParseError::Version(3));
        let bytes = v2(0x21, 0x99, &inet4_block());
        assert_eq!(err(&bytes[..14]), ParseError::Family(0x99));
        let bytes = v2(0x21, 0x21, &[0; 8]);
        assert!(matches!(err(&bytes[..16]), ParseError::Length { .. }));
        // A corrupted signature is not a header at all.
        let mut bytes = v2(0x21, 0x11, &inet4_block());
        bytes[11] = b'X';
        assert_eq!(err(&bytes), ParseError::NotProxy);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            ParseError::Family(0x41).to_string(),
            "v2 header with unknown family/transport 0x41"
        );
        assert_eq!(
            ParseError::Malformed("bad source port").to_string(),
            "malformed v1 header: bad source port"
        );
        assert!(ParseError::TooLong.to_string().contains("107"));
    }
}
