//! The TLS side of a listener: the server configuration built from a side's files (checked at
//! start so a bad file stops tern with one line naming the flag and the file), re-read when
//! those files change, and the handshake of each accepted connection (bounded in time, its
//! failures logged rate-limited, never affecting other connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use super::reload::Reloading;
use super::{pem, SideFiles};
use crate::ratelog::RateLimited;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What Go's HTTPS server answers a plain HTTP request with.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// TLS sessions remembered for resumption, per side.
const SESSION_CACHE: usize = 4096;

/// Roots from a CA file; errors name `flag`.
pub fn roots(flag: &str, path: &std::path::Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certs(path).map_err(|e| format!("{flag}: {e}"))? {
        roots
            .add(cert)
            .map_err(|e| format!("{flag}: {}: bad CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The server configuration of one side, from its files as they are now.
pub fn server_config(
    files: &SideFiles,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, String> {
    let flag = |name: &str| files.side.flag(name);
    let chain = pem::certs(&files.cert).map_err(|e| format!("{}: {e}", flag("cert-file")))?;
    pem::check_validity(&files.cert, &chain[0])
        .map_err(|e| format!("{}: {e}", flag("cert-file")))?;
    let key = pem::private_key(&files.key).map_err(|e| format!("{}: {e}", flag("key-file")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match (&files.trusted_ca, files.client_cert_auth) {
        (Some(ca), true) => {
            let roots = roots(&files.ca_flag, ca)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("{}: {}: {e}", files.ca_flag, ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "{} {} does not match {} {} (the key is not the certificate's)",
            flag("key-file"),
            files.key.display(),
            flag("cert-file"),
            files.cert.display()
        ),
        e => format!(
            "{} {} / {} {}: {e}",
            flag("cert-file"),
            files.cert.display(),
            flag("key-file"),
            files.key.display()
        ),
    })?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    // The server's suite order decides, as in Go's TLS server.
    config.ignore_client_order = true;
    Ok(config)
}

/// See the module documentation. Shared by every shard's listeners of one side.
pub struct ServerTls {
    side: super::Side,
    config: Reloading<ServerConfig>,
    failed: RateLimited,
}

impl ServerTls {
    /// Builds the configuration now; the error is one line naming the flag and the file.
    pub fn new(files: SideFiles, provider: Arc<CryptoProvider>) -> Result<ServerTls, String> {
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.trusted_ca.clone().filter(|_| files.client_cert_auth));
        let side = files.side;
        let what = format!("{} TLS certificate", side.noun());
        let config = Reloading::new(what, paths, move || server_config(&files, &provider))?;
        Ok(ServerTls {
            side,
            config,
            failed: RateLimited::new(crate::ratelog::DEFAULT_INTERVAL),
        })
    }

    /// The configuration new connections get (re-read if its files changed).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.get()
    }

    /// Completes the handshake of an accepted connection from `from` on `on`; `None` (logged)
    /// when it fails or takes longer than [`HANDSHAKE_TIMEOUT`]. A client that speaks plain
    /// HTTP gets Go's answer (`400`, "Client sent an HTTP request to an HTTPS server.").
    pub async fn accept(
        &self,
        stream: TcpStream,
        from: Option<SocketAddr>,
        on: SocketAddr,
    ) -> Option<futures_rustls::server::TlsStream<TcpStream>> {
        let acceptor = futures_rustls::TlsAcceptor::from(self.config());
        let handshake = async {
            let mut first = [0u8; 1];
            if matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase()) {
                let mut stream = stream;
                let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = stream.close().await;
                return Some(Err(std::io::Error::other(
                    "the client sent an HTTP request to an HTTPS server",
                )));
            }
            Some(acceptor.accept(stream).await)
        };
        let timeout = async {
            glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
            None
        };
        let from = from.map_or_else(|| "?".to_string(), |a| a.to_string());
        match futures_lite::future::or(handshake, timeout).await {
            Some(Ok(tls)) => Some(tls),
            Some(Err(e)) => {
                crate::ratelog!(
                    self.failed,
                    "{} TLS handshake from {from} on {on} failed: {e}",
                    self.side.noun()
                );
                None
            }
            None => {
                crate::ratelog!(
                    self.failed,
                    "{} TLS handshake from {from} on {on} did not finish within {}s",
                    self.side.noun(),
                    HANDSHAKE_TIMEOUT.as_secs()
                );
                None
            }
        }
    }
}
