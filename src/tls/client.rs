//! TLS client configurations: ternctl's, from etcd's `--ca-file`, `--cert-file` and
//! `--key-file` flags, and the peer transport's (the same shape, from the `--peer-*` files).
//!
//! Without a CA file the system's trust store is used, as Go's TLS client does.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::reload::Reloading;
use super::SideFiles;

/// The files a TLS client is configured from (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFiles {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

impl ClientFiles {
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// The host a certificate is checked against for `authority` (`host:port`, IPv6 in brackets):
/// the host without the port and brackets, as Go's TLS client takes it.
pub fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The server name to verify when dialling `authority` over TLS.
pub fn server_name(authority: &str) -> std::io::Result<ServerName<'static>> {
    let host = host_of(authority);
    ServerName::try_from(host.to_string()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad host {host:?}"),
        )
    })
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    super::pem::certs(Path::new(path))
}

/// Builds the client configuration: trusted roots, and a client certificate when both
/// `cert_file` and `key_file` are given.
pub fn client_config(files: &ClientFiles) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            for cert in certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{ca}: bad CA certificate: {e}"))?;
            }
        }
        None => roots = native_roots(),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key = super::pem::private_key(Path::new(key))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {cert}: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert-file and --key-file must be given together".into()),
    };
    Ok(Arc::new(config))
}

/// The peer transport's client configuration: other members' certificates are verified
/// against the peer CA (the system's roots without one; not at all with `--peer-auto-tls`,
/// whose self-signed certificates nobody can verify), and this member's peer certificate is
/// presented, so a peer that asks for client certificates can check it. Errors name the flag.
pub fn peer_client_config(
    files: Option<&SideFiles>,
    provider: &Arc<CryptoProvider>,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match files {
        Some(f) if f.self_signed => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider.clone()))),
        Some(SideFiles {
            trusted_ca: Some(ca),
            ca_flag,
            ..
        }) => builder.with_root_certificates(super::server::roots(ca_flag, ca)?),
        _ => builder.with_root_certificates(native_roots()),
    };
    match files {
        Some(f) => {
            let flag = |name: &str| f.side.flag(name);
            let chain =
                super::pem::certs(&f.cert).map_err(|e| format!("{}: {e}", flag("cert-file")))?;
            let key = super::pem::private_key(&f.key)
                .map_err(|e| format!("{}: {e}", flag("key-file")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{} {}: {e}", flag("cert-file"), f.cert.display()))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// [`peer_client_config`], re-read when its files change.
pub fn peer_client(
    files: Option<SideFiles>,
    provider: Arc<CryptoProvider>,
) -> Result<Reloading<ClientConfig>, String> {
    let paths = files.as_ref().map_or_else(Vec::new, |f| {
        let mut p = vec![f.cert.clone(), f.key.clone()];
        p.extend(f.trusted_ca.clone());
        p
    });
    Reloading::new("peer TLS client certificate", paths, move || {
        peer_client_config(files.as_ref(), &provider)
    })
}

/// A client configuration that accepts any server certificate (still checking the handshake
/// signatures): encryption without authentication, for servers on `--auto-tls` (what
/// `curl -k` or etcdctl's `--insecure-skip-tls-verify` do). No client certificate.
pub fn skip_verify_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    )
}

fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Accepts any server certificate but still checks the handshake signatures: for peers that
/// use `--peer-auto-tls` (encryption without authentication, as etcd 3 does).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_named() {
        let err = client_config(&ClientFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("tern-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = client_config(&ClientFiles {
            ca_file: Some(empty.display().to_string()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = client_config(&ClientFiles {
            cert_file: Some(empty.display().to_string()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("together"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn system_roots_without_a_ca_file() {
        assert!(client_config(&ClientFiles::default()).is_ok());
    }
}
