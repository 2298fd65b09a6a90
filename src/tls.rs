//! TLS listeners: certificates from PEM files (reloadable without downtime), ALPN, optional or
//! required client certificates, and the `tls` scope extension.

use base64::Engine;
use pagi::TlsInfo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::error::Error;

/// Whether clients must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientVerify {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one, or with one that does not verify, is still served
    /// (the scope's `client_cert_error` says why it did not verify).
    Optional,
    /// Required: the handshake fails without a certificate that verifies against `--ssl-ca`.
    Required,
}

/// Oldest TLS version accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (rustls's default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// TLS settings, shared by every TLS listener of a server.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to.
    pub ca: Option<PathBuf>,
    /// Client certificate policy. Default none.
    pub client_verify: ClientVerify,
    /// Oldest version. Default TLS 1.2.
    pub min_version: MinVersion,
    /// A client must finish the handshake within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// How often the certificate and key files are checked for changes (a change reloads
    /// them); `None` turns that off (SIGHUP still reloads). Default 5 s.
    pub watch_interval: Option<Duration>,
}

impl TlsConfig {
    /// Settings with a certificate and key, everything else at its default.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert: cert.into(),
            key: key.into(),
            ca: None,
            client_verify: ClientVerify::None,
            min_version: MinVersion::Tls12,
            handshake_timeout: Duration::from_secs(10),
            watch_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// The ALPN protocols offered, in the server's order of preference (`h2` only while HTTP/2 is
/// on). `http/1.0` is listed so that HTTP/1.0 clients that use ALPN are not refused.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];

/// A loaded TLS setup: the acceptor plus what is needed to describe connections and reload.
pub(crate) struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    certs: Arc<CertStore>,
    /// The strict verifier, re-run after an optional handshake to explain a bad certificate.
    strict: Option<Arc<dyn ClientCertVerifier>>,
    lenient: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) watch_interval: Option<Duration>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.certs.cert_path)
            .field("lenient", &self.lenient)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads and checks everything; errors name the file at fault.
    pub(crate) fn new(cfg: &TlsConfig, http2: bool) -> Result<Tls, Error> {
        let provider = provider();
        let loaded = load_cert(&cfg.cert, &cfg.key, &provider)?;
        let certs = Arc::new(CertStore {
            cert_path: cfg.cert.clone(),
            key_path: cfg.key.clone(),
            current: RwLock::new(Arc::new(loaded)),
            failed: RwLock::new(None),
            sessions: Sessions::default(),
        });
        let (verifier, strict, lenient): (Arc<dyn ClientCertVerifier>, _, _) = match cfg
            .client_verify
        {
            ClientVerify::None => (WebPkiClientVerifier::no_client_auth(), None, false),
            mode => {
                let Some(ca) = &cfg.ca else {
                    return Err(Error::new(
                        "--ssl-client-verify optional/required needs --ssl-ca",
                    ));
                };
                let roots = Arc::new(load_roots(ca)?);
                let strict = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| Error::new(format!("{}: {e}", ca.display())))?;
                if mode == ClientVerify::Required {
                    (strict.clone(), Some(strict), false)
                } else {
                    (Arc::new(Lenient(strict.clone())), Some(strict), true)
                }
            }
        };
        let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| Error::new(format!("TLS versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certs.clone());
        config.session_storage = certs.clone();
        config.alpn_protocols = ALPN
            .iter()
            .filter(|p| http2 || **p != b"h2")
            .map(|p| p.to_vec())
            .collect();
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certs,
            strict,
            lenient,
            handshake_timeout: cfg.handshake_timeout,
            watch_interval: cfg.watch_interval,
        })
    }

    /// Re-reads the certificate and key; on failure the old ones stay in use.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        self.certs.reload()
    }

    /// Reloads if the files changed since they were loaded.
    pub(crate) fn reload_if_changed(&self) {
        let now = file_stamps(&self.certs.cert_path, &self.certs.key_path);
        let changed = {
            let cur = self
                .certs
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let failed = self
                .certs
                .failed
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            // Files that failed to load are reported once, not at every look.
            cur.stamps != now && *failed != Some(now)
        };
        if changed {
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.certs.cert_path.display(), "TLS certificate changed on disk; reloaded")
                }
                Err(e) => {
                    *self
                        .certs
                        .failed
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Some(now);
                    tracing::error!("TLS certificate changed on disk but cannot be loaded (keeping the old one): {e}")
                }
            }
        }
    }

    /// Runs the handshake (bounded by the handshake timeout) and describes the result.
    pub(crate) async fn accept<IO>(&self, io: IO) -> io::Result<(TlsStream<IO>, Arc<TlsInfo>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let info = self.describe(stream.get_ref().1);
        Ok((stream, Arc::new(info)))
    }

    fn describe(&self, conn: &rustls::ServerConnection) -> TlsInfo {
        let server_cert = Some(
            self.certs
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .leaf_pem
                .clone(),
        );
        let peer = conn.peer_certificates().unwrap_or(&[]);
        let client_cert_name = peer.first().and_then(|c| subject_dn(c));
        let client_cert_error = match (&self.strict, peer.split_first()) {
            (Some(strict), Some((leaf, rest))) if self.lenient => strict
                .verify_client_cert(leaf, rest, UnixTime::now())
                .err()
                .map(|e| e.to_string()),
            _ => None,
        };
        TlsInfo {
            server_cert,
            client_cert_chain: peer.iter().map(|c| pem("CERTIFICATE", c)).collect(),
            client_cert_name,
            client_cert_error,
            tls_version: conn.protocol_version().map_or(0, u16::from),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map_or(0, |s| u16::from(s.suite())),
        }
    }
}

/// The current certificate, swapped atomically on reload; new handshakes use the new one,
/// established connections are not touched.
#[derive(Debug)]
struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<Loaded>>,
    /// The file stamps of the last load that failed.
    failed: RwLock<Option<Stamps>>,
    /// Resumable sessions; dropped on reload, so that a resumed session never outlives the
    /// certificate it was made with (the scope's `server_cert` stays true).
    sessions: Sessions,
}

/// Rustls's in-memory session cache, replaceable as a whole.
#[derive(Debug)]
struct Sessions(RwLock<Arc<rustls::server::ServerSessionMemoryCache>>);

impl Default for Sessions {
    fn default() -> Self {
        Sessions(RwLock::new(rustls::server::ServerSessionMemoryCache::new(
            256,
        )))
    }
}

impl Sessions {
    fn current(&self) -> Arc<rustls::server::ServerSessionMemoryCache> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn clear(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) =
            rustls::server::ServerSessionMemoryCache::new(256);
    }
}

impl rustls::server::StoresServerSessions for CertStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.sessions.current().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions.current().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions.current().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    leaf_pem: String,
    stamps: Stamps,
}

type Stamps = (Option<SystemTime>, Option<SystemTime>, u64, u64);

fn file_stamps(cert: &Path, key: &Path) -> Stamps {
    let m = |p: &Path| std::fs::metadata(p).ok();
    let (c, k) = (m(cert), m(key));
    (
        c.as_ref().and_then(|m| m.modified().ok()),
        k.as_ref().and_then(|m| m.modified().ok()),
        c.map_or(0, |m| m.len()),
        k.map_or(0, |m| m.len()),
    )
}

impl CertStore {
    fn reload(&self) -> Result<(), Error> {
        let loaded = load_cert(&self.cert_path, &self.key_path, &provider())?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        *self.failed.write().unwrap_or_else(PoisonError::into_inner) = None;
        self.sessions.clear();
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .key
                .clone(),
        )
    }
}

fn load_cert(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, Error> {
    let stamps = file_stamps(cert, key);
    let chain = read_certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::new(format!(
            "cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from {}: {e}",
            key.display()
        ))
    })?;
    let leaf_pem = pem("CERTIFICATE", &chain[0]);
    let ck = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        Error::new(format!(
            "the key in {} does not fit the certificate in {}: {e}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(Loaded {
        key: Arc::new(ck),
        leaf_pem,
        stamps,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::new(format!(
                "cannot read certificates (PEM) from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::new(format!(
            "no certificate (PEM) in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots
            .add(c)
            .map_err(|e| Error::new(format!("bad CA certificate in {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// PEM text of a DER object.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The subject of a certificate as an RFC 4514 string.
fn subject_dn(der: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

/// Optional client certificates: asks for one, accepts a missing or unverifiable one (the
/// handshake signature is still checked, so the client does hold the key it presents).
#[derive(Debug)]
struct Lenient(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Lenient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The failure is reported to the app through `client_cert_error` instead.
        let _ = self.0.verify_client_cert(end_entity, intermediates, now);
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> crate::io::Io for TlsStream<IO> {}
