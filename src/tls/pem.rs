//! Reading PEM certificate and key files, and checking a certificate's validity period, with
//! errors that name the file. Knows nothing about flags or connections.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file, in order; an error when there is none.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("open {shown}: {}", pem_error_text(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: {}", pem_error_text(&e)))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no certificate found"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("{shown}: no private key found"),
        e => format!("open {shown}: {}", pem_error_text(&e)),
    })
}

fn pem_error_text(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        e => format!("not a PEM file ({e:?})"),
    }
}

/// Fails when `cert` is not valid now (expired, or not yet valid), naming `path` and the
/// period; also when it is not an X.509 certificate at all.
pub fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(format!(
            "{}: the certificate expired on {}",
            path.display(),
            validity.not_after
        ));
    }
    if now < validity.not_before {
        return Err(format!(
            "{}: the certificate is not valid before {}",
            path.display(),
            validity.not_before
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_foreign_files_are_named() {
        let dir = std::env::temp_dir().join(format!("tern-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = certs(&dir.join("missing.pem")).unwrap_err();
        assert!(
            err.starts_with("open ") && err.contains("missing.pem"),
            "{err}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(certs(&empty).unwrap_err().contains("no certificate"));
        assert!(private_key(&empty).unwrap_err().contains("no private key"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn validity_period_is_checked() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let old = params.self_signed(&key).unwrap();
        let err = check_validity(Path::new("old.pem"), old.der()).unwrap_err();
        assert!(err.contains("old.pem") && err.contains("expired"), "{err}");
        params.not_after = rcgen::date_time_ymd(4000, 1, 1);
        let fine = params.self_signed(&key).unwrap();
        check_validity(Path::new("fine.pem"), fine.der()).unwrap();
        params.not_before = rcgen::date_time_ymd(3999, 1, 1);
        let early = params.self_signed(&key).unwrap();
        let err = check_validity(Path::new("early.pem"), early.der()).unwrap_err();
        assert!(err.contains("not valid before"), "{err}");
    }
}
