//! A small blocking etcd v2 client: `ternctl`, discovery and the proxy's refresher use it.
//!
//! Owns: endpoint URLs, a keep-alive HTTP/1.1 transport on `std::net` (Content-Length,
//! chunked and read-to-close bodies, dial/header/total timeouts), the cluster client that
//! picks a member, fails over to the next one on a connection error and syncs the member
//! list (etcd's `client.httpClusterClient`), and the v2 APIs: keys (get, set, create,
//! update, in-order create, delete, watch), members, stats and auth users/roles.
//! Errors render exactly like etcd's Go client so `ternctl` can print them verbatim.
//!
//! Must not know: command-line flags, output formats or exit codes (that is `ctl`), nor
//! anything of the server's internals.

mod error;
mod transport;
mod url;
mod wire;

pub use error::*;
pub use transport::*;
pub use url::*;
pub use wire::*;

use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// The cluster client.

/// Client configuration (`client.Config`).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub endpoints: Vec<String>,
    pub username: Option<String>,
    pub password: String,
    /// Per-request header timeout (`--timeout`); `None` waits forever.
    pub header_timeout: Option<Duration>,
    pub dial_timeout: Option<Duration>,
    /// Print a `cURL Command:` line on stderr for every request.
    pub debug: bool,
    /// TLS client settings for `https` endpoints.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The v2 client: endpoint list with a pinned member, failover, sync.
pub struct Client {
    endpoints: Vec<Url>,
    pinned: usize,
    creds: Option<(String, String)>,
    header_timeout: Option<Duration>,
    pub debug: bool,
    transport: Transport,
    rng: u64,
    /// Overall deadline applied to every call until changed (`--total-timeout`).
    pub deadline: Option<Instant>,
}

const KEYS_PREFIX: &str = "/v2/keys";

impl Client {
    /// Builds a client; fails like `client.New` on a bad or empty endpoint list.
    pub fn new(cfg: Config) -> Result<Client, ClientError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (std::process::id() as u64) << 32;
        let mut c = Client {
            endpoints: Vec::new(),
            pinned: 0,
            creds: cfg.username.map(|u| (u, cfg.password)),
            header_timeout: cfg.header_timeout,
            debug: cfg.debug,
            transport: Transport {
                dial_timeout: cfg.dial_timeout,
                tls: cfg.tls,
                ..Default::default()
            },
            rng: seed | 1,
            deadline: None,
        };
        c.set_endpoints(&cfg.endpoints)?;
        Ok(c)
    }

    fn rand(&mut self, n: usize) -> usize {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545F4914F6CDD1D) % n as u64) as usize
    }

    fn shuffle(&mut self, eps: Vec<Url>) -> Vec<Url> {
        // Go's rand.Perm-based shuffle shape: p[i] = p[j]; p[j] = i.
        let n = eps.len();
        let mut p = vec![0usize; n];
        for i in 0..n {
            let j = self.rand(i + 1);
            p[i] = p[j];
            p[j] = i;
        }
        p.into_iter().map(|k| eps[k].clone()).collect()
    }

    /// Replaces the endpoint list (shuffled, pinned to the first).
    pub fn set_endpoints(&mut self, eps: &[String]) -> Result<(), ClientError> {
        if eps.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut parsed = Vec::new();
        for e in eps {
            parsed.push(Url::parse(e).map_err(ClientError::Msg)?);
        }
        self.endpoints = self.shuffle(parsed);
        self.pinned = 0;
        Ok(())
    }

    /// The current endpoints, in order, as Go prints them.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(Url::to_string_go).collect()
    }

    /// Sends one request built per endpoint, failing over like `httpClusterClient.Do`.
    /// `one_shot` requests (create, delete) are not retried on another member.
    pub fn do_request(
        &mut self,
        build: &dyn Fn(&Url) -> Request,
        one_shot: bool,
        wait: bool,
    ) -> Result<HttpResponse, ClientError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(ClientError::NoEndpoints);
        }
        let mut errs: Vec<(String, bool)> = Vec::new();
        let pinned = self.pinned;
        for i in pinned..pinned + n {
            let k = i % n;
            let ep = self.endpoints[k].clone();
            let res = self.do_one(build, &ep, wait);
            let err = match res {
                Err(TransportError::Deadline) => return Err(ClientError::DeadlineExceeded),
                Err(e) => {
                    let (text, conn) = match e {
                        TransportError::Dial(s) => (s, true),
                        TransportError::Conn(s) => (s, true),
                        TransportError::HeaderTimeout => (
                            format!(
                                "client: endpoint {} exceeded header timeout",
                                ep.to_string_go()
                            ),
                            false,
                        ),
                        TransportError::Other(s) => (s, false),
                        TransportError::Deadline => unreachable!("handled above"),
                    };
                    errs.push((text.clone(), conn));
                    text
                }
                Ok(resp) if resp.status / 100 == 5 => {
                    let text = match resp.status {
                        500 | 503 => {
                            format!("client: etcd member {} has no leader", ep.to_string_go())
                        }
                        s => format!(
                            "client: etcd member {} returns server error [{}]",
                            ep.to_string_go(),
                            crate::http::response::reason_phrase(s)
                        ),
                    };
                    errs.push((text, false));
                    errs[0].0.clone()
                }
                Ok(resp) => {
                    if k != pinned {
                        self.pinned = k;
                    }
                    return Ok(resp);
                }
            };
            if one_shot {
                self.pinned = (k + 1) % n;
                return Err(ClientError::Msg(err));
            }
        }
        Err(ClientError::Cluster(errs))
    }

    fn do_one(
        &mut self,
        build: &dyn Fn(&Url) -> Request,
        ep: &Url,
        wait: bool,
    ) -> Result<HttpResponse, TransportError> {
        let mut req = build(ep);
        req.basic_auth = self.creds.clone();
        for _ in 0..=10 {
            if self.debug {
                eprintln!("cURL Command: {}", req.curl());
            }
            let header_deadline = if wait {
                None
            } else {
                self.header_timeout
                    .filter(|t| !t.is_zero())
                    .map(|t| Instant::now() + t)
            };
            let resp = self
                .transport
                .round_trip(&req, header_deadline, self.deadline)?;
            if resp.status / 100 == 3 {
                let Some(loc) = resp.header("location") else {
                    return Err(TransportError::Other("location header not set".into()));
                };
                req.url = Url::parse(loc).map_err(|_| {
                    TransportError::Other(format!("location header not valid URL: {loc}"))
                })?;
                continue;
            }
            return Ok(resp);
        }
        Err(TransportError::Other("client: too many redirects".into()))
    }

    /// Replaces the endpoints with the members' client URLs (`Client.Sync`).
    pub fn sync(&mut self) -> Result<(), ClientError> {
        let members = self.member_list()?;
        let eps: Vec<String> = members.into_iter().flat_map(|m| m.client_urls).collect();
        if eps.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut parsed = Vec::new();
        for e in &eps {
            parsed.push(Url::parse(e).map_err(ClientError::Msg)?);
        }
        let mut a: Vec<String> = self.endpoints();
        let mut b: Vec<String> = parsed.iter().map(Url::to_string_go).collect();
        a.sort();
        b.sort();
        if a == b {
            return Ok(());
        }
        self.endpoints = self.shuffle(parsed);
        self.pinned = 0;
        Ok(())
    }

    // ----- keys -----

    fn keys_url(ep: &Url, key: &str) -> Url {
        let key = if !key.is_empty() && !key.starts_with('/') {
            format!("/{key}")
        } else {
            key.to_string()
        };
        ep.with_path(canonical_url_path(&format!(
            "{}{}{}",
            ep.path, KEYS_PREFIX, key
        )))
    }

    /// GET a key or directory.
    pub fn get(&mut self, key: &str, opts: &GetOptions) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                u.query = encode_values(&[
                    ("recursive", opts.recursive.to_string()),
                    ("sorted", opts.sort.to_string()),
                    ("quorum", opts.quorum.to_string()),
                ]);
                Request::new("GET", u)
            },
            false,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// PUT a key or directory with conditions.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        opts: &SetOptions,
    ) -> Result<Response, ClientError> {
        let one_shot = opts.prev_exist == PrevExist::NoExist;
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                let mut params: Vec<(&str, String)> = Vec::new();
                let mut form: Vec<(&str, String)> = Vec::new();
                if opts.dir {
                    params.push(("dir", "true".into()));
                } else {
                    if !opts.prev_value.is_empty() {
                        params.push(("prevValue", opts.prev_value.clone()));
                    }
                    form.push(("value", value.to_string()));
                }
                if opts.prev_index != 0 {
                    params.push(("prevIndex", opts.prev_index.to_string()));
                }
                match opts.prev_exist {
                    PrevExist::Ignore => {}
                    PrevExist::Exist => params.push(("prevExist", "true".into())),
                    PrevExist::NoExist => params.push(("prevExist", "false".into())),
                }
                if opts.ttl > 0 {
                    form.push(("ttl", opts.ttl.to_string()));
                }
                if opts.refresh {
                    form.push(("refresh", "true".into()));
                }
                if opts.no_value_on_success {
                    params.push(("noValueOnSuccess", "true".into()));
                }
                u.query = encode_values(&params);
                Request::new("PUT", u).form(encode_values(&form))
            },
            one_shot,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// Create only if absent (`prevExist=false`).
    pub fn create(&mut self, key: &str, value: &str, ttl: u64) -> Result<Response, ClientError> {
        self.set(
            key,
            value,
            &SetOptions {
                prev_exist: PrevExist::NoExist,
                ttl,
                ..Default::default()
            },
        )
    }

    /// Update only if present (`prevExist=true`).
    pub fn update(&mut self, key: &str, value: &str, ttl: u64) -> Result<Response, ClientError> {
        self.set(
            key,
            value,
            &SetOptions {
                prev_exist: PrevExist::Exist,
                ttl,
                ..Default::default()
            },
        )
    }

    /// POST an in-order key under `dir`.
    pub fn create_in_order(
        &mut self,
        dir: &str,
        value: &str,
        ttl: u64,
    ) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut form = vec![("value", value.to_string())];
                if ttl > 0 {
                    form.push(("ttl", ttl.to_string()));
                }
                Request::new("POST", Self::keys_url(ep, dir)).form(encode_values(&form))
            },
            false,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// DELETE a key or directory with conditions.
    pub fn delete(&mut self, key: &str, opts: &DeleteOptions) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                let mut params: Vec<(&str, String)> = Vec::new();
                if !opts.prev_value.is_empty() {
                    params.push(("prevValue", opts.prev_value.clone()));
                }
                if opts.prev_index != 0 {
                    params.push(("prevIndex", opts.prev_index.to_string()));
                }
                if opts.dir {
                    params.push(("dir", "true".into()));
                }
                if opts.recursive {
                    params.push(("recursive", "true".into()));
                }
                u.query = encode_values(&params);
                let mut r = Request::new("DELETE", u);
                r.content_type = Some("application/x-www-form-urlencoded");
                r
            },
            true,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// A watcher on `key` for events after `after_index` (0: from now).
    pub fn watcher(&self, key: &str, after_index: u64, recursive: bool) -> Watcher {
        Watcher {
            key: key.to_string(),
            wait_index: if after_index > 0 { after_index + 1 } else { 0 },
            recursive,
        }
    }

    // ----- members -----

    fn members_url(ep: &Url, suffix: &str) -> Url {
        let p = join_path(&ep.path, "/v2/members");
        ep.with_path(if suffix.is_empty() {
            p
        } else {
            join_path(&p, suffix)
        })
    }

    /// GET /v2/members.
    pub fn member_list(&mut self) -> Result<Vec<Member>, ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("GET", Self::members_url(ep, "")),
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(v.get("members")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(member_from_json).collect())
            .unwrap_or_default())
    }

    /// GET /v2/members/leader.
    pub fn member_leader(&mut self) -> Result<Member, ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("GET", Self::members_url(ep, "leader")),
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(member_from_json(&v))
    }

    /// POST /v2/members with one peer URL.
    pub fn member_add(&mut self, peer_url: &str) -> Result<Member, ClientError> {
        let urls = validate_peer_urls(&[peer_url.to_string()]).map_err(ClientError::Msg)?;
        let body = peer_urls_json(&urls);
        let resp = self.do_request(
            &|ep| Request::new("POST", Self::members_url(ep, "")).json(body.clone()),
            false,
            false,
        )?;
        expect_status(&resp, &[201, 409])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        if resp.status != 201 {
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(member_from_json(&v))
    }

    /// PUT /v2/members/<id> with new peer URLs.
    pub fn member_update(&mut self, id: &str, peer_urls: &[String]) -> Result<(), ClientError> {
        let urls = validate_peer_urls(peer_urls).map_err(ClientError::Msg)?;
        let body = peer_urls_json(&urls);
        let resp = self.do_request(
            &|ep| Request::new("PUT", Self::members_url(ep, id)).json(body.clone()),
            false,
            false,
        )?;
        expect_status(&resp, &[204, 404, 409])?;
        if resp.status != 204 {
            let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(())
    }

    /// DELETE /v2/members/<id>.
    pub fn member_remove(&mut self, id: &str) -> Result<(), ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("DELETE", Self::members_url(ep, id)),
            false,
            false,
        )?;
        expect_status(&resp, &[204, 410])
    }

    // ----- stats -----

    /// GET /v2/stats/{self,leader,store} as raw JSON.
    pub fn stats(&mut self, which: &str) -> Result<Value, ClientError> {
        let resp = self.do_request(
            &|ep| {
                Request::new(
                    "GET",
                    ep.with_path(join_path(&ep.path, &format!("/v2/stats/{which}"))),
                )
            },
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))
    }

    // ----- auth -----

    fn auth_url(ep: &Url, action: &str, name: &str) -> Url {
        let mut p = join_path(&ep.path, &format!("/v2/auth/{action}"));
        if !name.is_empty() {
            p = join_path(&p, name);
        }
        ep.with_path(p)
    }

    fn auth_call(
        &mut self,
        method: &'static str,
        action: &str,
        name: &str,
        body: Option<String>,
        ok: &[u16],
    ) -> Result<HttpResponse, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let r = Request::new(method, Self::auth_url(ep, action, name));
                match &body {
                    Some(b) => r.json(b.clone()),
                    None => r,
                }
            },
            false,
            false,
        )?;
        if !ok.contains(&resp.status) {
            let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(resp)
    }

    /// PUT /v2/auth/enable.
    pub fn auth_enable(&mut self) -> Result<(), ClientError> {
        self.auth_call("PUT", "enable", "", None, &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/enable.
    pub fn auth_disable(&mut self) -> Result<(), ClientError> {
        self.auth_call("DELETE", "enable", "", None, &[200, 201])
            .map(|_| ())
    }

    /// GET /v2/auth/users: user names.
    pub fn user_list(&mut self) -> Result<Vec<String>, ClientError> {
        let resp = self.auth_call("GET", "users", "", None, &[200])?;
        names_in(&resp.body, "users", "user")
    }

    /// PUT /v2/auth/users/<name> with a password.
    pub fn user_add(&mut self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = user_json(name, Some(password), "", &[]);
        self.auth_call("PUT", "users", name, Some(body), &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/users/<name>.
    pub fn user_remove(&mut self, name: &str) -> Result<(), ClientError> {
        self.auth_call("DELETE", "users", name, None, &[200, 201])
            .map(|_| ())
    }

    fn mod_user(
        &mut self,
        method: &'static str,
        name: &str,
        body: Option<String>,
    ) -> Result<User, ClientError> {
        let resp = self.auth_call(method, "users", name, body, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        // etcdctl decodes `roles` into []string first; when the server sends role
        // objects that fails element by element, leaving one "" per role, and the
        // fallback then appends the names: `Roles:  r1` with a doubled space.
        let roles = match v.get("roles").and_then(Value::as_array) {
            Some(a) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            Some(a) => {
                let mut r = vec![String::new(); a.len()];
                r.extend(a.iter().map(|x| {
                    x.get("role")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                }));
                r
            }
            None => Vec::new(),
        };
        Ok(User {
            user: v.get("user").and_then(Value::as_str).unwrap_or("").into(),
            roles,
        })
    }

    /// GET /v2/auth/users/<name>.
    pub fn user_get(&mut self, name: &str) -> Result<User, ClientError> {
        self.mod_user("GET", name, None)
    }

    /// Grant roles to a user.
    pub fn user_grant(&mut self, name: &str, roles: &[String]) -> Result<User, ClientError> {
        let body = user_json(name, None, "grant", roles);
        self.mod_user("PUT", name, Some(body))
    }

    /// Revoke roles from a user.
    pub fn user_revoke(&mut self, name: &str, roles: &[String]) -> Result<User, ClientError> {
        let body = user_json(name, None, "revoke", roles);
        self.mod_user("PUT", name, Some(body))
    }

    /// Change a user's password.
    pub fn user_passwd(&mut self, name: &str, password: &str) -> Result<User, ClientError> {
        let body = user_json(name, Some(password), "", &[]);
        self.mod_user("PUT", name, Some(body))
    }

    /// GET /v2/auth/roles: role names.
    pub fn role_list(&mut self) -> Result<Vec<String>, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut r = Request::new("GET", Self::auth_url(ep, "roles", ""));
                r.content_type = Some("application/json");
                r
            },
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        names_in(&resp.body, "roles", "role")
    }

    /// PUT /v2/auth/roles/<name>.
    pub fn role_add(&mut self, name: &str) -> Result<(), ClientError> {
        let body = role_json(name, None);
        self.auth_call("PUT", "roles", name, Some(body), &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/roles/<name>.
    pub fn role_remove(&mut self, name: &str) -> Result<(), ClientError> {
        self.auth_call("DELETE", "roles", name, None, &[200, 201])
            .map(|_| ())
    }

    fn mod_role(
        &mut self,
        method: &'static str,
        name: &str,
        body: Option<String>,
    ) -> Result<Role, ClientError> {
        let resp = self.auth_call(method, "roles", name, body, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(role_from_json(&v))
    }

    /// GET /v2/auth/roles/<name>.
    pub fn role_get(&mut self, name: &str) -> Result<Role, ClientError> {
        self.mod_role("GET", name, None)
    }

    /// Grant key prefixes to a role.
    pub fn role_grant(
        &mut self,
        name: &str,
        prefixes: &[String],
        perm: Permission,
    ) -> Result<Role, ClientError> {
        let body = role_json(name, Some(("grant", prefixes, perm)));
        self.mod_role("PUT", name, Some(body))
    }

    /// Revoke key prefixes from a role.
    pub fn role_revoke(
        &mut self,
        name: &str,
        prefixes: &[String],
        perm: Permission,
    ) -> Result<Role, ClientError> {
        let body = role_json(name, Some(("revoke", prefixes, perm)));
        self.mod_role("PUT", name, Some(body))
    }

    /// GET /health: the raw body, or the transport error text.
    pub fn health(&mut self, client_url: &str) -> Result<Vec<u8>, String> {
        let url = Url::parse(client_url).map_err(|e| e.to_string())?;
        let url = url.with_path(format!("{}/health", url.path.trim_end_matches('/')));
        // A plain HTTP client, as etcdctl's: no cURL debug line, no credentials.
        let req = Request::new("GET", url.clone());
        let get = format!("Get {:?}", url.to_string_go());
        match self.transport.round_trip(&req, None, self.deadline) {
            Ok(r) => Ok(r.body),
            Err(TransportError::Dial(s)) | Err(TransportError::Conn(s)) => {
                Err(format!("{get}: {s}"))
            }
            Err(TransportError::Other(s)) => Err(format!("{get}: {s}")),
            Err(TransportError::HeaderTimeout) | Err(TransportError::Deadline) => Err(format!(
                "{get}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        }
    }
}

/// A keys watcher (`client.Watcher`): each `next` long-polls for one event.
pub struct Watcher {
    key: String,
    wait_index: u64,
    recursive: bool,
}

impl Watcher {
    /// Waits for the next event (no deadline) and advances past it.
    pub fn next(&mut self, c: &mut Client) -> Result<Response, ClientError> {
        loop {
            let (key, wi, rec) = (self.key.clone(), self.wait_index, self.recursive);
            let resp = c.do_request(
                &|ep| {
                    let mut u = Client::keys_url(ep, &key);
                    u.query = encode_values(&[
                        ("wait", "true".into()),
                        ("waitIndex", wi.to_string()),
                        ("recursive", rec.to_string()),
                    ]);
                    Request::new("GET", u)
                },
                false,
                true,
            )?;
            match parse_keys_response(&resp) {
                Err(ClientError::Msg(m)) if m == ERR_EMPTY_BODY => continue,
                Err(e) => return Err(e),
                Ok(r) => {
                    self.wait_index = r.node.as_ref().map_or(0, |n| n.modified_index) + 1;
                    return Ok(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_urls_are_canonical_and_escaped() {
        let ep = Url::parse("http://h:1").unwrap();
        let mut u = Client::keys_url(&ep, "foo//bar/");
        assert_eq!(u.path, "/v2/keys/foo/bar/");
        u = Client::keys_url(&ep, "/a b/*?");
        assert_eq!(u.to_string_go(), "http://h:1/v2/keys/a%20b/%2A%3F");
        assert_eq!(canonical_url_path(""), "/");
        assert_eq!(clean_path("/a/../../b/./c"), "/b/c");
    }
}
