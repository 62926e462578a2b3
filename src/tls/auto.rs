//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate and key generated into the data
//! directory (`fixtures/client`, `fixtures/peer`, as etcd 3 does) and reused on later starts
//! while they still load and are valid. Such certificates encrypt but authenticate nobody:
//! clients (and peers) must skip verification to use them.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};

/// How long a generated certificate is valid (etcd's one year).
const VALIDITY_DAYS: i64 = 365;

/// The certificate and key files in `dir` (`cert.pem`, `key.pem`): kept when they load and are
/// valid, else generated for `hosts` (IP addresses or DNS names; ports are ignored).
pub fn self_signed(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if usable(&cert_path, &key_path) {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut names: Vec<String> = hosts
        .iter()
        .map(|h| {
            let h = h.rsplit_once(':').map_or(h.as_str(), |(host, port)| {
                // A bare IPv6 address has colons of its own.
                if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') {
                    host
                } else {
                    h.as_str()
                }
            });
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        })
        .filter(|h| !h.is_empty())
        .collect();
    names.sort();
    names.dedup();
    let key = KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?;
    let mut params =
        CertificateParams::new(names).map_err(|e| format!("certificate names: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tern");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("generating a certificate: {e}"))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    tracing::info!(
        "generated a self-signed certificate {} (valid {VALIDITY_DAYS} days)",
        cert_path.display()
    );
    Ok((cert_path, key_path))
}

fn usable(cert: &Path, key: &Path) -> bool {
    let Ok(chain) = super::pem::certs(cert) else {
        return false;
    };
    super::pem::private_key(key).is_ok() && super::pem::check_validity(cert, &chain[0]).is_ok()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = std::env::temp_dir().join(format!("tern-autotls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let hosts = [
            "127.0.0.1:2379".to_string(),
            "localhost:2380".into(),
            "[::1]:1".into(),
        ];
        let (cert, key) = self_signed(&dir, &hosts).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let chain = super::super::pem::certs(&cert).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let san = &parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        use x509_parser::extensions::GeneralName;
        assert!(
            san.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
            "{san:?}"
        );
        assert!(san.contains(&GeneralName::DNSName("localhost")), "{san:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        self_signed(&dir, &hosts).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "a valid pair is reused"
        );
        std::fs::write(&key, "garbage").unwrap();
        self_signed(&dir, &hosts).unwrap();
        assert_ne!(
            std::fs::read(&cert).unwrap(),
            first,
            "a broken pair is replaced"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
