//! v2 auth across members and restarts: users, roles and the switch set through one member are
//! enforced by another, also after that member restarts (with snapshots taken every few
//! entries, so the auth state travels in them); bad credentials get etcd's answers. The admin
//! workflows themselves are compared with etcd 3.4 by `tests/ctl_differential.rs`.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Client, Resp};

fn basic(user_password: &str) -> String {
    format!("Basic {}", tern::client::base64(user_password.as_bytes()))
}

fn call(c: &mut Client, method: &str, path: &str, auth: Option<&str>, body: &str) -> Resp {
    let auth = auth.map(basic);
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let ctype = if path.starts_with("/v2/keys") {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    if !body.is_empty() {
        headers.push(("Content-Type", ctype));
    }
    c.try_request(method, path, &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Polls until `check` holds (a change made through another member reaches this one).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn permissions_set_on_one_member_hold_on_another_and_after_a_restart() {
    let mut c = Cluster::start(3, &["--snapshot-count", "5"]);
    let (a, b) = (0, 1);
    let mut ca = c.client(a);
    let root = Some("root:rootpw");
    for (path, body) in [
        (
            "/v2/auth/users/root",
            r#"{"user":"root","password":"rootpw"}"#,
        ),
        (
            "/v2/auth/roles/reader",
            r#"{"role":"reader","permissions":{"kv":{"read":["/pub/*"],"write":[]}}}"#,
        ),
        (
            "/v2/auth/users/alice",
            r#"{"user":"alice","password":"alicepw","roles":["reader"]}"#,
        ),
    ] {
        let r = call(&mut ca, "PUT", path, None, body);
        // etcd answers a creation with roles 200, one with a password alone 201.
        assert_eq!(r.status / 100, 2, "{path}: {}", r.text());
    }
    let r = call(&mut ca, "PUT", "/v2/auth/enable", None, "");
    assert_eq!(r.status, 200, "{}", r.text());
    // Auth on: the guest role etcd creates may do everything; take that away.
    let revoke = r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#;
    let r = call(&mut ca, "PUT", "/v2/auth/roles/guest", root, revoke);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&mut ca, "PUT", "/v2/keys/pub/x", root, "value=1");
    assert_eq!(r.status, 201, "{}", r.text());

    let check_b = |c: &Cluster, alice_may_write: bool| {
        let mut cb = c.client(b);
        eventually("alice reads /pub/x on the other member", || {
            call(&mut cb, "GET", "/v2/keys/pub/x", Some("alice:alicepw"), "").status == 200
        });
        let anonymous = call(&mut cb, "GET", "/v2/keys/pub/x", None, "");
        assert_eq!(anonymous.status, 401, "{}", anonymous.text());
        assert_eq!(anonymous.json()["errorCode"], 110);
        assert_eq!(anonymous.json()["cause"], "Insufficient credentials");
        let wrong = call(&mut cb, "GET", "/v2/keys/pub/x", Some("alice:nope"), "");
        assert_eq!(wrong.status, 401);
        let outside = call(&mut cb, "GET", "/v2/keys/other", Some("alice:alicepw"), "");
        assert_eq!(outside.status, 401, "read outside the role's keys");
        let write = call(
            &mut cb,
            "PUT",
            "/v2/keys/pub/y",
            Some("alice:alicepw"),
            "value=2",
        );
        assert_eq!(write.status / 100 == 2, alice_may_write, "{}", write.text());
        // Administration needs root, on every member.
        let r = call(&mut cb, "GET", "/v2/auth/users", Some("alice:alicepw"), "");
        assert_eq!(
            (r.status, r.text()),
            (401, "{\"message\":\"Insufficient credentials\"}".into())
        );
        let r = call(
            &mut cb,
            "DELETE",
            "/v2/members/1234",
            Some("alice:alicepw"),
            "",
        );
        assert_eq!(r.status, 401);
        let r = call(&mut cb, "GET", "/v2/auth/enable", None, "");
        assert_eq!(r.json()["enabled"], true);
    };
    check_b(&c, false);

    // A grant through member a is enforced on b.
    let grant = r#"{"role":"reader","grant":{"kv":{"read":[],"write":["/pub/*"]}}}"#;
    let r = call(&mut ca, "PUT", "/v2/auth/roles/reader", root, grant);
    assert_eq!(r.status, 200, "{}", r.text());
    let mut cb = c.client(b);
    eventually("alice may write on b", || {
        call(
            &mut cb,
            "PUT",
            "/v2/keys/pub/z",
            Some("alice:alicepw"),
            "value=3",
        )
        .status
            / 100
            == 2
    });
    // Enough writes for snapshots to carry the auth state, then b restarts.
    for i in 0..12 {
        let r = call(
            &mut ca,
            "PUT",
            &format!("/v2/keys/pub/n{i}"),
            root,
            "value=x",
        );
        assert_eq!(r.status / 100, 2);
    }
    c.kill(b);
    c.restart(b);
    check_b(&c, true);
}

#[test]
fn bad_credentials_get_etcds_answers() {
    let c = Cluster::start(1, &[]);
    let mut cl = c.client(0);
    let r = call(
        &mut cl,
        "PUT",
        "/v2/auth/users/root",
        None,
        r#"{"user":"root","password":""}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "auth: Cannot create user root with an empty password"
    );
    let r = call(&mut cl, "PUT", "/v2/auth/enable", None, "");
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "auth: No root user available, please create one"
    );
    let r = call(
        &mut cl,
        "PUT",
        "/v2/auth/users/root",
        None,
        r#"{"user":"root","password":"pw"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(&mut cl, "PUT", "/v2/auth/users/root", None, "not json");
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, "Invalid JSON in request body.".into())
    );
    let r = call(&mut cl, "PUT", "/v2/auth/enable", None, "");
    assert_eq!(r.status, 200);
    let huge = format!("root:{}", "x".repeat(1 << 20));
    for (what, header) in [
        ("not basic", "Bearer abc".to_string()),
        ("not base64", "Basic !!!".to_string()),
        ("no colon", basic("root")),
        ("unknown user", basic("nobody:pw")),
        ("empty password", basic("root:")),
        ("a 30 kB password", basic(&huge[..30_000])),
    ] {
        let r = cl
            .try_request(
                "GET",
                "/v2/auth/users",
                &[("Authorization", header.as_str())],
                b"",
            )
            .unwrap();
        assert_eq!(r.status, 401, "{what}: {}", r.text());
    }
    let r = call(&mut cl, "GET", "/v2/auth/users", Some("root:pw"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &mut cl,
        "DELETE",
        "/v2/auth/users/root",
        Some("root:pw"),
        "",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "auth: Cannot delete root user while auth is enabled."
    );
}

/// The auth endpoints over raw HTTP, tern beside etcd 3.4: the same requests get the same
/// status and the same JSON (member IDs aside, which no step shows).
#[test]
fn auth_endpoints_answer_like_etcd() {
    let Some(etcd) = common::start_etcd(&[]) else {
        println!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let tern = common::start_tern(2, &[]);
    let root = Some("root:rootpw");
    let alice = Some("alice:alicepw");
    let steps: &[(&str, &str, Option<&str>, &str)] = &[
        ("GET", "/v2/auth/enable", None, ""),
        ("GET", "/v2/auth/users", None, ""),
        ("GET", "/v2/auth/roles", None, ""),
        ("PUT", "/v2/auth/enable", None, ""),
        ("DELETE", "/v2/auth/enable", None, ""),
        ("POST", "/v2/auth/enable", None, ""),
        (
            "PUT",
            "/v2/auth/users/root",
            None,
            r#"{"user":"root","password":"rootpw"}"#,
        ),
        (
            "PUT",
            "/v2/auth/users/root",
            None,
            r#"{"user":"root","password":"rootpw"}"#,
        ),
        (
            "PUT",
            "/v2/auth/users/x",
            None,
            r#"{"user":"y","password":"p"}"#,
        ),
        ("PUT", "/v2/auth/users/x", None, "{"),
        ("PUT", "/v2/auth/users/x", None, r#"{"user":"x"}"#),
        ("GET", "/v2/auth/users/root", None, ""),
        ("GET", "/v2/auth/users/nobody", None, ""),
        ("GET", "/v2/auth/users/a/b", None, ""),
        ("PUT", "/v2/auth/roles/r1", None, r#"{"role":"r1"}"#),
        ("PUT", "/v2/auth/roles/r1", None, r#"{"role":"r1"}"#),
        ("PUT", "/v2/auth/roles/root", None, r#"{"role":"root"}"#),
        ("DELETE", "/v2/auth/roles/root", None, ""),
        (
            "PUT",
            "/v2/auth/roles/r1",
            None,
            r#"{"role":"r1","grant":{"kv":{"read":["/a/*"],"write":["/a/*"]}}}"#,
        ),
        (
            "PUT",
            "/v2/auth/roles/r1",
            None,
            r#"{"role":"r1","grant":{"kv":{"read":["/a/*"]}}}"#,
        ),
        (
            "PUT",
            "/v2/auth/roles/r1",
            None,
            r#"{"role":"r1","revoke":{"kv":{"write":["/a/*"]}}}"#,
        ),
        (
            "PUT",
            "/v2/auth/roles/r1",
            None,
            r#"{"role":"r1","revoke":{"kv":{"write":["/zzz"]}}}"#,
        ),
        (
            "PUT",
            "/v2/auth/roles/nope",
            None,
            r#"{"role":"nope","grant":{"kv":{"read":["/a"]}}}"#,
        ),
        ("GET", "/v2/auth/roles/r1", None, ""),
        ("GET", "/v2/auth/roles/root", None, ""),
        ("GET", "/v2/auth/roles/nope", None, ""),
        (
            "PUT",
            "/v2/auth/users/alice",
            None,
            r#"{"user":"alice","password":"alicepw","roles":["r1"]}"#,
        ),
        (
            "PUT",
            "/v2/auth/users/alice",
            None,
            r#"{"user":"alice","grant":["r1"]}"#,
        ),
        (
            "PUT",
            "/v2/auth/users/alice",
            None,
            r#"{"user":"alice","revoke":["r9"]}"#,
        ),
        (
            "PUT",
            "/v2/auth/users/alice",
            None,
            r#"{"user":"alice","roles":["r1"],"grant":["r1"]}"#,
        ),
        ("GET", "/v2/auth/users/alice", None, ""),
        ("GET", "/v2/auth/users", None, ""),
        ("GET", "/v2/auth/roles", None, ""),
        ("PUT", "/v2/auth/enable", None, ""),
        ("PUT", "/v2/auth/enable", root, ""),
        ("GET", "/v2/auth/enable", None, ""),
        ("GET", "/v2/auth/users", None, ""),
        ("GET", "/v2/auth/users", alice, ""),
        ("GET", "/v2/auth/users", Some("root:wrong"), ""),
        ("GET", "/v2/auth/roles/guest", root, ""),
        ("DELETE", "/v2/auth/users/root", root, ""),
        ("PUT", "/v2/keys/a/k", alice, "value=1"),
        ("GET", "/v2/keys/a/k", alice, ""),
        ("PUT", "/v2/keys/b/k", alice, "value=1"),
        ("GET", "/v2/keys/b/k", Some("alice:bad"), ""),
        ("GET", "/v2/keys/a?recursive=true", alice, ""),
        ("GET", "/v2/keys/?recursive=true", alice, ""),
        ("DELETE", "/v2/auth/users/nobody", root, ""),
        ("DELETE", "/v2/auth/roles/nope", root, ""),
        ("DELETE", "/v2/auth/enable", alice, ""),
        ("DELETE", "/v2/auth/enable", root, ""),
        ("DELETE", "/v2/auth/enable", root, ""),
        ("DELETE", "/v2/auth/users/alice", None, ""),
    ];
    let mut e = etcd.client();
    let mut t = tern.client();
    let mut diffs = Vec::new();
    for (i, (method, path, auth, body)) in steps.iter().enumerate() {
        let (a, b) = (
            call(&mut e, method, path, *auth, body),
            call(&mut t, method, path, *auth, body),
        );
        let norm = |r: &Resp| {
            let mut v = serde_json::from_slice::<serde_json::Value>(&r.body)
                .unwrap_or_else(|_| serde_json::Value::String(r.text()));
            // Indexes differ (etcd counts its membership writes too).
            for field in ["index", "modifiedIndex", "createdIndex"] {
                if let Some(o) = v.as_object_mut() {
                    o.remove(field);
                }
                if let Some(n) = v.get_mut("node").and_then(|n| n.as_object_mut()) {
                    n.remove(field);
                }
            }
            (r.status, v)
        };
        if norm(&a) != norm(&b) {
            diffs.push(format!(
                "step {i}: {method} {path} {auth:?} {body}\n  etcd: {} {}\n  tern: {} {}",
                a.status,
                a.text().trim(),
                b.status,
                b.text().trim()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The manual's workflow with Debian's `etcdctl` (ETCDCTL_API=2) against tern.
#[test]
fn etcdctl_user_role_auth_workflow_works_against_tern() {
    if !common::have("etcdctl") {
        println!("skipped: etcdctl is not installed (apt-get install etcd-client)");
        return;
    }
    let tern = common::start_tern(2, &[]);
    let endpoint = tern.url("");
    let run = |args: &[&str]| -> (i32, String) {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "2")
            .args(["--endpoints", &endpoint])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    for (args, want) in [
        (&["user", "add", "root:rootpw"][..], "User root created"),
        (&["role", "add", "reader"][..], "Role reader created"),
        (
            &["role", "grant", "--path", "/pub/*", "--read", "reader"][..],
            "Role reader updated",
        ),
        (&["user", "add", "alice:alicepw"][..], "User alice created"),
        (
            &["user", "grant", "--roles", "reader", "alice"][..],
            "User alice updated",
        ),
        (&["auth", "enable"][..], "Authentication Enabled"),
        (
            &[
                "-u",
                "root:rootpw",
                "role",
                "revoke",
                "--path",
                "/*",
                "--rw",
                "guest",
            ][..],
            "Role guest updated",
        ),
        (&["-u", "root:rootpw", "set", "/pub/x", "0"][..], "0"),
        (&["-u", "alice:alicepw", "get", "/pub/x"][..], "0"),
        (&["-u", "root:rootpw", "user", "list"][..], "alice\nroot"),
        (
            &["-u", "root:rootpw", "auth", "disable"][..],
            "Authentication Disabled",
        ),
    ] {
        let (code, text) = run(args);
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(text.contains(want), "{args:?}: {want:?} not in {text}");
    }
    // While auth was on, alice could not write and nobody anonymous could read.
    let (code, _) = run(&["auth", "enable"]);
    assert_eq!(code, 0);
    for args in [
        &["-u", "alice:alicepw", "set", "/pub/x", "1"][..],
        &["get", "/pub/x"][..],
    ] {
        let (code, text) = run(args);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(
            text.contains("Insufficient credentials"),
            "{args:?}: {text}"
        );
    }
}

/// Users, roles and the switch are in what `ternctl backup` copies: a member started from the
/// backup (`--force-new-cluster`, manual §6.3) enforces the same rules.
#[test]
fn auth_survives_a_backup_and_a_forced_new_cluster() {
    let mut c = Cluster::start(1, &["--snapshot-count", "5"]);
    let mut cl = c.client(0);
    let r = call(
        &mut cl,
        "PUT",
        "/v2/auth/users/root",
        None,
        r#"{"user":"root","password":"pw"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        call(&mut cl, "PUT", "/v2/auth/enable", None, "").status,
        200
    );
    for i in 0..8 {
        let r = call(
            &mut cl,
            "PUT",
            &format!("/v2/keys/k{i}"),
            Some("root:pw"),
            "value=v",
        );
        assert_eq!(r.status / 100, 2, "{}", r.text());
    }
    let fresh = c.plan_node();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ternctl"))
        .arg("backup")
        .arg("--data-dir")
        .arg(c.nodes[0].dir.join("data"))
        .arg("--backup-dir")
        .arg(c.nodes[fresh].dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kill(0);
    let ic = c.initial_cluster(&[fresh]);
    c.spawn(fresh, &ic, "new", &["--force-new-cluster"]);
    c.wait_serving(fresh, Duration::from_secs(30));
    let mut cl = c.client(fresh);
    let r = call(&mut cl, "GET", "/v2/auth/enable", None, "");
    assert_eq!(r.json()["enabled"], true, "{}", r.text());
    assert_eq!(
        call(&mut cl, "GET", "/v2/auth/users", Some("root:pw"), "").status,
        200
    );
    assert_eq!(
        call(&mut cl, "GET", "/v2/auth/users", Some("root:no"), "").status,
        401
    );
    let r = call(&mut cl, "GET", "/v2/keys/k7", Some("root:pw"), "");
    assert_eq!(r.json()["node"]["value"], "v", "{}", r.text());
}
