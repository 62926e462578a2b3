//! `ternctl` over TLS: against Debian's etcd 3.4 serving its client URL with a certificate from
//! a throw-away CA (made with `openssl`) and requiring client certificates, `ternctl` with
//! `--ca-file`, `--cert-file` and `--key-file` gives the same output and exit codes as
//! `etcdctl`; without the CA it fails like etcdctl does (exit 4 / cluster unavailable).
//! Skipped with a printed reason when etcd, etcdctl or openssl are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{etcd_binary, free_port, have, temp_dir};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=tern-test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.cnf",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

struct Etcd(std::process::Child, PathBuf);
impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn run(bin: &str, args: &[String]) -> Output {
    Command::new(bin)
        .args(args)
        .env("ETCDCTL_API", "2")
        .output()
        .unwrap()
}

#[test]
fn ternctl_speaks_tls_like_etcdctl() {
    let Some(etcd) = etcd_binary() else {
        println!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    if !have("etcdctl") || !have("openssl") {
        println!("skipped: etcdctl or openssl is missing");
        return;
    }
    let dir = temp_dir("tls");
    make_certs(&dir);
    let port = free_port();
    let peer = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let f = |n: &str| dir.join(n).display().to_string();
    let child = Command::new(etcd)
        .args(["--enable-v2", "--name", "t1", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("t1={peer_url}")])
        .args([
            "--cert-file",
            &f("server.pem"),
            "--key-file",
            &f("server-key.pem"),
        ])
        .args(["--client-cert-auth", "--trusted-ca-file", &f("ca.pem")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Etcd(child, dir.clone());

    let tls = vec![
        format!("--endpoints={url}"),
        format!("--ca-file={}", f("ca.pem")),
        format!("--cert-file={}", f("client.pem")),
        format!("--key-file={}", f("client-key.pem")),
    ];
    let with = |extra: &[&str]| {
        let mut v = tls.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // Wait for etcd to serve TLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run("etcdctl", &with(&["ls", "/"])).status.success() {
        assert!(Instant::now() < deadline, "etcd with TLS did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ternctl = env!("CARGO_BIN_EXE_ternctl");
    let script: Vec<Vec<&str>> = vec![
        vec!["set", "/tls/a", "1"],
        vec!["get", "/tls/a"],
        vec!["mk", "/tls/b", "2"],
        vec!["ls", "--sort", "/tls"],
        vec!["-o", "json", "get", "/tls/b"],
        vec!["get", "/tls/nope"],
        vec!["rm", "/tls/a"],
    ];
    for step in script {
        // Each side writes, so run the same step on its own key space... the state is
        // shared: etcdctl first, then ternctl against the state etcdctl left, on reads only.
        let e = run("etcdctl", &with(&step));
        let is_read = matches!(step.first(), Some(&"get" | &"ls" | &"-o"));
        if is_read {
            let t = run(ternctl, &with(&step));
            assert_eq!(
                (
                    t.status.code(),
                    String::from_utf8_lossy(&t.stdout),
                    String::from_utf8_lossy(&t.stderr)
                ),
                (
                    e.status.code(),
                    String::from_utf8_lossy(&e.stdout),
                    String::from_utf8_lossy(&e.stderr)
                ),
                "step {step:?}"
            );
        }
    }
    // ternctl writes over TLS too, and etcdctl reads what it wrote.
    let t = run(ternctl, &with(&["set", "/tls/c", "from-ternctl"]));
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let e = run("etcdctl", &with(&["get", "/tls/c"]));
    assert_eq!(String::from_utf8_lossy(&e.stdout), "from-ternctl\n");

    // Without the client certificate or the CA, the handshake fails on both: same exit code.
    for args in [
        vec![
            format!("--endpoints={url}"),
            format!("--ca-file={}", f("ca.pem")),
        ],
        vec![format!("--endpoints={url}")],
    ] {
        let mut a = args.clone();
        a.extend(["get".to_string(), "/tls/c".to_string()]);
        let e = run("etcdctl", &a);
        let t = run(ternctl, &a);
        assert!(!t.status.success());
        assert_eq!(
            t.status.code(),
            e.status.code(),
            "{args:?}:\nternctl: {}\netcdctl: {}",
            String::from_utf8_lossy(&t.stderr),
            String::from_utf8_lossy(&e.stderr)
        );
    }
}
