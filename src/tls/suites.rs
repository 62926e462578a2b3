//! `--cipher-suites`: Go's cipher-suite names (as etcd takes them) mapped onto the suites rustls
//! implements, and the crypto provider both sides use. TLS 1.3 suites are always enabled (Go
//! does not let them be configured either); the flag restricts and orders the TLS 1.2 ones.
//! Without the flag the order is Go's: AES-128-GCM first.

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::{CipherSuite, SupportedCipherSuite};

/// Go names of the TLS 1.2 suites rustls implements (Go's legacy alias names included).
const SUPPORTED: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Suites Go knows that rustls deliberately lacks (CBC, RC4, 3DES, RSA key exchange).
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The crypto provider for `--cipher-suites` (empty: every suite rustls has, its order).
pub fn provider(names: &[String]) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = ring::default_provider();
    // Go's order: AES-128-GCM before AES-256-GCM (as fast to break, cheaper to run), and the
    // server picks by its own order (see `server_config`), so tern and etcd agree on a suite.
    provider
        .cipher_suites
        .sort_by_key(|s| !format!("{:?}", s.suite()).contains("AES_128"));
    if names.is_empty() {
        return Ok(Arc::new(provider));
    }
    let all = provider.cipher_suites.clone();
    let find = |suite: CipherSuite| -> Option<SupportedCipherSuite> {
        all.iter().copied().find(|s| s.suite() == suite)
    };
    let mut chosen: Vec<SupportedCipherSuite> = all
        .iter()
        .copied()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        .collect();
    for name in names {
        let name = name.trim();
        match SUPPORTED.iter().find(|(n, _)| *n == name) {
            Some((_, suite)) => {
                let s = find(*suite)
                    .ok_or_else(|| format!("--cipher-suites: {name} is not available"))?;
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(s);
                }
            }
            None if GO_ONLY.contains(&name) => {
                return Err(format!(
                "--cipher-suites: {name} is not supported by tern (only ECDHE key exchange with \
                     AES-GCM or ChaCha20-Poly1305; TLS 1.3 suites are always enabled)"
            ))
            }
            None => return Err(format!("--cipher-suites: unknown cipher suite {name:?}")),
        }
    }
    provider.cipher_suites = chosen;
    Ok(Arc::new(provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &CryptoProvider) -> Vec<String> {
        p.cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn named_suites_restrict_tls12_and_keep_tls13() {
        let p = provider(&["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into()]).unwrap();
        let got = names(&p);
        assert!(
            got.contains(&"TLS13_AES_128_GCM_SHA256".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(!got.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        let default = names(&provider(&[]).unwrap());
        assert_eq!(default.len(), 9);
        assert_eq!(default[0], "TLS13_AES_128_GCM_SHA256", "{default:?}");
    }

    #[test]
    fn unknown_and_unsupported_names_are_refused_by_name() {
        let e = provider(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).unwrap_err();
        assert!(
            e.contains("--cipher-suites") && e.contains("not supported"),
            "{e}"
        );
        let e = provider(&["NOPE".into()]).unwrap_err();
        assert!(e.contains("unknown cipher suite \"NOPE\""), "{e}");
    }
}
