//! tern's own discovery service (`--discovery-service`): what discovery.etcd.io does, served by
//! any member on its client URLs, so a site without internet access bootstraps new clusters
//! from one existing tern.
//!
//! `GET /new?size=N` (N from 1 to [`MAX_SIZE`], default 3) makes a token directory
//! `/_tern/discovery/<token>` with a TTL (`--discovery-service-ttl`; the directory, and every
//! registration under it, expires as a whole), sets `<dir>/_config/size` = N and answers
//! `<first advertised client URL>/v2/keys/_tern/discovery/<token>` as text. That URL is a plain
//! `/v2/keys` URL, so etcd's and tern's `--discovery` clients use it as is. `_tern` is hidden
//! from listings, as every key starting with `_` is.
//!
//! Owns the `/new` endpoint, the token's layout in the keys space, size parsing and the token
//! URL. Its writes are ordinary key commands proposed through [`crate::shard::Shard::propose`],
//! like a PUT on `/v2/keys`, so they are replicated and any member can serve `/new`. Knows
//! nothing about how members use a token (that is [`crate::cluster::discovery`]) nor about
//! how commands are replicated or stored.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use super::{method_not_allowed, text_response, unix_nanos_now, Api};
use crate::http::{Form, Method, Request, Response};
use crate::store::Command;

/// Where tokens live in the keys space.
pub const PREFIX: &str = "/_tern/discovery";
/// The size of a token made without `size`, as discovery.etcd.io.
pub const DEFAULT_SIZE: u64 = 3;
/// The largest size `/new` accepts: raft clusters of more than a few voting members are slow
/// (etcd recommends at most 7); a hundred is certainly a typo.
pub const MAX_SIZE: u64 = 100;

/// The service's settings, fixed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryService {
    /// `scheme://host:port` that token URLs start with: this member's first advertised client
    /// URL, the same whichever address or name the request came in on.
    pub base_url: String,
    /// How long a token directory lives.
    pub ttl: Duration,
}

impl DiscoveryService {
    pub fn new(base_url: &str, ttl: Duration) -> DiscoveryService {
        DiscoveryService {
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl,
        }
    }

    /// The URL members give `--discovery` for `token`.
    pub fn token_url(&self, token: &str) -> String {
        format!("{}/v2/keys{}", self.base_url, token_dir(token))
    }
}

/// The token's directory key.
pub fn token_dir(token: &str) -> String {
    format!("{PREFIX}/{token}")
}

/// `size` as `/new` takes it: absent or empty is [`DEFAULT_SIZE`], otherwise decimal digits
/// from 1 to [`MAX_SIZE`]. The error is the 400's text.
pub fn parse_size(value: Option<&str>) -> Result<u64, String> {
    let raw = match value {
        None | Some("") => return Ok(DEFAULT_SIZE),
        Some(v) => v,
    };
    let size = raw
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| raw.parse::<u64>().ok())
        .flatten();
    match size {
        Some(n @ 1..=MAX_SIZE) => Ok(n),
        _ => Err(format!(
            "invalid size {raw:?}: the cluster size must be a whole number from 1 to {MAX_SIZE}\n"
        )),
    }
}

/// 16 random bytes in hex: 32 characters, as discovery.etcd.io's tokens.
fn new_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `/new`.
pub async fn handle(api: &Api, service: &DiscoveryService, req: &Request) -> Response {
    if req.method != Method::Get {
        return method_not_allowed("GET");
    }
    let form = match Form::from_query(&req.query) {
        Ok(f) => f,
        Err(e) => return text_response(400, &format!("invalid query: {e}\n")),
    };
    let size = match parse_size(form.get("size")) {
        Ok(n) => n,
        Err(e) => return text_response(400, &e),
    };
    let Some(token) = new_token() else {
        return text_response(500, "discovery service: no random bytes for a token\n");
    };
    let dir = token_dir(&token);
    // With auth on, /new writes only what its caller could write with a PUT.
    if !api.key_access_as(req, &dir, false, true).await {
        return super::auth::key_no_auth();
    }
    let now = unix_nanos_now();
    let ttl_nanos = i64::try_from(service.ttl.as_nanos()).unwrap_or(i64::MAX);
    let commands = [
        Command::Create {
            key: dir.clone(),
            value: String::new(),
            dir: true,
            expire_at: Some(now.saturating_add(ttl_nanos)),
            unique: false,
        },
        Command::Create {
            key: format!("{dir}/_config/size"),
            value: size.to_string(),
            dir: false,
            expire_at: None,
            unique: false,
        },
    ];
    for cmd in &commands {
        let result = match api.shard.propose(cmd).await {
            Ok(outcome) => outcome.result.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!("discovery service: cannot create token {token}: {e}");
            return text_response(
                e.http_status().max(500),
                &format!("discovery service: cannot create a token: {e}\n"),
            );
        }
    }
    tracing::info!(
        "discovery service: created token {token} for a cluster of {size} (expires in {}s)",
        service.ttl.as_secs()
    );
    text_response(200, &service.token_url(&token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_defaults_to_three_and_must_be_a_sane_count() {
        assert_eq!(parse_size(None), Ok(3));
        assert_eq!(parse_size(Some("")), Ok(3));
        assert_eq!(parse_size(Some("1")), Ok(1));
        assert_eq!(parse_size(Some("5")), Ok(5));
        assert_eq!(parse_size(Some("007")), Ok(7));
        assert_eq!(parse_size(Some("100")), Ok(100));
        for bad in [
            "0",
            "101",
            "-1",
            "+3",
            "3.0",
            " 3",
            "x",
            "99999999999999999999999",
        ] {
            let err = parse_size(Some(bad)).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "invalid size {bad:?}: the cluster size must be a whole number from 1 to 100\n"
                )
            );
        }
    }

    #[test]
    fn token_urls_are_keys_urls_under_the_prefix() {
        let s = DiscoveryService::new("http://10.0.1.10:2379", Duration::from_secs(60));
        assert_eq!(
            s.token_url("0123456789abcdef0123456789abcdef"),
            "http://10.0.1.10:2379/v2/keys/_tern/discovery/0123456789abcdef0123456789abcdef"
        );
        let s = DiscoveryService::new("https://[::1]:2379/", Duration::from_secs(60));
        assert_eq!(
            s.token_url("t"),
            "https://[::1]:2379/v2/keys/_tern/discovery/t"
        );
        assert_eq!(token_dir("t"), "/_tern/discovery/t");
    }

    #[test]
    fn tokens_are_32_random_hex_digits() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
