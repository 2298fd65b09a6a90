//! TLS listeners (issue #4): `https://` and `unix+tls:` specs, bare specs with a certificate,
//! the `tls` scope extension, ALPN, the minimum version, client certificates (required and
//! optional), startup errors, key formats, the handshake timeout, and certificate reload
//! (`Handle::reload_tls`, the file watcher, SIGHUP to the binary).
//!
//! Every certificate is made here with rcgen (a CA, server certificates for `localhost` and
//! `127.0.0.1`, client certificates, one self-signed client certificate nobody trusts) and
//! written into a temp dir. The clients are rustls (through tokio-rustls), `curl` and
//! `openssl s_client`. Every wait is bounded: each test runs under [`TEST_LIMIT`], each network
//! step under [`IO_LIMIT`], and every child process is killed when its limit passes.

mod common;

use common::{serve_on, try_serve_on, TestServer};
use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender, TlsInfo};
use pagi_server::tls::{ClientVerify, MinVersion, TlsConfig};
use pagi_server::{LifespanMode, LocalAddr};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CipherSuite, ClientConfig, HandshakeKind, RootCertStore, SupportedProtocolVersion};
use std::ffi::OsStr;
use std::fs;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const BIN: &str = env!("CARGO_BIN_EXE_pagi-server");

/// The most any one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(15);
/// The most one network step (a handshake, a request) may take.
const IO_LIMIT: Duration = Duration::from_secs(5);
/// The most a child process (curl, openssl, a failing server) may take.
const PROC_LIMIT: Duration = Duration::from_secs(5);

/// What the test app answers on `/`.
const HELLO: &[u8] = b"Hello, TLS!";

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

/// Runs a test body on a fresh current-thread runtime, failing it after [`TEST_LIMIT`]. The
/// servers run on their own threads, so blocking here (child processes) stalls only the client.
fn run<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(TEST_LIMIT, f)
            .await
            .expect("test timed out")
    })
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A test CA and a temp dir for PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_path: PathBuf,
}

/// A certificate (signed by the test CA or self-signed) and its key.
struct Leaf {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Leaf {
    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM")
    }
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, v) in parts {
        dn.push(ty.clone(), *v);
    }
    dn
}

fn server_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    p.distinguished_name = dn(&[(DnType::CommonName, cn)]);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p
}

fn client_params(subject: &[(DnType, &str)]) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("client params");
    p.distinguished_name = dn(subject);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

impl Pki {
    fn new() -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name = dn(&[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "pagi test CA"),
        ]);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_path = dir.path().join("ca.pem");
        fs::write(&ca_path, ca.pem()).expect("write ca.pem");
        Pki { dir, ca, ca_path }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file atomically (a temp file renamed over it), so a watcher never sees half of
    /// it.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        fs::write(&tmp, contents).expect("write temp file");
        fs::rename(&tmp, &path).expect("rename into place");
        path
    }

    fn sign(&self, params: &CertificateParams, key: &KeyPair) -> Leaf {
        let cert = params.signed_by(key, &self.ca).expect("sign");
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for localhost and 127.0.0.1 with a new P-256 key (PKCS#8).
    fn server(&self, cn: &str) -> Leaf {
        self.sign(&server_params(cn), &KeyPair::generate().expect("key"))
    }

    /// A server certificate, written as `{name}.pem` and `{name}.key`; returns the paths.
    fn server_files(&self, name: &str) -> (Leaf, PathBuf, PathBuf) {
        let leaf = self.server(name);
        let cert = self.write(&format!("{name}.pem"), &leaf.cert_pem);
        let key = self.write(&format!("{name}.key"), &leaf.key_pem);
        (leaf, cert, key)
    }

    /// A client certificate signed by the CA.
    fn client(&self, subject: &[(DnType, &str)]) -> Leaf {
        self.sign(&client_params(subject), &KeyPair::generate().expect("key"))
    }

    /// An intermediate CA signed by the root.
    fn intermediate(&self, cn: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name = dn(&[(DnType::CommonName, cn)]);
        CertifiedIssuer::signed_by(p, KeyPair::generate().expect("key"), &self.ca)
            .expect("intermediate")
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der()).expect("CA as a root");
        roots
    }

    /// TLS settings for a certificate and key; the file watcher is off unless a test turns it
    /// on.
    fn tls(&self, cert: &Path, key: &Path) -> TlsConfig {
        let mut t = TlsConfig::new(cert, key);
        t.watch_interval = None;
        t
    }

    /// Settings asking for client certificates from the test CA.
    fn mtls(&self, cert: &Path, key: &Path, verify: ClientVerify) -> TlsConfig {
        let mut t = self.tls(cert, key);
        t.ca = Some(self.ca_path.clone());
        t.client_verify = verify;
        t
    }
}

/// A self-signed client certificate that no test CA vouches for.
fn untrusted_client(cn: &str) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let cert = client_params(&[(DnType::CommonName, cn)])
        .self_signed(&key)
        .expect("self-signed");
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The DER inside a PEM certificate, after checking the PEM framing.
fn pem_der(pem: &str) -> CertificateDer<'static> {
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----\n")
            && pem.ends_with("-----END CERTIFICATE-----\n"),
        "not one PEM certificate: {pem:?}"
    );
    assert_eq!(pem.matches("-----BEGIN").count(), 1, "{pem}");
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

// ---------------------------------------------------------------------------------------------
// The app and the server
// ---------------------------------------------------------------------------------------------

/// `/info`: `{"scheme": ..., "tls": <the tls extension or null>}` as JSON; `/stream`: a body
/// in two pieces without a Content-Length; anything else: [`HELLO`].
async fn app(scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    let Scope::Http(req) = scope else {
        return Err("http scopes only".into());
    };
    if req.path.as_bytes() == b"/stream" {
        // Two pieces: no Content-Length (chunked on HTTP/1.1, ended by the close on 1.0).
        tx.send(SendEvent::start(200, Headers::new())).await?;
        tx.send(SendEvent::body("first,", true)).await?;
        tokio::task::yield_now().await;
        tx.send(SendEvent::body("second", false)).await?;
        return Ok(());
    }
    let body = if req.path.as_bytes() == b"/info" {
        serde_json::to_vec(&serde_json::json!({
            "scheme": req.scheme,
            "tls": req.extensions.tls.as_deref(),
        }))?
    } else {
        HELLO.to_vec()
    };
    tx.send(SendEvent::start(
        200,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    tx.send(SendEvent::body(body, false)).await?;
    Ok(())
}

fn start(listen: &[&str], tls: Option<TlsConfig>) -> TestServer {
    serve_on(app, listen, move |c| {
        c.lifespan = LifespanMode::Off;
        c.tls = tls;
    })
}

fn tcp_addrs(srv: &TestServer) -> Vec<SocketAddr> {
    srv.addrs
        .iter()
        .filter_map(|a| match a {
            LocalAddr::Tcp(a) => Some(*a),
            LocalAddr::Unix(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The rustls client and a small HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS_ANY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn tls13() -> &'static [&'static SupportedProtocolVersion] {
    TLS13
}

fn tls12() -> &'static [&'static SupportedProtocolVersion] {
    TLS12
}

fn tls_any() -> &'static [&'static SupportedProtocolVersion] {
    TLS_ANY
}

/// A client trusting `roots`, offering ALPN `http/1.1`, with an optional client certificate.
fn client(
    roots: RootCertStore,
    versions: &[&'static SupportedProtocolVersion],
    auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut c = match auth {
        None => b.with_no_client_auth(),
        Some((chain, key)) => b.with_client_auth_cert(chain, key).expect("client cert"),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection does a full handshake (so it sees the server's current certificate),
    // except where a test asks for resumption.
    c.resumption = Resumption::disabled();
    Arc::new(c)
}

/// [`client`] with session resumption (tickets for TLS 1.3, session IDs for TLS 1.2).
fn resuming_client(
    roots: RootCertStore,
    versions: &[&'static SupportedProtocolVersion],
    auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut c = Arc::unwrap_or_clone(client(roots, versions, auth));
    c.resumption = Resumption::default();
    Arc::new(c)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    cfg: &Arc<ClientConfig>,
) -> io::Result<TlsStream<S>> {
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(IO_LIMIT, TlsConnector::from(cfg.clone()).connect(name, io))
        .await
        .map_err(|_| timed_out("TLS handshake"))?
}

async fn connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> io::Result<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect"))??;
    handshake(tcp, cfg).await
}

/// What the client negotiated: (version, cipher suite, ALPN, the server's leaf).
fn negotiated<S>(s: &TlsStream<S>) -> (u16, u16, Option<Vec<u8>>, CertificateDer<'static>) {
    let c = s.get_ref().1;
    (
        c.protocol_version().map_or(0, u16::from),
        c.negotiated_cipher_suite()
            .map_or(0, |s| u16::from(s.suite())),
        c.alpn_protocol().map(<[u8]>::to_vec),
        c.peer_certificates()
            .and_then(|p| p.first())
            .cloned()
            .expect("a server certificate"),
    )
}

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    body: Vec<u8>,
}

impl Resp {
    /// The `/info` answer: (scheme, tls extension).
    fn info(&self) -> (String, Option<TlsInfo>) {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("JSON body");
        let scheme = v["scheme"].as_str().expect("scheme").to_owned();
        let tls = match &v["tls"] {
            serde_json::Value::Null => None,
            t => Some(serde_json::from_value(t.clone()).expect("tls extension")),
        };
        (scheme, tls)
    }

    /// The tls extension of an `/info` answer, which must be there.
    fn tls(&self) -> TlsInfo {
        let (scheme, tls) = self.info();
        assert_eq!(scheme, "https");
        tls.expect("a tls extension on a TLS connection")
    }
}

/// Sends `GET path` (keep-alive) and reads one Content-Length response.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, path: &str) -> io::Result<Resp> {
    tokio::time::timeout(IO_LIMIT, async {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        s.flush().await?;
        read_response(s).await
    })
    .await
    .map_err(|_| timed_out("request"))?
}

async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Resp> {
    let eof = |buf: &[u8]| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("closed mid-response: {:?}", String::from_utf8_lossy(buf)),
        )
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof(&buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = common::status(&head);
    let len: usize = common::header_value(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no content-length in {head:?}")))?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof(&buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.len() != head_end + len {
        return Err(io::Error::other("bytes after the response"));
    }
    Ok(Resp {
        status,
        body: buf.split_off(head_end),
    })
}

/// Connects, handshakes and sends one request; any failure on the way is the error.
async fn fetch(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> io::Result<Resp> {
    let mut s = connect(addr, cfg).await?;
    get(&mut s, path).await
}

/// Reads until the peer closes (EOF or an error such as a reset) or `limit` passes; returns
/// the bytes and whether it closed.
async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// Polls new handshakes until the server presents `want` (e.g. after a reload), up to 3 s.
async fn wait_for_server_cert(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    want: &CertificateDer<'_>,
) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(s) = connect(addr, cfg).await {
            if &negotiated(&s).3 == want {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not switch to the new certificate within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes: curl, openssl, the pagi-server binary
// ---------------------------------------------------------------------------------------------

/// What a finished (or killed) child did.
#[derive(Debug)]
struct Ran {
    /// `None`: killed after [`PROC_LIMIT`].
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a command with `stdin` as its input, output into files (no pipe can fill up), killed
/// after [`PROC_LIMIT`].
fn run_cmd(program: &str, args: &[&OsStr], stdin: &[u8]) -> Ran {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inp, out, err) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("err"),
    );
    fs::write(&inp, stdin).expect("stdin file");
    let mut child = Command::new(program)
        .args(args)
        .stdin(fs::File::open(&inp).expect("stdin"))
        .stdout(fs::File::create(&out).expect("stdout"))
        .stderr(fs::File::create(&err).expect("stderr"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let deadline = Instant::now() + PROC_LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn curl(args: &[&OsStr]) -> Ran {
    let mut all = vec![
        os("-sS"),
        os("--max-time"),
        os("4"),
        os("--noproxy"),
        os("*"),
    ];
    all.extend_from_slice(args);
    run_cmd("curl", &all, b"")
}

fn openssl(args: &[&OsStr], stdin: &[u8]) -> Ran {
    run_cmd("openssl", args, stdin)
}

/// `openssl s_client` to a TCP address, verifying the server against the test CA.
fn s_client(pki: &Pki, addr: SocketAddr, extra: &[&OsStr], stdin: &[u8]) -> Ran {
    let connect = addr.to_string();
    let mut args = vec![
        os("s_client"),
        os("-connect"),
        os(&connect),
        os("-servername"),
        os("localhost"),
        os("-CAfile"),
        os(&pki.ca_path),
        os("-verify_return_error"),
    ];
    args.extend_from_slice(extra);
    openssl(&args, stdin)
}

/// A `pagi-server` child (the demo app); killed on drop. Its stderr goes to a file.
struct ServerProc {
    child: Child,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl ServerProc {
    fn spawn(args: &[&OsStr]) -> ServerProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_path = dir.path().join("stderr");
        let child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn pagi-server");
        ServerProc {
            child,
            stderr_path,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + PROC_LIMIT;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits until stderr has `n` lines containing `needle`; panics with stderr after 5 s or
    /// if the process exits.
    fn wait_log(&mut self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + PROC_LIMIT;
        loop {
            let log = self.stderr();
            if log.lines().filter(|l| l.contains(needle)).count() >= n {
                return log;
            }
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                panic!("pagi-server exited ({st}) while waiting for {needle:?}; stderr:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the server log within 5 s; stderr:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address of the (first) `https://` listener, from the startup log.
    fn https_addr(&mut self) -> SocketAddr {
        let log = self.wait_log("listening on https://", 1);
        let line = log
            .lines()
            .find(|l| l.contains("listening on https://"))
            .unwrap_or_default();
        let (_, rest) = line.split_once("listening on https://").unwrap_or_default();
        rest.trim()
            .parse()
            .unwrap_or_else(|e| panic!("no address in {line:?}: {e}"))
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed: {st}");
    }
}

/// Runs the binary with options that must fail at startup: (exit status, stderr).
fn startup_failure(args: &[&OsStr]) -> (ExitStatus, String) {
    let mut p = ServerProc::spawn(args);
    match p.wait_exit() {
        Some(st) => (st, p.stderr()),
        None => panic!(
            "pagi-server {args:?} kept running instead of failing; stderr:\n{}",
            p.stderr()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The tls extension, TLS 1.3 and 1.2
// ---------------------------------------------------------------------------------------------

#[test]
fn tls13_get_and_scope() {
    let pki = Pki::new();
    let (leaf, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        let mut s = connect(srv.addr(), &cfg).await.expect("handshake");
        let (version, suite, alpn, server_leaf) = negotiated(&s);
        assert_eq!(version, 0x0304);
        assert!(
            [
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            ]
            .map(u16::from)
            .contains(&suite),
            "{suite:#06x}"
        );
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(server_leaf, leaf.der);

        let r = get(&mut s, "/").await.expect("GET /");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, HELLO);

        // Same connection (keep-alive): the scope.
        let r = get(&mut s, "/info").await.expect("GET /info");
        assert_eq!(r.status, 200);
        let tls = r.tls();
        assert_eq!(tls.tls_version, 0x0304);
        assert_eq!(tls.cipher_suite, suite, "the suite the client negotiated");
        let server_cert = tls.server_cert.as_deref().expect("server_cert");
        assert_eq!(pem_der(server_cert), leaf.der);
        assert_eq!(tls.client_cert_chain, Vec::<String>::new());
        assert_eq!(tls.client_cert_name, None);
        assert_eq!(tls.client_cert_error, None);
    });
}

#[test]
fn tls13_each_cipher_suite_is_reported() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        for suite in [
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ] {
            let mut p = rustls::crypto::ring::default_provider();
            p.cipher_suites = vec![suite];
            let mut c = ClientConfig::builder_with_provider(Arc::new(p))
                .with_protocol_versions(tls13())
                .expect("versions")
                .with_root_certificates(pki.roots())
                .with_no_client_auth();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            c.resumption = Resumption::disabled();
            let r = fetch(srv.addr(), &Arc::new(c), "/info")
                .await
                .expect("GET /info");
            let tls = r.tls();
            assert_eq!(tls.tls_version, 0x0304);
            assert_eq!(tls.cipher_suite, u16::from(suite.suite()));
        }
    });
}

#[test]
fn tls12_get_and_scope() {
    let pki = Pki::new();
    let (leaf, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        let cfg = client(pki.roots(), tls12(), None);
        let mut s = connect(srv.addr(), &cfg).await.expect("TLS 1.2 handshake");
        let (version, suite, alpn, server_leaf) = negotiated(&s);
        assert_eq!(version, 0x0303);
        // The ECDHE-ECDSA suites (the server key is P-256).
        assert!(
            [
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            ]
            .map(u16::from)
            .contains(&suite),
            "{suite:#06x}"
        );
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(server_leaf, leaf.der);

        let r = get(&mut s, "/").await.expect("GET /");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
        let tls = get(&mut s, "/info").await.expect("GET /info").tls();
        assert_eq!(tls.tls_version, 0x0303);
        assert_ne!(tls.cipher_suite, 0);
        assert_eq!(tls.cipher_suite, suite);
        assert_eq!(
            pem_der(tls.server_cert.as_deref().expect("server_cert")),
            leaf.der
        );
        assert!(tls.client_cert_chain.is_empty());
        assert_eq!(tls.client_cert_name, None);
        assert_eq!(tls.client_cert_error, None);
    });
}

#[test]
fn certificate_chains_with_an_intermediate() {
    let pki = Pki::new();
    let inter = pki.intermediate("pagi test intermediate");
    let key = KeyPair::generate().expect("key");
    let leaf = server_params("chained")
        .signed_by(&key, &inter)
        .expect("sign");
    // The chain file: leaf, then the intermediate; the client trusts only the root.
    let cert = pki.write("chain.pem", format!("{}{}", leaf.pem(), inter.pem()));
    let key_path = pki.write("chain.key", key.serialize_pem());
    let mut t = pki.tls(&cert, &key_path);
    t.ca = Some(pki.ca_path.clone());
    t.client_verify = ClientVerify::Required;
    let srv = start(&["https://127.0.0.1:0"], Some(t));
    run(async {
        // A client whose certificate also comes from the intermediate.
        let ckey = KeyPair::generate().expect("key");
        let carol = client_params(&[(DnType::CommonName, "carol")])
            .signed_by(&ckey, &inter)
            .expect("sign");
        let ckey = PrivateKeyDer::from_pem_slice(ckey.serialize_pem().as_bytes()).expect("key");
        let cfg = client(
            pki.roots(),
            tls_any(),
            Some((vec![carol.der().clone(), inter.der().clone()], ckey)),
        );
        let mut s = connect(srv.addr(), &cfg).await.expect("handshake");
        let sent = s.get_ref().1.peer_certificates().expect("certs").to_vec();
        assert_eq!(sent, vec![leaf.der().clone(), inter.der().clone()]);
        let tls = get(&mut s, "/info").await.expect("GET").tls();
        // server_cert is the leaf only.
        assert_eq!(
            pem_der(tls.server_cert.as_deref().expect("cert")),
            *leaf.der()
        );
        let chain: Vec<_> = tls.client_cert_chain.iter().map(|p| pem_der(p)).collect();
        assert_eq!(chain, vec![carol.der().clone(), inter.der().clone()]);
        assert_eq!(tls.client_cert_name.as_deref(), Some("CN=carol"));
        assert_eq!(tls.client_cert_error, None);
    });
}

/// A connection the server closes after a response (HTTP/1.0 without a Content-Length, or
/// `Connection: close`) ends with a TLS close_notify, so the client can tell the end of a
/// close-delimited body from a truncation (rustls reports `UnexpectedEof` without one).
#[test]
fn closing_after_a_response_sends_close_notify() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        for (req, body_end) in [
            (
                &b"GET /stream HTTP/1.0\r\nHost: localhost\r\n\r\n"[..],
                "\r\n\r\nfirst,second",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                "\r\n\r\nHello, TLS!",
            ),
        ] {
            let mut s = connect(srv.addr(), &cfg).await.expect("handshake");
            s.write_all(req).await.expect("write");
            let mut out = Vec::new();
            let r = tokio::time::timeout(IO_LIMIT, s.read_to_end(&mut out))
                .await
                .expect("closed in time");
            let text = String::from_utf8_lossy(&out).into_owned();
            r.unwrap_or_else(|e| panic!("no clean TLS close: {e} after {text:?}"));
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
            assert!(text.ends_with(body_end), "{text}");
        }
    });
}

/// The server speaks HTTP/1.0 too, but offers only `http/1.1` in ALPN, so a client that
/// offers `http/1.0` (e.g. `curl --http1.0`) gets a fatal no_application_protocol alert.
#[test]
fn alpn_http10_client_is_served() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    let url = format!("https://127.0.0.1:{}/", srv.addr().port());
    let r = curl(&[os("--http1.0"), os("--cacert"), os(&pki.ca_path), os(&url)]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.stdout, "Hello, TLS!");
}

// ---------------------------------------------------------------------------------------------
// 2. Listener specs: cleartext and TLS side by side, bare specs follow the certificate
// ---------------------------------------------------------------------------------------------

#[test]
fn cleartext_and_tls_listeners_side_by_side() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let plain_sock = pki.path("plain.sock");
    let bare_sock = pki.path("bare.sock");
    let tls_sock = pki.path("tls.sock");
    let specs = [
        "http://127.0.0.1:0".to_string(),
        "127.0.0.1:0".to_string(), // bare: TLS, since a certificate is set
        "https://127.0.0.1:0".to_string(),
        "tcp://127.0.0.1:0".to_string(),
        format!("unix:{}", plain_sock.display()),
        bare_sock.display().to_string(), // a bare path: TLS too
        format!("unix+tls:{}", tls_sock.display()),
    ];
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let srv = start(&specs, Some(pki.tls(&cert, &key)));
    let tcp = tcp_addrs(&srv);
    assert_eq!(tcp.len(), 4);
    let (http, bare, https, tcp_plain) = (tcp[0], tcp[1], tcp[2], tcp[3]);
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        for plain in [http, tcp_plain] {
            let mut s = TcpStream::connect(plain).await.expect("connect");
            let r = get(&mut s, "/info").await.expect("cleartext GET");
            assert_eq!(r.status, 200);
            assert_eq!(r.info(), ("http".to_string(), None), "{plain}");
            // A TLS client on a cleartext port gets no handshake.
            assert!(fetch(plain, &cfg, "/").await.is_err());
        }
        for tls in [bare, https] {
            let r = fetch(tls, &cfg, "/info").await.expect("TLS GET");
            assert_eq!(r.status, 200);
            assert_eq!(r.tls().tls_version, 0x0304, "{tls}");
            // And cleartext HTTP on it gets no HTTP answer.
            let mut s = TcpStream::connect(tls).await.expect("connect");
            assert!(get(&mut s, "/").await.is_err(), "{tls}");
        }

        let mut s = UnixStream::connect(&plain_sock).await.expect("connect");
        let r = get(&mut s, "/info").await.expect("unix GET");
        assert_eq!(r.info(), ("http".to_string(), None));
        for path in [&bare_sock, &tls_sock] {
            let io = UnixStream::connect(path).await.expect("connect");
            let mut s = handshake(io, &cfg).await.expect("TLS over a Unix socket");
            let r = get(&mut s, "/info").await.expect("unix+tls GET");
            assert_eq!(r.status, 200);
            assert_eq!(r.tls().tls_version, 0x0304, "{}", path.display());
        }
    });
}

#[test]
fn bare_specs_are_cleartext_without_a_certificate() {
    let srv = start(&["127.0.0.1:0"], None);
    run(async {
        let mut s = TcpStream::connect(srv.addr()).await.expect("connect");
        let r = get(&mut s, "/info").await.expect("GET");
        assert_eq!(r.info(), ("http".to_string(), None));
    });
}

#[test]
fn tls_spec_without_a_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = format!("unix+tls:{}", dir.path().join("s.sock").display());
    for spec in ["https://127.0.0.1:0", sock.as_str()] {
        let err = match try_serve_on(app, &[spec], |c| c.lifespan = LifespanMode::Off) {
            Ok(_) => panic!("{spec} started without a certificate"),
            Err(e) => e,
        };
        assert!(
            err.contains("asks for TLS, but no certificate is set (--ssl-cert and --ssl-key)"),
            "{err}"
        );
    }
    // The binary: exit 1 and the reason on stderr.
    let (st, stderr) = startup_failure(&[os("--listen"), os("https://127.0.0.1:0")]);
    assert_eq!(st.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "pagi-server: error: https://127.0.0.1:0 asks for TLS, but no certificate is set"
        ),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. curl
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_over_tcp_and_unix_socket() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let sock = pki.path("tls.sock");
    let unix_spec = format!("unix+tls:{}", sock.display());
    let srv = start(
        &["https://127.0.0.1:0", &unix_spec],
        Some(pki.tls(&cert, &key)),
    );
    let port = srv.addr().port();
    let fmt = "\n%{http_code} %{http_version} %{scheme}";

    // By name (the DNS SAN), pinned to 127.0.0.1.
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let r = curl(&[
        os("--cacert"),
        os(&pki.ca_path),
        os("--resolve"),
        os(&resolve),
        os("-w"),
        os(fmt),
        os(&url),
    ]);
    assert!(r.ok(), "{r:?}");
    // curl offers h2 first, and the server takes it.
    assert_eq!(r.stdout, "Hello, TLS!\n200 2 HTTPS", "{r:?}");

    // By IP (the IP SAN).
    let url = format!("https://127.0.0.1:{port}/info");
    let r = curl(&[os("--cacert"), os(&pki.ca_path), os(&url)]);
    assert!(r.ok(), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["tls"]["tls_version"], 0x0304);
    assert_eq!(v["tls"]["client_cert_chain"], serde_json::json!([]));

    // Without the CA, curl refuses the certificate.
    let r = curl(&[os(&url)]);
    assert!(!r.ok(), "{r:?}");

    // The Unix socket.
    let r = curl(&[
        os("--unix-socket"),
        os(&sock),
        os("--cacert"),
        os(&pki.ca_path),
        os("-w"),
        os(fmt),
        os("https://localhost/"),
    ]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.stdout, "Hello, TLS!\n200 2 HTTPS", "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. ALPN (openssl s_client)
// ---------------------------------------------------------------------------------------------

#[test]
fn openssl_alpn_and_request() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    let addr = srv.addr();

    // The server's preference wins: h2 when offered at all.
    for (offer, got) in [
        ("http/1.1", "http/1.1"),
        ("http/1.1,h2", "h2"),
        ("h2", "h2"),
    ] {
        let r = s_client(&pki, addr, &[os("-alpn"), os(offer)], b"Q\n");
        assert!(
            r.stdout.contains(&format!("ALPN protocol: {got}\n")),
            "{offer}: {r:?}"
        );
        assert!(r.stdout.contains("Verify return code: 0 (ok)"), "{r:?}");
        assert!(r.stdout.contains("New, TLSv1.3, Cipher is TLS_"), "{r:?}");
    }
    // Nothing in common: the fatal alert RFC 7301 asks for.
    let r = s_client(&pki, addr, &[os("-alpn"), os("spdy/3.1")], b"Q\n");
    assert!(!r.ok(), "{r:?}");
    assert!(r.stderr.contains("no application protocol"), "{r:?}");
    // No ALPN offered at all: fine.
    let r = s_client(&pki, addr, &[], b"Q\n");
    assert!(r.ok(), "{r:?}");
    assert!(r.stdout.contains("No ALPN negotiated"), "{r:?}");

    // A whole request through s_client (it waits for the server to close).
    let r = s_client(
        &pki,
        addr,
        &[os("-alpn"), os("http/1.1"), os("-ign_eof"), os("-quiet")],
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ok(), "{r:?}");
    assert!(r.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{r:?}");
    assert!(r.stdout.ends_with("\r\n\r\nHello, TLS!"), "{r:?}");

    // TLS 1.2 through OpenSSL too.
    let r = s_client(
        &pki,
        addr,
        &[os("-tls1_2"), os("-alpn"), os("http/1.1")],
        b"Q\n",
    );
    assert!(r.stdout.contains("ALPN protocol: http/1.1"), "{r:?}");
    assert!(
        r.stdout.contains("New, TLSv1.2, Cipher is ECDHE-ECDSA-"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Minimum version
// ---------------------------------------------------------------------------------------------

#[test]
fn min_version_13_refuses_tls12() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let mut t = pki.tls(&cert, &key);
    t.min_version = MinVersion::Tls13;
    let srv = start(&["https://127.0.0.1:0"], Some(t));
    run(async {
        let old = client(pki.roots(), tls12(), None);
        let err = connect(srv.addr(), &old)
            .await
            .expect_err("a TLS 1.2-only client is refused");
        assert!(err.to_string().contains("ProtocolVersion"), "{err}");

        let new = client(pki.roots(), tls13(), None);
        let r = fetch(srv.addr(), &new, "/info").await.expect("TLS 1.3");
        assert_eq!(r.tls().tls_version, 0x0304);
        // A client offering both gets 1.3.
        let r = fetch(srv.addr(), &client(pki.roots(), tls_any(), None), "/info")
            .await
            .expect("TLS 1.2 or 1.3");
        assert_eq!(r.tls().tls_version, 0x0304);
    });
    let r = s_client(&pki, srv.addr(), &[os("-tls1_2")], b"Q\n");
    assert!(!r.ok(), "{r:?}");
    assert!(r.stdout.contains("Cipher is (NONE)"), "{r:?}");
    assert!(r.stderr.contains("alert protocol version"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Client certificates
// ---------------------------------------------------------------------------------------------

#[test]
fn mtls_required() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let alice = pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "alice"),
    ]);
    let srv = start(
        &["https://127.0.0.1:0"],
        Some(pki.mtls(&cert, &key, ClientVerify::Required)),
    );
    let addr = srv.addr();
    run(async {
        // A client with a certificate (chain: leaf, then the CA), kept open throughout.
        let with_cert = client(
            pki.roots(),
            tls_any(),
            Some((vec![alice.der.clone(), pki.ca_der()], alice.key_der())),
        );
        let mut kept = connect(addr, &with_cert).await.expect("mTLS handshake");
        let r = get(&mut kept, "/info").await.expect("GET /info");
        assert_eq!(r.status, 200);
        let tls = r.tls();
        assert_eq!(tls.client_cert_chain.len(), 2);
        assert_eq!(pem_der(&tls.client_cert_chain[0]), alice.der);
        assert_eq!(pem_der(&tls.client_cert_chain[1]), pki.ca_der());
        assert_eq!(tls.client_cert_name.as_deref(), Some("CN=alice,O=Example"));
        assert_eq!(tls.client_cert_error, None);

        // Without a certificate: no response, on TLS 1.3 (where the client finishes first and
        // then reads the alert) and on TLS 1.2 (where the handshake itself fails).
        for versions in [tls13(), tls12()] {
            let no_cert = client(pki.roots(), versions, None);
            let err = fetch(addr, &no_cert, "/")
                .await
                .expect_err("no client cert");
            assert!(err.to_string().contains("CertificateRequired"), "{err}");
        }
        // An untrusted (self-signed) certificate: refused too.
        let mallory = untrusted_client("mallory");
        let bad = client(
            pki.roots(),
            tls_any(),
            Some((vec![mallory.der.clone()], mallory.key_der())),
        );
        let err = fetch(addr, &bad, "/")
            .await
            .expect_err("untrusted client cert");
        assert!(err.to_string().contains("UnknownCA"), "{err}");

        // The others are still served: the kept connection and new ones.
        let r = get(&mut kept, "/").await.expect("kept connection");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
        let r = fetch(addr, &with_cert, "/").await.expect("new connection");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
        // The name on TLS 1.2 as well, with only the leaf sent.
        let leaf_only = client(
            pki.roots(),
            tls12(),
            Some((vec![alice.der.clone()], alice.key_der())),
        );
        let tls = fetch(addr, &leaf_only, "/info")
            .await
            .expect("TLS 1.2 mTLS")
            .tls();
        assert_eq!(tls.tls_version, 0x0303);
        assert_eq!(tls.client_cert_chain.len(), 1);
        assert_eq!(pem_der(&tls.client_cert_chain[0]), alice.der);
        assert_eq!(tls.client_cert_name.as_deref(), Some("CN=alice,O=Example"));
        assert_eq!(tls.client_cert_error, None);
    });

    // openssl s_client with and without a certificate.
    let alice_cert = pki.write("alice.pem", &alice.cert_pem);
    let alice_key = pki.write("alice.key", &alice.key_pem);
    let req = b"GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let r = s_client(
        &pki,
        addr,
        &[
            os("-cert"),
            os(&alice_cert),
            os("-key"),
            os(&alice_key),
            os("-ign_eof"),
            os("-quiet"),
        ],
        req,
    );
    assert!(r.ok(), "{r:?}");
    assert!(r.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{r:?}");
    assert!(
        r.stdout
            .contains(r#""client_cert_name":"CN=alice,O=Example""#),
        "{r:?}"
    );
    let r = s_client(&pki, addr, &[os("-ign_eof"), os("-quiet")], req);
    assert!(!r.stdout.contains("HTTP/1.1"), "{r:?}");
    assert!(r.stderr.contains("certificate required"), "{r:?}");

    // curl with and without a certificate.
    let url = format!("https://127.0.0.1:{}/info", addr.port());
    let r = curl(&[
        os("--cacert"),
        os(&pki.ca_path),
        os("--cert"),
        os(&alice_cert),
        os("--key"),
        os(&alice_key),
        os(&url),
    ]);
    assert!(r.ok(), "{r:?}");
    assert!(
        r.stdout
            .contains(r#""client_cert_name":"CN=alice,O=Example""#),
        "{r:?}"
    );
    let r = curl(&[os("--cacert"), os(&pki.ca_path), os(&url)]);
    assert!(!r.ok(), "{r:?}");
    assert_eq!(r.stdout, "", "{r:?}");
}

#[test]
fn mtls_optional() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(
        &["https://127.0.0.1:0"],
        Some(pki.mtls(&cert, &key, ClientVerify::Optional)),
    );
    let addr = srv.addr();
    run(async {
        for versions in [tls13(), tls12()] {
            // No certificate: served, nothing to report.
            let tls = fetch(addr, &client(pki.roots(), versions, None), "/info")
                .await
                .expect("no client cert")
                .tls();
            assert!(tls.client_cert_chain.is_empty());
            assert_eq!(tls.client_cert_name, None);
            assert_eq!(tls.client_cert_error, None);

            // A certificate from the CA: verified.
            let bob = pki.client(&[
                (DnType::OrganizationName, "Example"),
                (DnType::OrganizationalUnitName, "Ops"),
                (DnType::CommonName, "bob"),
            ]);
            let cfg = client(
                pki.roots(),
                versions,
                Some((vec![bob.der.clone()], bob.key_der())),
            );
            let tls = fetch(addr, &cfg, "/info")
                .await
                .expect("trusted cert")
                .tls();
            assert_eq!(tls.client_cert_chain.len(), 1);
            assert_eq!(pem_der(&tls.client_cert_chain[0]), bob.der);
            assert_eq!(
                tls.client_cert_name.as_deref(),
                Some("CN=bob,OU=Ops,O=Example")
            );
            assert_eq!(tls.client_cert_error, None);

            // A self-signed one: still served, with the reason it did not verify.
            let mallory = untrusted_client("mallory");
            let cfg = client(
                pki.roots(),
                versions,
                Some((vec![mallory.der.clone()], mallory.key_der())),
            );
            let r = fetch(addr, &cfg, "/info")
                .await
                .expect("untrusted cert, optional");
            assert_eq!(r.status, 200);
            let tls = r.tls();
            assert_eq!(tls.client_cert_chain.len(), 1);
            assert_eq!(pem_der(&tls.client_cert_chain[0]), mallory.der);
            assert_eq!(tls.client_cert_name.as_deref(), Some("CN=mallory"));
            assert_eq!(
                tls.client_cert_error.as_deref(),
                Some("invalid peer certificate: UnknownIssuer")
            );
        }

        // RFC 4514 escaping in the name.
        let odd = pki.client(&[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "Smith, Bob+Co"),
        ]);
        let cfg = client(
            pki.roots(),
            tls13(),
            Some((vec![odd.der.clone()], odd.key_der())),
        );
        let tls = fetch(addr, &cfg, "/info").await.expect("odd name").tls();
        assert_eq!(
            tls.client_cert_name.as_deref(),
            Some(r"CN=Smith\, Bob\+Co,O=Example")
        );
    });
}

#[test]
fn resumed_sessions_describe_the_same_connection() {
    let pki = Pki::new();
    let (leaf, cert, key) = pki.server_files("server");
    let alice = pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "alice"),
    ]);
    let srv = start(
        &["https://127.0.0.1:0"],
        Some(pki.mtls(&cert, &key, ClientVerify::Required)),
    );
    run(async {
        for versions in [tls13(), tls12()] {
            let cfg = resuming_client(
                pki.roots(),
                versions,
                Some((vec![alice.der.clone()], alice.key_der())),
            );
            let mut first = connect(srv.addr(), &cfg).await.expect("full handshake");
            assert_eq!(
                first.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Full)
            );
            // Reading the response also takes in the TLS 1.3 session tickets.
            let full = get(&mut first, "/info").await.expect("GET").tls();
            assert_eq!(full.client_cert_name.as_deref(), Some("CN=alice,O=Example"));
            assert_eq!(
                pem_der(full.server_cert.as_deref().expect("cert")),
                leaf.der
            );

            let mut second = connect(srv.addr(), &cfg).await.expect("resumption");
            assert_eq!(
                second.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Resumed)
            );
            let resumed = get(&mut second, "/info").await.expect("GET").tls();
            // The client certificate of the original handshake is still there.
            assert_eq!(resumed, full);
        }
    });
}

#[test]
fn client_verify_without_ca_is_an_error() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    for verify in [ClientVerify::Optional, ClientVerify::Required] {
        let mut t = pki.tls(&cert, &key);
        t.client_verify = verify;
        let err = match try_serve_on(app, &["https://127.0.0.1:0"], |c| {
            c.lifespan = LifespanMode::Off;
            c.tls = Some(t);
        }) {
            Ok(_) => panic!("{verify:?} without a CA started"),
            Err(e) => e,
        };
        assert!(err.contains("needs --ssl-ca"), "{err}");
    }
}

#[test]
fn sighup_without_tls_keeps_serving() {
    let mut p = ServerProc::spawn(&[os("--listen"), os("http://127.0.0.1:0")]);
    let log = p.wait_log("listening on http://", 1);
    let line = log
        .lines()
        .find(|l| l.contains("listening on http://"))
        .unwrap_or_default();
    let addr: SocketAddr = line
        .split_once("listening on http://")
        .map(|(_, a)| a.trim())
        .unwrap_or_default()
        .parse()
        .expect("address in the log");
    run(async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(get(&mut s, "/").await.expect("GET").status, 200);
        p.signal("HUP");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            get(&mut s, "/").await.expect("GET after SIGHUP").status,
            200
        );
    });
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "{}",
        p.stderr()
    );
}

/// Without TLS there is nothing to reload, yet SIGHUP logs that the certificate was reloaded.
#[test]
fn sighup_without_tls_claims_no_reload() {
    let mut p = ServerProc::spawn(&[os("--listen"), os("http://127.0.0.1:0")]);
    p.wait_log("listening on http://", 1);
    // The handler is installed before the listeners are announced.
    p.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let log = p.stderr();
    assert!(!log.contains("TLS certificate reloaded"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// 7. Startup errors of the binary
// ---------------------------------------------------------------------------------------------

#[test]
fn startup_errors_name_the_file() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let (_, _, other_key) = pki.server_files("other");
    let missing = pki.path("missing.pem");
    let garbage = pki.write("garbage.pem", "this is not PEM at all\n");
    let bad_base64 = pki.write(
        "bad64.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
    );
    let bad_key64 = pki.write(
        "bad64.key",
        "-----BEGIN PRIVATE KEY-----\n!!!!not base64!!!!\n-----END PRIVATE KEY-----\n",
    );
    // A well-formed PEM key whose DER is nonsense.
    let junk_key = pki.write(
        "junk.key",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    );
    let show = |p: &Path| p.display().to_string();
    let cases: Vec<(&Path, &Path, Vec<String>)> = vec![
        (
            &missing,
            &key,
            vec![format!(
                "cannot read certificates (PEM) from {}",
                show(&missing)
            )],
        ),
        (&cert, &missing, vec![format!("from {}", show(&missing))]),
        (
            &cert,
            &other_key,
            vec![format!(
                "the key in {} does not fit the certificate in {}",
                show(&other_key),
                show(&cert)
            )],
        ),
        (
            &garbage,
            &key,
            vec![format!("no certificate (PEM) in {}", show(&garbage))],
        ),
        (
            &bad_base64,
            &key,
            vec![format!("from {}", show(&bad_base64))],
        ),
        (&cert, &garbage, vec![format!("from {}", show(&garbage))]),
        (
            &cert,
            &bad_key64,
            vec![format!("from {}", show(&bad_key64))],
        ),
        (&cert, &junk_key, vec![show(&junk_key)]),
        // A key where the certificate should be and the other way round.
        (
            &key,
            &key,
            vec![format!("no certificate (PEM) in {}", show(&key))],
        ),
        (&cert, &cert, vec![format!("from {}", show(&cert))]),
    ];
    for (c, k, want) in cases {
        let (st, stderr) = startup_failure(&[
            os("--listen"),
            os("https://127.0.0.1:0"),
            os("--ssl-cert"),
            os(c),
            os("--ssl-key"),
            os(k),
        ]);
        assert_eq!(st.code(), Some(1), "cert {c:?} key {k:?}: {stderr}");
        assert!(stderr.contains("pagi-server: error: "), "{stderr}");
        for w in want {
            assert!(
                stderr.contains(&w),
                "cert {c:?} key {k:?}: want {w:?} in:\n{stderr}"
            );
        }
    }

    // A missing CA file and client verification without one.
    let (st, stderr) = startup_failure(&[
        os("--listen"),
        os("https://127.0.0.1:0"),
        os("--ssl-cert"),
        os(&cert),
        os("--ssl-key"),
        os(&key),
        os("--ssl-ca"),
        os(&missing),
        os("--ssl-client-verify"),
        os("required"),
    ]);
    assert_eq!(st.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&show(&missing)), "{stderr}");
    let (st, stderr) = startup_failure(&[
        os("--listen"),
        os("https://127.0.0.1:0"),
        os("--ssl-cert"),
        os(&cert),
        os("--ssl-key"),
        os(&key),
        os("--ssl-client-verify"),
        os("required"),
    ]);
    assert_eq!(st.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs --ssl-ca"), "{stderr}");
}

#[test]
fn cli_options_map_to_the_tls_config() {
    use clap::Parser;
    use pagi_server::cli::Cli;
    let cli = Cli::parse_from([
        "pagi-server",
        "--ssl-cert",
        "c.pem",
        "--ssl-key",
        "k.pem",
        "--ssl-ca",
        "ca.pem",
        "--ssl-client-verify",
        "required",
        "--ssl-min-version",
        "1.3",
        "--timeout-tls-handshake",
        "300ms",
    ]);
    let t = cli.config().expect("config").tls.expect("tls");
    assert_eq!(t.cert, PathBuf::from("c.pem"));
    assert_eq!(t.key, PathBuf::from("k.pem"));
    assert_eq!(t.ca, Some(PathBuf::from("ca.pem")));
    assert_eq!(t.client_verify, ClientVerify::Required);
    assert_eq!(t.min_version, MinVersion::Tls13);
    assert_eq!(t.handshake_timeout, Duration::from_millis(300));

    let cli = Cli::parse_from(["pagi-server", "--ssl-cert", "c.pem", "--ssl-key", "k.pem"]);
    let t = cli.config().expect("config").tls.expect("tls");
    assert_eq!(t.ca, None);
    assert_eq!(t.client_verify, ClientVerify::None);
    assert_eq!(t.min_version, MinVersion::Tls12);
    assert_eq!(t.handshake_timeout, Duration::from_secs(10));
    assert_eq!(t.watch_interval, Some(Duration::from_secs(5)));

    assert!(Cli::parse_from(["pagi-server"])
        .config()
        .expect("config")
        .tls
        .is_none());
    // Half a pair, unknown values, or client verification without a certificate.
    assert!(Cli::try_parse_from(["pagi-server", "--ssl-cert", "c.pem"]).is_err());
    assert!(Cli::try_parse_from(["pagi-server", "--ssl-key", "k.pem"]).is_err());
    for (flag, v) in [
        ("--ssl-min-version", "1.1"),
        ("--ssl-client-verify", "maybe"),
    ] {
        assert!(
            Cli::try_parse_from(["pagi-server", "--ssl-cert", "c", "--ssl-key", "k", flag, v])
                .is_err(),
            "{flag} {v}"
        );
    }
    let cli = Cli::parse_from(["pagi-server", "--ssl-client-verify", "optional"]);
    assert!(cli.config().is_err());
}

// ---------------------------------------------------------------------------------------------
// 8. Key formats
// ---------------------------------------------------------------------------------------------

/// Runs `openssl` and checks it succeeded.
fn openssl_ok(args: &[&str]) {
    let args: Vec<&OsStr> = args.iter().map(os).collect();
    let r = openssl(&args, b"");
    assert!(r.ok(), "openssl {args:?}: {r:?}");
}

#[test]
fn key_formats_pkcs8_pkcs1_sec1() {
    let pki = Pki::new();
    let p = |n: &str| pki.path(n).display().to_string();

    // RSA: PKCS#8 from openssl genpkey (rcgen signs the certificate for its public key), then
    // the same key as PKCS#1 ("RSA PRIVATE KEY") for the server.
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p("rsa8.key"),
    ]);
    openssl_ok(&[
        "rsa",
        "-in",
        &p("rsa8.key"),
        "-traditional",
        "-out",
        &p("rsa1.key"),
    ]);
    // EC: SEC1 ("EC PRIVATE KEY") as `openssl ecparam -genkey` writes it (with an EC PARAMETERS
    // block first), and its PKCS#8 form for rcgen.
    openssl_ok(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        &p("sec1.key"),
    ]);
    openssl_ok(&["pkey", "-in", &p("sec1.key"), "-out", &p("ec8.key")]);
    let read = |n: &str| fs::read_to_string(pki.path(n)).expect("key file");

    let rsa = KeyPair::from_pkcs8_pem_and_sign_algo(&read("rsa8.key"), &rcgen::PKCS_RSA_SHA256)
        .expect("RSA key");
    let ec = KeyPair::from_pem(&read("ec8.key")).expect("EC key");
    let rsa_leaf = pki.sign(&server_params("rsa"), &rsa);
    let ec_leaf = pki.sign(&server_params("ec"), &ec);
    let rcgen_leaf = pki.server("rcgen");
    let rsa_pem = pki.write("rsa.pem", &rsa_leaf.cert_pem);
    let ec_pem = pki.write("ec.pem", &ec_leaf.cert_pem);
    let rcgen_pem = pki.write("rcgen.pem", &rcgen_leaf.cert_pem);
    let rcgen_key = pki.write("rcgen.key", &rcgen_leaf.key_pem);

    let cases = [
        (
            "PKCS#8 EC (rcgen)",
            &rcgen_leaf,
            &rcgen_pem,
            rcgen_key,
            "-----BEGIN PRIVATE KEY-----",
        ),
        (
            "PKCS#8 EC (openssl)",
            &ec_leaf,
            &ec_pem,
            pki.path("ec8.key"),
            "-----BEGIN PRIVATE KEY-----",
        ),
        (
            "SEC1 EC",
            &ec_leaf,
            &ec_pem,
            pki.path("sec1.key"),
            "-----BEGIN EC PRIVATE KEY-----",
        ),
        (
            "PKCS#8 RSA",
            &rsa_leaf,
            &rsa_pem,
            pki.path("rsa8.key"),
            "-----BEGIN PRIVATE KEY-----",
        ),
        (
            "PKCS#1 RSA",
            &rsa_leaf,
            &rsa_pem,
            pki.path("rsa1.key"),
            "-----BEGIN RSA PRIVATE KEY-----",
        ),
    ];
    run(async {
        for (what, leaf, cert, key, header) in cases {
            let text = fs::read_to_string(&key).expect("key file");
            assert!(text.contains(header), "{what}: {text}");
            let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(cert, &key)));
            for versions in [tls13(), tls12()] {
                let mut s = connect(srv.addr(), &client(pki.roots(), versions, None))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(&negotiated(&s).3, &leaf.der, "{what}");
                let r = get(&mut s, "/").await.expect("GET");
                assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "{what}");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 9. Handshake timeout and garbage
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_timeout_closes_silent_and_stalled_clients() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let mut t = pki.tls(&cert, &key);
    t.handshake_timeout = Duration::from_millis(300);
    let srv = start(&["https://127.0.0.1:0"], Some(t));
    run(async {
        // Silent, and stalled after the first bytes of a ClientHello record.
        let mut silent = TcpStream::connect(srv.addr()).await.expect("connect");
        let mut stalled = TcpStream::connect(srv.addr()).await.expect("connect");
        let started = Instant::now();
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .expect("write");
        // Meanwhile a real client is served.
        let cfg = client(pki.roots(), tls_any(), None);
        let r = fetch(srv.addr(), &cfg, "/").await.expect("GET meanwhile");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
        for (what, s) in [("silent", &mut silent), ("stalled", &mut stalled)] {
            let (bytes, closed) = read_until_closed(s, Duration::from_secs(3)).await;
            assert!(closed, "{what}: still open after 3 s");
            assert!(bytes.is_empty(), "{what}: got {bytes:?}");
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "closed after {took:?}");
        // Still serving.
        let r = fetch(srv.addr(), &cfg, "/").await.expect("GET after");
        assert_eq!(r.status, 200);
    });
}

#[test]
fn default_handshake_timeout_keeps_a_slow_client() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        // With the default 10 s a client that waits 1 s before its hello still gets through.
        let tcp = TcpStream::connect(srv.addr()).await.expect("connect");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut s = handshake(tcp, &client(pki.roots(), tls_any(), None))
            .await
            .expect("late handshake");
        let r = get(&mut s, "/").await.expect("GET");
        assert_eq!(r.status, 200);
    });
}

#[test]
fn plaintext_and_garbage_on_a_tls_port_are_closed() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        let mut kept = connect(srv.addr(), &cfg).await.expect("handshake");
        let inputs: [&[u8]; 3] = [
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            &[0u8; 64],
            b"\x16\x03\x01\x00\x05hello",
        ];
        for input in inputs {
            let mut s = TcpStream::connect(srv.addr()).await.expect("connect");
            s.write_all(input).await.expect("write");
            let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
            assert!(closed, "{input:?}: still open");
            // At most a TLS alert record, never an HTTP answer.
            assert!(
                bytes.is_empty() || (bytes[0] == 0x15 && bytes.len() == 7),
                "{input:?}: got {bytes:?}"
            );
        }
        let r = get(&mut kept, "/").await.expect("kept connection");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
        let r = fetch(srv.addr(), &cfg, "/").await.expect("new connection");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    });
}

// ---------------------------------------------------------------------------------------------
// 10. Reload
// ---------------------------------------------------------------------------------------------

#[test]
fn reload_through_the_handle() {
    let pki = Pki::new();
    let (first, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    let addr = srv.addr();
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        let mut kept = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&kept).3, first.der);
        let r = get(&mut kept, "/info").await.expect("GET");
        assert_eq!(
            pem_der(r.tls().server_cert.as_deref().expect("cert")),
            first.der
        );

        // Reloading unchanged files is fine.
        srv.handle().reload_tls().expect("reload unchanged");

        let second = pki.server("second");
        pki.write("server.key", &second.key_pem);
        pki.write("server.pem", &second.cert_pem);
        srv.handle().reload_tls().expect("reload");

        let mut fresh = connect(addr, &cfg).await.expect("handshake after reload");
        assert_eq!(negotiated(&fresh).3, second.der);
        let tls = get(&mut fresh, "/info").await.expect("GET").tls();
        assert_eq!(
            pem_der(tls.server_cert.as_deref().expect("cert")),
            second.der
        );

        // The connection from before goes on, and still describes its own certificate.
        let r = get(&mut kept, "/info").await.expect("kept connection");
        assert_eq!(r.status, 200);
        assert_eq!(
            pem_der(r.tls().server_cert.as_deref().expect("cert")),
            first.der
        );
        assert_eq!(negotiated(&kept).3, first.der);
    });
}

/// A reload drops the resumable sessions: a client that tries to resume one made with the old
/// certificate gets a full handshake with the new certificate, and the scope names that one.
#[test]
fn resumption_after_reload_reports_the_sessions_certificate() {
    let pki = Pki::new();
    let (first, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    run(async {
        let cfg = resuming_client(pki.roots(), tls13(), None);
        let mut s = connect(srv.addr(), &cfg).await.expect("handshake");
        get(&mut s, "/").await.expect("GET");
        let second = pki.server("second");
        pki.write("server.key", &second.key_pem);
        pki.write("server.pem", &second.cert_pem);
        srv.handle().reload_tls().expect("reload");

        let mut s = connect(srv.addr(), &cfg).await.expect("handshake");
        let kind = s.get_ref().1.handshake_kind();
        let seen = negotiated(&s).3;
        let tls = get(&mut s, "/info").await.expect("GET").tls();
        let reported = pem_der(tls.server_cert.as_deref().expect("cert"));
        assert_eq!(kind, Some(HandshakeKind::Full));
        assert_ne!(seen, first.der, "the old session must not be resumed");
        assert_eq!(seen, second.der);
        assert_eq!(
            reported, seen,
            "the scope names another certificate than the session's"
        );
    });
}

#[test]
fn failed_reload_keeps_the_old_certificate() {
    let pki = Pki::new();
    let (first, cert, key) = pki.server_files("server");
    let srv = start(&["https://127.0.0.1:0"], Some(pki.tls(&cert, &key)));
    let addr = srv.addr();
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        let still_first = || async {
            let s = connect(addr, &cfg).await.expect("handshake");
            assert_eq!(negotiated(&s).3, first.der);
        };

        // A broken key.
        pki.write(
            "server.key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = srv
            .handle()
            .reload_tls()
            .expect_err("broken key")
            .to_string();
        assert!(err.contains(&key.display().to_string()), "{err}");
        still_first().await;

        // A key of another certificate.
        let other = pki.server("other");
        pki.write("server.key", &other.key_pem);
        let err = srv
            .handle()
            .reload_tls()
            .expect_err("mismatched key")
            .to_string();
        assert!(err.contains("does not fit the certificate"), "{err}");
        still_first().await;

        // The certificate file gone.
        fs::remove_file(&cert).expect("remove");
        let err = srv.handle().reload_tls().expect_err("no cert").to_string();
        assert!(err.contains(&cert.display().to_string()), "{err}");
        still_first().await;

        // A good pair again.
        pki.write("server.pem", &other.cert_pem);
        srv.handle().reload_tls().expect("reload");
        let s = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&s).3, other.der);
    });
}

#[test]
fn reload_when_the_files_change() {
    let pki = Pki::new();
    let (first, cert, key) = pki.server_files("server");
    let mut t = pki.tls(&cert, &key);
    t.watch_interval = Some(Duration::from_millis(50));
    let srv = start(&["https://127.0.0.1:0"], Some(t));
    let addr = srv.addr();
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        let mut kept = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&kept).3, first.der);

        let second = pki.server("second");
        pki.write("server.key", &second.key_pem);
        pki.write("server.pem", &second.cert_pem);
        wait_for_server_cert(addr, &cfg, &second.der).await;

        // A broken key on disk: the watcher keeps the current certificate.
        pki.write("server.key", "garbage\n");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&s).3, second.der);

        // Fixed: picked up.
        let third = pki.server("third");
        pki.write("server.pem", &third.cert_pem);
        pki.write("server.key", &third.key_pem);
        wait_for_server_cert(addr, &cfg, &third.der).await;

        let r = get(&mut kept, "/").await.expect("kept connection");
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    });
}

#[test]
fn sighup_reloads_the_binary() {
    let pki = Pki::new();
    let (first, cert, key) = pki.server_files("server");
    let mut p = ServerProc::spawn(&[
        os("--listen"),
        os("https://127.0.0.1:0"),
        os("--ssl-cert"),
        os(&cert),
        os("--ssl-key"),
        os(&key),
    ]);
    let addr = p.https_addr();
    run(async {
        let cfg = client(pki.roots(), tls_any(), None);
        // A full request first: by then the SIGHUP handler is installed.
        let mut kept = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&kept).3, first.der);
        let r = get(&mut kept, "/").await.expect("GET");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, world!"[..]));

        let second = pki.server("second");
        pki.write("server.key", &second.key_pem);
        pki.write("server.pem", &second.cert_pem);
        p.signal("HUP");
        p.wait_log("SIGHUP: TLS certificate reloaded", 1);
        let s = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&s).3, second.der);

        // A broken key: an error in the log, the second certificate stays.
        pki.write("server.key", "garbage\n");
        p.signal("HUP");
        let log = p.wait_log(
            "SIGHUP: cannot reload the TLS certificate (keeping the old one)",
            1,
        );
        let line = log
            .lines()
            .find(|l| l.contains("SIGHUP: cannot reload"))
            .unwrap_or_default();
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains(&key.display().to_string()), "{line}");
        let mut s = connect(addr, &cfg).await.expect("handshake");
        assert_eq!(negotiated(&s).3, second.der);
        let r = get(&mut s, "/").await.expect("GET");
        assert_eq!(r.status, 200);

        // The connection from before the reloads still works.
        let r = get(&mut kept, "/").await.expect("kept connection");
        assert_eq!(r.status, 200);
    });
    // SIGTERM still stops it cleanly.
    p.signal("TERM");
    let st = p.wait_exit().expect("exits after SIGTERM");
    assert_eq!(st.code(), Some(0), "{}", p.stderr());
}

// ---------------------------------------------------------------------------------------------
// WebSocket and SSE over TLS
// ---------------------------------------------------------------------------------------------

/// A WebSocket over TLS: the scope says `wss` and carries the tls extension; messages echo.
#[test]
fn wss_scope_and_echo() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let tls = pki.tls(&cert, &key);
    let srv = serve_on(
        |scope: Scope, rx: Receiver, tx: Sender| async move {
            let Scope::Websocket(req) = scope else {
                return Err::<(), BoxError>("websocket only".into());
            };
            rx.receive().await?; // websocket.connect
            tx.send(SendEvent::WebsocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            let info = serde_json::json!({
                "scheme": req.scheme,
                "tls_version": req.extensions.tls.as_ref().map(|t| t.tls_version),
            });
            tx.send(SendEvent::WebsocketSend(pagi::Message::Text(
                info.to_string(),
            )))
            .await?;
            while let pagi::ReceiveEvent::WebsocketReceive(m) = rx.receive().await? {
                tx.send(SendEvent::WebsocketSend(m)).await?;
            }
            Ok(())
        },
        &["https://127.0.0.1:0"],
        move |c| {
            c.lifespan = LifespanMode::Off;
            c.tls = Some(tls);
        },
    );
    run(async {
        let cfg = client(pki.roots(), tls13(), None);
        let s = connect(srv.addr(), &cfg).await.expect("handshake");
        let url = format!("wss://localhost:{}/chat", srv.addr().port());
        let (mut ws, resp) =
            tokio::time::timeout(IO_LIMIT, tokio_tungstenite::client_async(url, s))
                .await
                .expect("in time")
                .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        let first = ws.next().await.expect("a message").expect("ok");
        assert_eq!(
            first,
            Message::Text(r#"{"scheme":"wss","tls_version":772}"#.into())
        );
        ws.send(Message::Text("over tls".into()))
            .await
            .expect("send");
        assert_eq!(
            ws.next().await.expect("echo").expect("ok"),
            Message::Text("over tls".into())
        );
        ws.send(Message::Binary(vec![0u8, 1, 2, 255].into()))
            .await
            .expect("send");
        assert_eq!(
            ws.next().await.expect("echo").expect("ok"),
            Message::Binary(vec![0u8, 1, 2, 255].into())
        );
        ws.close(None).await.expect("close");
    });
}

/// An SSE stream over TLS: the server's clock, through curl.
#[test]
fn sse_over_tls_with_curl() {
    let pki = Pki::new();
    let (_, cert, key) = pki.server_files("server");
    let tls = pki.tls(&cert, &key);
    let srv = serve_on(pagi_server::demo::app, &["https://127.0.0.1:0"], move |c| {
        c.lifespan = LifespanMode::Off;
        c.tls = Some(tls);
    });
    let out = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "10", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args(["-H", "Accept: text/event-stream", "--resolve"])
        .arg(format!("localhost:{}:127.0.0.1", srv.addr().port()))
        .arg(format!(
            "https://localhost:{}/clock?ms=20&n=2",
            srv.addr().port()
        ))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{body} {:?}", out);
    assert!(body.contains("event: tick\nid: 0\ndata: "), "{body}");
    assert!(body.contains("event: tick\nid: 1\ndata: "), "{body}");
}
