//! The matrix's auth section: GET and PUT of 64 B from 64 kept-alive clients to a 1-member
//! tern and etcd, first anonymous with auth off, then as a user with a read-write role once
//! auth is on (HTTP basic auth on every request). etcd v2 checks the password with bcrypt on
//! every request; tern checks it once per connection-independent credential and caches the
//! verification (`src/auth/password.rs`), which is what these cells measure.

use super::*;

const ROOT_PASSWORD: &str = "root-pw";
const USER: &str = "bench";
const USER_PASSWORD: &str = "bench-pw";

/// `method path` with a JSON body (none when empty) and optional `user:password`, with
/// `Connection: close`: (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(up) = auth {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            tern::client::base64(up.as_bytes())
        ));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(head.as_bytes())?;
    parse_response(&read_all(&mut s)?)
}

/// A root user, a role that may read and write every key, a user with it, then auth on;
/// checked by a request with a wrong password being refused.
fn enable_auth(addr: SocketAddr) -> Result<(), String> {
    let root_user = format!(r#"{{"user":"root","password":"{ROOT_PASSWORD}"}}"#);
    let role = r#"{"role":"rw","permissions":{"kv":{"read":["/*"],"write":["/*"]}}}"#;
    let user = format!(r#"{{"user":"{USER}","password":"{USER_PASSWORD}","roles":["rw"]}}"#);
    let steps: [(&str, &str, &str); 4] = [
        ("PUT", "/v2/auth/users/root", &root_user),
        ("PUT", "/v2/auth/roles/rw", role),
        ("PUT", &format!("/v2/auth/users/{USER}"), &user),
        ("PUT", "/v2/auth/enable", ""),
    ];
    for (method, path, body) in steps {
        let (status, text) =
            request(addr, method, path, body, None).map_err(|e| format!("{method} {path}: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: {status} {}", text.trim()));
        }
    }
    let wrong = format!("{USER}:not-the-password");
    match request(addr, "GET", "/v2/keys/", "", Some(&wrong)) {
        Ok((401, _)) => Ok(()),
        other => Err(format!("a wrong password was not refused: {other:?}")),
    }
}

pub fn auth_section(root: &Path, etcd_bin: Option<&PathBuf>, mode: &Mode, notes: &mut Vec<String>) {
    let tern = Cluster::start(Kind::Tern, 1, root, None);
    let etcd = etcd_bin.map(|b| Cluster::start(Kind::Etcd(b.clone()), 1, root, None));
    println!("## Auth (1 member, 64 B, 64 clients, keep-alive)\n");
    println!(
        "First with auth off and no credentials, then (same processes) with a root user, a role \
         that may read and write `/*`, a user `{USER}` with that role, and auth on: every \
         request carries `Authorization: Basic` for `{USER}`. CPU µs/req as in the TLS \
         section.\n"
    );
    println!(
        "| cell | tern req/s | etcd req/s | tern/etcd | tern p50 / p90 / p99 ms | \
         etcd p50 / p90 / p99 ms | tern CPU µs/req (user / sys) | etcd CPU µs/req (user / sys) \
         | client CPU µs/req (tern / etcd run) |"
    );
    println!("|---|---:|---:|---:|---|---|---:|---:|---:|");
    let credentials = format!("{USER}:{USER_PASSWORD}");
    // A server whose auth could not be enabled gets no auth-on figures (they would be
    // anonymous ones under the wrong name).
    let mut tern_on = true;
    let mut etcd_on = true;
    for with_auth in [false, true] {
        if with_auth {
            for (c, on) in [(Some(&tern), &mut tern_on), (etcd.as_ref(), &mut etcd_on)] {
                let Some(c) = c else { continue };
                if let Err(e) = enable_auth(c.leader) {
                    notes.push(format!(
                        "auth section: enabling auth on {}: {e}",
                        c.kind.name()
                    ));
                    *on = false;
                }
            }
        }
        for op in [Op::Get, Op::Put] {
            let cell = Cell {
                op,
                value_size: 64,
                clients: 64,
                target: Target::Leader,
            };
            let variant = if with_auth {
                format!("auth on, as {USER}")
            } else {
                "auth off".to_string()
            };
            let run = |c: &Cluster| {
                let mut spec = cell_spec([Endpoint::plain(c.leader)], &cell, mode);
                spec.request_timeout = Duration::from_secs(60);
                spec.basic_auth = with_auth.then(|| credentials.clone());
                run_measured(&spec, c.members[0].child.id())
            };
            let t = if with_auth && !tern_on {
                (Err("auth could not be enabled".to_string()), None)
            } else {
                run(&tern)
            };
            let e = etcd.as_ref().filter(|_| !with_auth || etcd_on).map(run);
            let label = format!("auth section {}, {variant}", cell.name());
            note_errors(notes, &label, "tern", Some(&t.0));
            note_errors(notes, &label, "etcd", e.as_ref().map(|e| &e.0));
            println!("{}", measured_row(&cell, &variant, &t, e.as_ref()));
        }
    }
    println!();
}
