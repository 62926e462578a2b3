//! TLS for tern's clients (ternctl today; the peer transport and the server later): a rustls
//! client configuration from etcd's `--ca-file`, `--cert-file` and `--key-file` flags.
//!
//! Without `--ca-file` the system's trust store is used, as Go's TLS client does. Knows nothing
//! about HTTP.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

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

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| format!("open {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate found"));
    }
    Ok(certs)
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
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key =
                PrivateKeyDer::from_pem_file(Path::new(key)).map_err(|e| format!("{key}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {cert}: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert-file and --key-file must be given together".into()),
    };
    Ok(Arc::new(config))
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
