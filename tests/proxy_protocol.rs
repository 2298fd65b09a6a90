//! The PROXY protocol (v1 and v2) and connection-level allow/deny lists, over real sockets:
//! raw TCP and Unix clients writing headers byte for byte, a rustls client that sends a header
//! before its TLS handshake, and `curl --haproxy-protocol` (a v1 sender nobody here wrote) in
//! cleartext, over TLS and over a Unix socket.
//!
//! The app answers every request with `CLIENT SCHEME`, where CLIENT is the scope's `client`
//! (`-` when there is none), so each test sees which address the server settled on. Every wait
//! is bounded (reads 5 s, child processes 5 s).

mod common;

use common::{serve, serve_on, try_serve_on, TestServer};
use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
use pagi_server::access::{Cidr, Source};
use pagi_server::tls::TlsConfig;
use pagi_server::{Config, LifespanMode, LocalAddr, ProxyProtocol};
use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The v2 signature.
const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A request that closes the connection after its response.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// The app, the server, headers
// ---------------------------------------------------------------------------------------------

async fn app(scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    let Scope::Http(req) = scope else {
        return Err("http scopes only".into());
    };
    let client = req
        .client
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let body = format!("{client} {}", req.scheme.as_str());
    tx.send(SendEvent::start(
        200,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    tx.send(SendEvent::body(body, false)).await?;
    Ok(())
}

/// A server on 127.0.0.1:0 with the PROXY protocol in `mode` and `cfg` applied after.
fn start(mode: ProxyProtocol, cfg: impl FnOnce(&mut Config)) -> TestServer {
    serve(app, move |c| {
        c.lifespan = LifespanMode::Off;
        c.proxy_protocol = mode;
        cfg(c);
    })
}

fn cidrs(list: &str) -> Vec<Cidr> {
    list.split(',').map(|s| s.parse().unwrap()).collect()
}

fn sources(list: &str) -> Vec<Source> {
    list.split(',').map(|s| s.parse().unwrap()).collect()
}

/// A v2 header: version 2 with `command` (0 LOCAL, 1 PROXY), `family`, then `block`.
fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = SIG.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

/// A v2 PROXY header for a TCP connection from `src` to `dst` (both v4 or both v6), with
/// `tlvs` after the addresses.
fn v2_tcp(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let family = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    block.extend_from_slice(&src.port().to_be_bytes());
    block.extend_from_slice(&dst.port().to_be_bytes());
    block.extend_from_slice(tlvs);
    v2(1, family, &block)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// Raw clients
// ---------------------------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// How a connection ended: the bytes the server sent before closing it, or `None` if it was
/// still open after `limit`.
fn until_closed<S: Read>(s: &mut S, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(out), // reset
        }
    }
    None
}

fn set_short_reads(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
}

/// Sends `bytes` on a new connection and returns the response body (the request must close
/// the connection). Panics on anything but a 200.
fn body_of(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    set_short_reads(&s);
    let resp = until_closed(&mut s, Duration::from_secs(5)).expect("the response");
    response_body(&resp)
}

fn response_body(resp: &[u8]) -> String {
    let text = String::from_utf8_lossy(resp);
    assert!(text.starts_with("HTTP/1.1 200 "), "response: {text:?}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Asserts that the server closes the connection after `bytes` without sending anything.
fn assert_closed_silently(addr: SocketAddr, bytes: &[u8]) {
    let mut s = connect(addr);
    // The server may already have closed; a failed write is fine.
    let _ = s.write_all(bytes);
    set_short_reads(&s);
    match until_closed(&mut s, Duration::from_secs(5)) {
        Some(got) => assert!(
            got.is_empty(),
            "expected a silent close after {:?}, got {:?}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&got)
        ),
        None => panic!(
            "the connection stayed open after {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Runs curl (silent, errors shown, 5 s cap; killed after 10 s); returns (success, stdout,
/// stderr).
fn curl(args: &[&OsStr]) -> (bool, String, String) {
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--noproxy", "*"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("these tests need curl, which could not be run: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("curl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

// ---------------------------------------------------------------------------------------------
// Headers the app sees through
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_tcp4_sets_the_client() {
    let srv = start(ProxyProtocol::V1, |_| {});
    let header = b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n";
    // The header and the request in one write.
    assert_eq!(
        body_of(srv.addr(), &cat(&[header, GET])),
        "203.0.113.7:40000 http"
    );
}

#[test]
fn v1_tcp6_sets_the_client() {
    let srv = start(ProxyProtocol::V1, |_| {});
    let header = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n";
    assert_eq!(
        body_of(srv.addr(), &cat(&[header, GET])),
        "[2001:db8::7]:65535 http"
    );
}

#[test]
fn v2_ipv4_and_ipv6_set_the_client() {
    for mode in [ProxyProtocol::V2, ProxyProtocol::Auto] {
        let srv = start(mode, |_| {});
        let h4 = v2_tcp(sa("192.0.2.44:1234"), sa("192.0.2.1:443"), &[]);
        assert_eq!(
            body_of(srv.addr(), &cat(&[&h4, GET])),
            "192.0.2.44:1234 http"
        );
        let h6 = v2_tcp(sa("[2001:db8::44]:5678"), sa("[2001:db8::1]:443"), &[]);
        assert_eq!(
            body_of(srv.addr(), &cat(&[&h6, GET])),
            "[2001:db8::44]:5678 http"
        );
    }
}

#[test]
fn v2_tlvs_are_skipped() {
    let srv = start(ProxyProtocol::V2, |_| {});
    // PP2_TYPE_ALPN "http/1.1", PP2_TYPE_AUTHORITY "example.com", and a NOOP with padding.
    let mut tlvs = vec![0x01, 0, 8];
    tlvs.extend_from_slice(b"http/1.1");
    tlvs.extend_from_slice(&[0x02, 0, 11]);
    tlvs.extend_from_slice(b"example.com");
    tlvs.extend_from_slice(&[0x04, 0x01, 0x2c]); // 300 bytes
    tlvs.extend_from_slice(&[0; 300]);
    let h = v2_tcp(sa("192.0.2.45:999"), sa("192.0.2.1:443"), &tlvs);
    assert_eq!(body_of(srv.addr(), &cat(&[&h, GET])), "192.0.2.45:999 http");
}

#[test]
fn auto_takes_both_versions() {
    let srv = start(ProxyProtocol::Auto, |_| {});
    let v1 = b"PROXY TCP4 203.0.113.8 198.51.100.1 1 2\r\n";
    assert_eq!(body_of(srv.addr(), &cat(&[v1, GET])), "203.0.113.8:1 http");
    let h = v2_tcp(sa("203.0.113.9:3"), sa("198.51.100.1:4"), &[]);
    assert_eq!(body_of(srv.addr(), &cat(&[&h, GET])), "203.0.113.9:3 http");
}

#[test]
fn v2_local_and_unknown_keep_the_real_peer() {
    let srv = start(ProxyProtocol::Auto, |_| {});
    for header in [
        v2(0, 0x00, &[]),
        // LOCAL ignores whatever block it carries.
        v2(
            0,
            0x11,
            &v2_tcp(sa("1.2.3.4:5"), sa("6.7.8.9:10"), &[])[16..],
        ),
        // PROXY with AF_UNSPEC.
        v2(1, 0x00, &[]),
        b"PROXY UNKNOWN\r\n".to_vec(),
        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
    ] {
        let mut s = connect(srv.addr());
        let real = s.local_addr().unwrap();
        s.write_all(&cat(&[&header, GET])).unwrap();
        set_short_reads(&s);
        let resp = until_closed(&mut s, Duration::from_secs(5)).expect("response");
        assert_eq!(response_body(&resp), format!("{real} http"), "{header:?}");
    }
}

#[test]
fn header_split_across_many_writes() {
    let srv = start(ProxyProtocol::Auto, |_| {});
    let v1 = b"PROXY TCP4 203.0.113.10 198.51.100.1 5000 80\r\n".to_vec();
    let v2h = v2_tcp(sa("[2001:db8::10]:6000"), sa("[2001:db8::1]:80"), &[]);
    for (header, want) in [
        (v1, "203.0.113.10:5000 http"),
        (v2h, "[2001:db8::10]:6000 http"),
    ] {
        let mut s = connect(srv.addr());
        // One byte per write, with pauses, so every byte arrives in its own segment.
        for b in &header {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        std::thread::sleep(Duration::from_millis(20));
        // The request in two more pieces.
        s.write_all(&GET[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(&GET[10..]).unwrap();
        set_short_reads(&s);
        let resp = until_closed(&mut s, Duration::from_secs(5)).expect("response");
        assert_eq!(response_body(&resp), want);
    }
}

#[test]
fn header_and_pipelined_requests_in_one_write() {
    let srv = start(ProxyProtocol::V1, |_| {});
    let mut bytes = b"PROXY TCP4 203.0.113.11 198.51.100.1 7 8\r\n".to_vec();
    bytes.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    bytes.extend_from_slice(GET);
    let mut s = connect(srv.addr());
    s.write_all(&bytes).unwrap();
    set_short_reads(&s);
    let resp = until_closed(&mut s, Duration::from_secs(5)).expect("responses");
    let text = String::from_utf8_lossy(&resp);
    assert_eq!(common::count_responses(&text), 2, "{text}");
    assert_eq!(text.matches("203.0.113.11:7 http").count(), 2, "{text}");
}

#[test]
fn keep_alive_requests_keep_the_proxied_client() {
    // Every request of the connection gets the header's client.
    let srv = start(ProxyProtocol::V2, |_| {});
    let mut s = connect(srv.addr());
    s.write_all(&v2_tcp(
        sa("198.51.100.77:4242"),
        sa("198.51.100.1:80"),
        &[],
    ))
    .unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let (head, body) = common::read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"198.51.100.77:4242 http");
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn trusted_peer_without_a_header_is_closed() {
    let srv = start(ProxyProtocol::Auto, |_| {});
    assert_closed_silently(srv.addr(), GET);
    // The server goes on serving.
    let ok = cat(&[b"PROXY TCP4 203.0.113.12 198.51.100.1 1 2\r\n", GET]);
    assert_eq!(body_of(srv.addr(), &ok), "203.0.113.12:1 http");
}

#[test]
fn untrusted_peer_with_a_header_is_closed_and_without_one_is_served() {
    let srv = start(ProxyProtocol::Auto, |c| {
        c.proxy_allow_from = sources("10.0.0.0/8,unix");
    });
    assert_closed_silently(
        srv.addr(),
        &cat(&[b"PROXY TCP4 203.0.113.13 198.51.100.1 1 2\r\n", GET]),
    );
    let h = v2_tcp(sa("203.0.113.13:1"), sa("198.51.100.1:2"), &[]);
    assert_closed_silently(srv.addr(), &cat(&[&h, GET]));
    // Even a header that has not finished yet (the signature is enough).
    assert_closed_silently(srv.addr(), b"PROXY ");
    // Without a header, the peer is served as itself.
    let mut s = connect(srv.addr());
    let real = s.local_addr().unwrap();
    s.write_all(GET).unwrap();
    set_short_reads(&s);
    let resp = until_closed(&mut s, Duration::from_secs(5)).expect("response");
    assert_eq!(response_body(&resp), format!("{real} http"));
    // An empty list trusts nobody.
    let srv = start(ProxyProtocol::V1, |c| c.proxy_allow_from.clear());
    assert_closed_silently(
        srv.addr(),
        &cat(&[b"PROXY TCP4 203.0.113.13 198.51.100.1 1 2\r\n", GET]),
    );
    assert!(body_of(srv.addr(), GET).starts_with("127.0.0.1:"));
}

#[test]
fn garbage_and_oversized_headers_are_closed_and_others_still_served() {
    let srv = start(ProxyProtocol::Auto, |_| {});
    let mut oversized = b"PROXY TCP4 ".to_vec();
    oversized.resize(300, b'1');
    let bad: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 203.0.113.14 198.51.100.1 1\r\n".to_vec(),
        b"PROXY TCP4 999.0.113.14 198.51.100.1 1 2\r\n".to_vec(),
        b"PROXY TCP5 203.0.113.14 198.51.100.1 1 2\r\n".to_vec(),
        b"PROXY TCP4 203.0.113.14 198.51.100.1 1 2\n".to_vec(),
        oversized,
        v2(2, 0x11, &[0; 12]),                            // unknown command
        v2(1, 0x41, &[0; 12]),                            // unknown family
        v2(1, 0x21, &[0; 12]),                            // too short for IPv6
        cat(&[&SIG[..], &[0x11, 0x11, 0, 12], &[0; 12]]), // version 1 in binary form
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
    ];
    for b in &bad {
        assert_closed_silently(srv.addr(), &cat(&[b, GET]));
        let good = cat(&[b"PROXY TCP4 203.0.113.15 198.51.100.1 9 9\r\n", GET]);
        assert_eq!(body_of(srv.addr(), &good), "203.0.113.15:9 http");
    }
}

#[test]
fn a_version_the_server_does_not_take_is_closed() {
    let srv = start(ProxyProtocol::V1, |_| {});
    let h = v2_tcp(sa("203.0.113.16:1"), sa("198.51.100.1:2"), &[]);
    assert_closed_silently(srv.addr(), &cat(&[&h, GET]));
    let srv = start(ProxyProtocol::V2, |_| {});
    assert_closed_silently(
        srv.addr(),
        &cat(&[b"PROXY TCP4 203.0.113.16 198.51.100.1 1 2\r\n", GET]),
    );
}

#[test]
fn a_header_that_never_completes_times_out() {
    let srv = start(ProxyProtocol::Auto, |c| {
        c.timeout_header_read = Duration::from_millis(300);
    });
    for partial in [
        &b"PROXY TCP4 203.0.113.17 "[..],
        &SIG[..7],
        &v2_tcp(sa("1.2.3.4:5"), sa("6.7.8.9:10"), &[])[..20],
        b"",
    ] {
        let started = Instant::now();
        let mut s = connect(srv.addr());
        s.write_all(partial).unwrap();
        set_short_reads(&s);
        let got = until_closed(&mut s, Duration::from_secs(5)).expect("closed by the timeout");
        let took = started.elapsed();
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "closed after {took:?}"
        );
    }
}

#[test]
fn shutdown_does_not_wait_for_a_header() {
    let srv = start(ProxyProtocol::Auto, |c| {
        c.timeout_header_read = Duration::from_secs(60);
        c.shutdown_timeout = Duration::from_secs(30);
    });
    let mut s = connect(srv.addr());
    s.write_all(b"PROXY TCP4 ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    srv.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited"
    );
    set_short_reads(&s);
    assert_eq!(
        until_closed(&mut s, Duration::from_secs(2)),
        Some(Vec::new())
    );
}

// ---------------------------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------------------------

fn unix_body(path: &Path, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = UnixStream::connect(path).expect("connect unix");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _ = s.write_all(bytes);
    until_closed(&mut s, Duration::from_secs(5))
}

#[test]
fn unix_listener_gets_a_client_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pp.sock");
    let spec = format!("unix:{}", sock.display());
    let srv = serve_on(app, &[&spec], |c| {
        c.lifespan = LifespanMode::Off;
        c.proxy_protocol = ProxyProtocol::Auto;
    });
    let path = srv.unix_path();
    let got = unix_body(
        &path,
        &cat(&[b"PROXY TCP4 203.0.113.20 198.51.100.1 1 2\r\n", GET]),
    );
    assert_eq!(response_body(&got.unwrap()), "203.0.113.20:1 http");
    let h = v2_tcp(sa("[2001:db8::20]:3"), sa("[2001:db8::1]:4"), &[]);
    let got = unix_body(&path, &cat(&[&h, GET]));
    assert_eq!(response_body(&got.unwrap()), "[2001:db8::20]:3 http");
    // UNKNOWN, LOCAL and AF_UNIX: no address.
    let mut unix_block = vec![0u8; 216];
    unix_block[..6].copy_from_slice(b"/c.sck");
    for h in [
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2(0, 0, &[]),
        v2(1, 0x31, &unix_block),
    ] {
        let got = unix_body(&path, &cat(&[&h, GET]));
        assert_eq!(response_body(&got.unwrap()), "- http");
    }
    // Without a header: closed (unix is trusted by default, so one is required).
    assert_eq!(unix_body(&path, GET), Some(Vec::new()));
}

#[test]
fn unix_peers_are_untrusted_without_the_keyword() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("unix:{}", dir.path().join("pp.sock").display());
    let srv = serve_on(app, &[&spec], |c| {
        c.lifespan = LifespanMode::Off;
        c.proxy_protocol = ProxyProtocol::V1;
        c.proxy_allow_from = sources("127.0.0.1");
    });
    let path = srv.unix_path();
    let got = unix_body(
        &path,
        &cat(&[b"PROXY TCP4 203.0.113.21 198.51.100.1 1 2\r\n", GET]),
    );
    assert_eq!(got, Some(Vec::new()));
    assert_eq!(response_body(&unix_body(&path, GET).unwrap()), "- http");
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A CA and a server certificate for localhost/127.0.0.1, written into `dir`; returns the CA
/// certificate and the server's TLS settings.
fn tls_files(dir: &Path) -> (rustls::pki_types::CertificateDer<'static>, TlsConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let name = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name = name("proxy test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name = name("localhost");
    let leaf = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut t = TlsConfig::new(dir.join("cert.pem"), dir.join("key.pem"));
    t.watch_interval = None;
    (ca.der().clone(), t)
}

/// Sends `header`, then does a TLS handshake and one request over it; returns the body.
async fn tls_request(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    header: &[u8],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(header).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    tls.write_all(GET).await?;
    let mut resp = Vec::new();
    // The server closes after `Connection: close`; a missing close_notify is not an error
    // here.
    let _ = tls.read_to_end(&mut resp).await;
    Ok(response_body(&resp))
}

#[test]
fn proxy_header_before_the_tls_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = tls_files(dir.path());
    let srv = serve_on(app, &["https://127.0.0.1:0"], move |c| {
        c.lifespan = LifespanMode::Off;
        c.proxy_protocol = ProxyProtocol::Auto;
        c.tls = Some(tls);
    });
    let addr = srv.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limit = Duration::from_secs(10);
        let h = v2_tcp(sa("192.0.2.30:3030"), sa("192.0.2.1:443"), &[]);
        let body = tokio::time::timeout(limit, tls_request(addr, &ca, &h))
            .await
            .expect("in time")
            .expect("request over TLS");
        assert_eq!(body, "192.0.2.30:3030 https");
        let h = b"PROXY TCP6 2001:db8::30 2001:db8::1 3031 443\r\n";
        let body = tokio::time::timeout(limit, tls_request(addr, &ca, h))
            .await
            .expect("in time")
            .expect("request over TLS");
        assert_eq!(body, "[2001:db8::30]:3031 https");
        // Without a header, the ClientHello is not one: closed, no handshake.
        let r = tokio::time::timeout(limit, tls_request(addr, &ca, b""))
            .await
            .expect("in time");
        assert!(r.is_err(), "served without a PROXY header: {r:?}");
    });
    // curl sends its v1 header before the handshake too.
    let port = addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let ca_path = dir.path().join("ca.pem");
    let (ok, out, err) = curl(&[
        os("--haproxy-protocol"),
        os("--cacert"),
        os(&ca_path),
        os("--resolve"),
        os(&resolve),
        os("-w"),
        os(" %{local_port}"),
        os(&url),
    ]);
    assert!(ok, "curl failed: {err}");
    let (body, local_port) = out.rsplit_once(' ').expect("body and port");
    assert_eq!(body, format!("127.0.0.1:{local_port} https"));
}

// ---------------------------------------------------------------------------------------------
// curl, a real v1 sender
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_haproxy_protocol() {
    let srv = start(ProxyProtocol::V1, |_| {});
    let url = srv.url("/");
    let (ok, out, err) = curl(&[
        os("--haproxy-protocol"),
        os("-w"),
        os(" %{local_port}"),
        os(&url),
    ]);
    assert!(ok, "curl failed: {err}");
    // curl names its own end of the connection in the header.
    let (body, local_port) = out.rsplit_once(' ').expect("body and port");
    assert_eq!(body, format!("127.0.0.1:{local_port} http"));
    // Without the header, the server (which requires one from 127.0.0.1) closes at once.
    let (ok, out, err) = curl(&[os(&url)]);
    assert!(!ok, "served without a PROXY header: {out}");
    assert!(
        err.contains("Empty reply") || err.contains("reset"),
        "{err}"
    );

    // Over a Unix socket curl sends `PROXY UNKNOWN`: no client address.
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("unix:{}", dir.path().join("c.sock").display());
    let usrv = serve_on(app, &[&spec], |c| {
        c.lifespan = LifespanMode::Off;
        c.proxy_protocol = ProxyProtocol::Auto;
    });
    let (ok, out, err) = curl(&[
        os("--haproxy-protocol"),
        os("--unix-socket"),
        os(&usrv.unix_path()),
        os("http://localhost/"),
    ]);
    assert!(ok, "curl failed: {err}");
    assert_eq!(out, "- http");
}

// ---------------------------------------------------------------------------------------------
// allow_from / deny_from
// ---------------------------------------------------------------------------------------------

fn plain(cfg: impl FnOnce(&mut Config)) -> TestServer {
    start(ProxyProtocol::Off, cfg)
}

#[test]
fn denied_peer_is_closed_without_a_byte() {
    let srv = plain(|c| c.deny_from = cidrs("127.0.0.1/32"));
    assert_closed_silently(srv.addr(), GET);
    // A connection that sends nothing is closed too.
    let mut s = connect(srv.addr());
    set_short_reads(&s);
    assert_eq!(
        until_closed(&mut s, Duration::from_secs(5)),
        Some(Vec::new())
    );
    // Not denied: served.
    let srv = plain(|c| c.deny_from = cidrs("10.0.0.0/8,::1"));
    assert!(body_of(srv.addr(), GET).starts_with("127.0.0.1:"));
}

#[test]
fn allow_from_admits_only_its_networks_and_deny_wins() {
    let srv = plain(|c| c.allow_from = cidrs("10.0.0.0/8,2001:db8::/32"));
    assert_closed_silently(srv.addr(), GET);
    let srv = plain(|c| c.allow_from = cidrs("10.0.0.0/8,127.0.0.0/8"));
    assert!(body_of(srv.addr(), GET).starts_with("127.0.0.1:"));
    let srv = plain(|c| {
        c.allow_from = cidrs("127.0.0.0/8");
        c.deny_from = cidrs("127.0.0.1");
    });
    assert_closed_silently(srv.addr(), GET);
}

#[test]
fn ipv6_peers_are_matched_too() {
    let Ok(srv) = try_serve_on(app, &["127.0.0.1:0", "[::1]:0"], |c| {
        c.lifespan = LifespanMode::Off;
        c.deny_from = cidrs("::1");
        // Refused connections do not count against the limit.
        c.max_connections = 1;
    }) else {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    };
    let v6 = srv
        .addrs
        .iter()
        .find_map(|a| match a {
            LocalAddr::Tcp(a) if a.ip() == Ipv6Addr::LOCALHOST => Some(*a),
            _ => None,
        })
        .expect("a v6 listener");
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect(v6);
        set_short_reads(&s);
        assert_eq!(
            until_closed(&mut s, Duration::from_secs(5)),
            Some(Vec::new())
        );
        held.push(s);
    }
    assert!(body_of(srv.addr(), GET).starts_with("127.0.0.1:"));
}

#[test]
fn unix_peers_are_always_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("unix:{}", dir.path().join("a.sock").display());
    let srv = serve_on(app, &[&spec, "127.0.0.1:0"], |c| {
        c.lifespan = LifespanMode::Off;
        c.allow_from = cidrs("10.0.0.0/8");
        c.deny_from = cidrs("0.0.0.0/0,::/0");
    });
    assert_eq!(
        response_body(&unix_body(&srv.unix_path(), GET).unwrap()),
        "- http"
    );
    assert_closed_silently(srv.addr(), GET);
}

#[test]
fn allow_and_deny_look_at_the_socket_peer_not_the_proxy_header() {
    let srv = start(ProxyProtocol::V1, |c| {
        c.deny_from = cidrs("203.0.113.0/24");
        c.allow_from = cidrs("127.0.0.0/8");
    });
    let h = b"PROXY TCP4 203.0.113.40 198.51.100.1 1 2\r\n";
    assert_eq!(body_of(srv.addr(), &cat(&[h, GET])), "203.0.113.40:1 http");
}
