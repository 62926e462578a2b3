//! Multi-member clusters of real tern processes on 127.x.y.z addresses: replication, leader
//! loss, minority loss, restart catch-up, snapshot catch-up, growing and shrinking with the
//! members API, replacing a failed member, `--force-new-cluster`, and every bootstrap
//! misconfiguration the manual shows.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{add_member, iptables_usable, json_request, partition, Cluster, ELECTION_MS};

const LONG: Duration = Duration::from_secs(30);

fn put(c: &Cluster, i: usize, key: &str, value: &str) -> common::Resp {
    let mut client = c.client(i);
    client.put(&format!("/v2/keys{key}"), &[("value", value)])
}

#[test]
fn writes_through_any_member_are_read_on_all_and_survive_leader_loss() {
    let mut c = Cluster::start(3, &[]);
    let all = [0, 1, 2];
    c.wait_leader(&all, LONG);
    for i in all {
        let r = put(&c, i, &format!("/via{i}"), &format!("v{i}"));
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
    }
    for i in all {
        for j in all {
            // A quorum read on any member sees every acknowledged write.
            let r = c.client(j).get(&format!("/v2/keys/via{i}?quorum=true"));
            assert_eq!(r.json()["node"]["value"], format!("v{i}"), "member {j}");
        }
    }
    let members = c.client(0).get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 3);

    // Peer traffic shows in the stats: the leader counts appends per follower, followers
    // count what they received, and only the leader answers /v2/stats/leader.
    let leader = c.wait_leader(&all, LONG);
    let stats = c.client(leader).get("/v2/stats/leader").json();
    let followers = stats["followers"].as_object().unwrap();
    assert_eq!(followers.len(), 2, "{stats}");
    for f in followers.values() {
        assert!(f["counts"]["success"].as_u64().unwrap() > 0, "{stats}");
        assert!(f["latency"]["maximum"].as_f64().unwrap() > 0.0, "{stats}");
    }
    let follower = (leader + 1) % 3;
    let own = c.self_stats(follower).unwrap();
    assert!(own["recvAppendRequestCnt"].as_u64().unwrap() > 0, "{own}");
    let r = c.client(follower).get("/v2/stats/leader");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "not current leader");

    let killed_at = Instant::now();
    c.kill(leader);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = c.wait_leader(&rest, LONG);
    let took = killed_at.elapsed();
    // "Within a few election timeouts" — generous, the machine is shared.
    assert!(
        took < Duration::from_millis(ELECTION_MS * 20),
        "new leader after {took:?}"
    );
    assert_ne!(new_leader, leader);
    for &i in &rest {
        let r = put(&c, i, "/after", &format!("a{i}"));
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
    }

    // The killed member comes back and catches up from the log.
    c.restart(leader);
    c.wait_value(leader, "/after", &format!("a{}", rest[1]), LONG);
    let r = c.client(leader).get("/v2/keys/via0?quorum=true");
    assert_eq!(r.json()["node"]["value"], "v0");
}

#[test]
fn a_minority_cannot_commit_and_its_quorum_reads_fail() {
    let c = Cluster::start(3, &[]);
    c.wait_leader(&[0, 1, 2], LONG);
    put(&c, 0, "/k", "before");
    // Pause two members: the one left is a minority.
    c.pause(1);
    c.pause(2);
    let mut client = c.client(0);
    let r = client.put("/v2/keys/k", &[("value", "lost")]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["errorCode"], 300);
    let r = client.get("/v2/keys/k?quorum=true");
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    // A plain read is served locally, with what the member has.
    let r = client.get("/v2/keys/k");
    assert_eq!(r.json()["node"]["value"], "before");
    c.resume(1);
    c.resume(2);
    c.wait_leader(&[0, 1, 2], LONG);
    let r = put(&c, 2, "/k", "after");
    assert_eq!(r.status, 200, "{}", r.text());
    c.wait_value(0, "/k", "after", LONG);
    // The write that failed was never applied anywhere... or, if raft committed it after the
    // client gave up, it is older than "after". Either way the final value is "after".
    for i in 0..3 {
        c.wait_value(i, "/k", "after", LONG);
    }
}

#[test]
fn five_members_survive_two_failures_but_not_three() {
    let mut c = Cluster::start(5, &[]);
    let all = [0, 1, 2, 3, 4];
    let leader = c.wait_leader(&all, LONG);
    // Kill two members, the leader among them.
    let second = (leader + 1) % 5;
    c.kill(leader);
    c.kill(second);
    let rest: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| i != leader && i != second)
        .collect();
    c.wait_leader(&rest, LONG);
    let r = put(&c, rest[0], "/five", "ok");
    assert_eq!(r.status, 201, "{}", r.text());
    for &i in &rest {
        let r = c.client(i).get("/v2/keys/five?quorum=true");
        assert_eq!(r.json()["node"]["value"], "ok");
    }
    // A third failure leaves two of five: no quorum.
    c.kill(rest[2]);
    let r = put(&c, rest[0], "/five", "lost");
    assert_eq!(r.json()["errorCode"], 300, "{}", r.text());
    // Back to three: the cluster goes on, and what it acknowledged is there.
    c.restart(leader);
    c.wait_leader(&[leader, rest[0], rest[1]], LONG);
    let r = c.client(leader).get("/v2/keys/five?quorum=true");
    assert!(
        matches!(r.json()["node"]["value"].as_str(), Some("ok" | "lost")),
        "{}",
        r.text()
    );
    let r = put(&c, rest[1], "/five", "again");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_partitioned_member_cannot_commit_while_the_majority_goes_on() {
    if !iptables_usable() {
        println!("skipped: partitions need root and iptables (the SIGSTOP test covers the minority side)");
        return;
    }
    let c = Cluster::start(3, &[]);
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, LONG);
    // Cut the leader off: the other two elect a new one and keep serving.
    let ip = c.nodes[leader].ip.clone();
    let others: Vec<String> = all
        .iter()
        .filter(|&&i| i != leader)
        .map(|&i| c.nodes[i].ip.clone())
        .collect();
    partition(&ip, &others, true);
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let new_leader = c.wait_leader(&majority, LONG);
        let r = put(&c, new_leader, "/p", "majority");
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
        // Once the cut-off member has stepped down it knows no leader: a write it takes now
        // waits for one, times out, and must not be applied when the partition heals (the
        // client was told it failed).
        let deadline = Instant::now() + LONG;
        while c
            .client(leader)
            .get("/metrics")
            .text()
            .contains("\netcd_server_has_leader 1")
        {
            assert!(
                Instant::now() < deadline,
                "the cut-off leader never stepped down"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut isolated = c.client(leader);
        let r = isolated.put("/v2/keys/p", &[("value", "minority")]);
        assert_eq!(r.json()["errorCode"], 300, "{}", r.text());
        let r = isolated.get("/v2/keys/p?quorum=true");
        assert!(r.status >= 500, "{} {}", r.status, r.text());
    }));
    partition(&ip, &others, false);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    // Healed: the old leader follows and has the majority's write.
    c.wait_value(leader, "/p", "majority", LONG);
    // Give a wrongly kept proposal of the cut-off member time to surface.
    std::thread::sleep(Duration::from_millis(4 * ELECTION_MS));
    for i in all {
        let r = c.client(i).get("/v2/keys/p?quorum=true");
        assert_eq!(
            r.json()["node"]["value"],
            "majority",
            "member {i}: {}",
            r.text()
        );
    }
}

/// A 3-member cluster snapshotting every 50 entries, with one member (the returned lagger,
/// stopped) left behind while another (the returned writer, not the leader) takes `writes`
/// writes of `<dir>/<n>` = n: the leader's log is compacted past what the lagger has.
fn leave_a_member_behind(dir: &str, writes: u32) -> (Cluster, usize, usize, usize) {
    let mut c = Cluster::start(3, &["--snapshot-count", "50"]);
    let leader = c.wait_leader(&[0, 1, 2], LONG);
    let lagger = (leader + 1) % 3;
    let writer = (leader + 2) % 3;
    c.kill(lagger);
    let mut client = c.client(writer);
    for n in 0..writes {
        let r = client.put(&format!("/v2/keys{dir}/{n}"), &[("value", &n.to_string())]);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    (c, leader, lagger, writer)
}

#[test]
fn a_member_behind_the_compacted_log_gets_a_snapshot() {
    let (mut c, _, lagger, writer) = leave_a_member_behind("/lag", 300);
    let all = [0, 1, 2];
    c.restart(lagger);
    c.wait_value(lagger, "/lag/299", "299", LONG);
    let r = c.client(lagger).get("/v2/keys/lag/0");
    assert_eq!(r.json()["node"]["value"], "0");
    assert!(
        c.nodes[lagger].log().contains("installed a snapshot"),
        "{}",
        c.nodes[lagger].log()
    );
    // The transfer shows in both members' /metrics under etcd's snapshot families.
    let sender = c.wait_leader(&all, LONG);
    let ids = [c.member_id(sender), c.member_id(lagger)];
    let scrapes = [sender, lagger].map(|i| c.client(i).get("/metrics").text());
    for (name, kind, label) in tern::metrics::ETCD_SNAPSHOT_TRANSFER_FAMILIES {
        if name.ends_with("failures") {
            continue;
        }
        let (side, peer) = if *label == "To" { (0, 1) } else { (1, 0) };
        let text = &scrapes[side];
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{text}"
        );
        let sample = if *kind == "histogram" {
            format!("{name}_count{{{label}=\"{}\"}} ", ids[peer])
        } else {
            format!("{name}{{{label}=\"{}\"}} ", ids[peer])
        };
        assert!(text.contains(&sample), "{sample} not in:\n{text}");
    }
    // And it keeps following the log afterwards.
    put(&c, writer, "/lag/next", "n");
    c.wait_value(lagger, "/lag/next", "n", LONG);
}

/// The leader keeps a snapshot's data in its file, not in memory. If that file is gone when a
/// follower needs it (an operator cleaned the directory), the leader takes a new snapshot,
/// even with nothing applied since, and the follower still catches up.
#[test]
fn a_follower_catches_up_after_the_leaders_snapshot_file_is_deleted() {
    let (mut c, leader, lagger, _) = leave_a_member_behind("/gone", 200);
    // Let the last snapshot finish, then remove every snapshot file of the leader.
    std::thread::sleep(Duration::from_millis(500));
    let snap_dir = c.nodes[leader].dir.join("data/member/snap");
    let mut removed = 0;
    for entry in std::fs::read_dir(&snap_dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "snap") {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(
        removed > 0,
        "the leader had snapshots in {}",
        snap_dir.display()
    );
    c.restart(lagger);
    c.wait_value(lagger, "/gone/199", "199", LONG);
    assert_eq!(
        c.client(lagger).get("/v2/keys/gone/0").json()["node"]["value"],
        "0"
    );
    let log = c.nodes[leader].log();
    assert!(
        log.contains("taking a new one"),
        "the leader found its file gone:\n{log}"
    );
}

#[test]
fn grow_from_one_to_three_and_shrink_back_with_the_members_api() {
    let mut c = Cluster::start(1, &[]);
    put(&c, 0, "/g", "1");
    for new in 1..3 {
        let i = c.plan_node();
        assert_eq!(i, new);
        let mut admin = c.client(0);
        let r = add_member(&mut admin, &c.nodes[i].peer_url());
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["name"], "");
        assert_eq!(r.json()["clientURLs"], serde_json::json!([]));
        let ic = c.initial_cluster(&(0..=i).collect::<Vec<_>>());
        c.spawn(i, &ic, "existing", &[]);
        c.wait_serving(i, LONG);
        c.wait_value(i, "/g", "1", LONG);
    }
    let members = c.client(2).get("/v2/members").json();
    let list = members["members"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let names: Vec<&str> = list.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"m1") && names.contains(&"m2") && names.contains(&"m3"));
    put(&c, 2, "/g", "3");
    c.wait_value(0, "/g", "3", LONG);

    // Shrink: remove m3, then the leader itself if it is not m1, down to one member.
    for gone in [2, 1] {
        let id = c.member_id(gone);
        let mut admin = c.client(0);
        let r = admin.request("DELETE", &format!("/v2/members/{id}"), &[]);
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(c.nodes[gone].wait_exit(LONG).is_some(), "member still runs");
        assert!(c.nodes[gone]
            .log()
            .contains("this member has been permanently removed from the cluster. Exiting."));
        let r = admin.request("DELETE", &format!("/v2/members/{id}"), &[]);
        assert_eq!(r.status, 410);
        assert_eq!(
            r.json()["message"],
            format!("Member permanently removed: {id}")
        );
    }
    c.wait_leader(&[0], LONG);
    let r = put(&c, 0, "/g", "1 again");
    assert_eq!(r.status, 200, "{}", r.text());

    // A removed member started again on its old data dir leaves at once.
    let ic = c.initial_cluster(&[1]);
    c.spawn(1, &ic, "existing", &[]);
    assert!(c.nodes[1].wait_exit(LONG).is_some());
}

#[test]
fn replace_a_failed_member() {
    // §6.2: a member's machine dies for good; remove it, add a new one on another address.
    let mut c = Cluster::start(3, &[]);
    let all = [0, 1, 2];
    c.wait_leader(&all, LONG);
    put(&c, 0, "/r", "before");
    let dead_id = c.member_id(2);
    c.kill(2);
    c.wait_leader(&[0, 1], LONG);
    let mut admin = c.client(0);
    let r = admin.request("DELETE", &format!("/v2/members/{dead_id}"), &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    let fresh = c.plan_node();
    let r = add_member(&mut admin, &c.nodes[fresh].peer_url());
    assert_eq!(r.status, 201, "{}", r.text());
    let ic = c.initial_cluster(&[0, 1, fresh]);
    c.spawn(fresh, &ic, "existing", &[]);
    c.wait_serving(fresh, LONG);
    c.wait_value(fresh, "/r", "before", LONG);
    let r = put(&c, fresh, "/r", "after");
    assert_eq!(r.status, 200, "{}", r.text());
    c.wait_value(1, "/r", "after", LONG);
}

#[test]
fn members_api_answers_like_etcd() {
    let mut c = Cluster::start(3, &["--strict-reconfig-check"]);
    c.wait_leader(&[0, 1, 2], LONG);
    let mut admin = c.client(1);
    let r = admin.request("POST", "/v2/members", &[("peerURLs", "x")]);
    assert_eq!(r.status, 415);
    assert_eq!(
        r.json()["message"],
        "Bad Content-Type application/x-www-form-urlencoded, accept application/json"
    );
    let r = json_request(&mut admin, "POST", "/v2/members", "{\"peerURLs\":[");
    assert_eq!(r.status, 400);
    let r = json_request(
        &mut admin,
        "POST",
        "/v2/members",
        "{\"peerURLs\":[\"abc\"]}",
    );
    assert_eq!(
        r.json()["message"],
        "URL scheme must be http, https, unix, or unixs: abc"
    );
    let r = json_request(&mut admin, "POST", "/v2/members", "{\"peerURLs\":[]}");
    assert_eq!(r.json()["message"], "no valid URLs given");
    let taken = c.nodes[0].peer_url();
    let r = add_member(&mut admin, &taken);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["message"], "membership: peerURL exists");
    let r = admin.request("DELETE", "/v2/members/1234", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such member: 1234");
    let r = admin.request("DELETE", "/v2/members/zzz", &[]);
    assert_eq!(r.status, 404);
    let r = admin.request("PATCH", "/v2/members", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,POST,DELETE,PUT"));
    let r = admin.get("/v2/members/leader");
    assert_eq!(r.status, 200);
    assert!(r.json()["id"].is_string());

    // Update a member's peer URLs (to the same address plus another port) and back.
    let id = c.member_id(2);
    let own = c.nodes[2].peer_url();
    let r = json_request(
        &mut admin,
        "PUT",
        &format!("/v2/members/{id}"),
        &format!(
            "{{\"peerURLs\":[\"{own}\",\"http://{}:1\"]}}",
            c.nodes[2].ip
        ),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let list = admin.get("/v2/members").json();
    let m = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(m["peerURLs"].as_array().unwrap().len(), 2);
    let r = json_request(
        &mut admin,
        "PUT",
        &format!("/v2/members/{id}"),
        &format!("{{\"peerURLs\":[\"{}\"]}}", c.nodes[0].peer_url()),
    );
    assert_eq!(r.status, 409);

    // Strict reconfiguration: with one member down, removing another would lose quorum.
    c.kill(2);
    std::thread::sleep(Duration::from_millis(ELECTION_MS * 4));
    let victim = c.member_id(0);
    let mut admin = c.client(1);
    let r = admin.request("DELETE", &format!("/v2/members/{victim}"), &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["message"], "Internal Server Error");
}

#[test]
fn force_new_cluster_keeps_the_data_of_one_member() {
    let mut c = Cluster::start(3, &[]);
    c.wait_leader(&[0, 1, 2], LONG);
    put(&c, 1, "/f", "kept");
    c.wait_value(0, "/f", "kept", LONG);
    for i in 0..3 {
        c.kill(i);
    }
    let ic = c.initial_cluster(&[0]);
    c.spawn(0, &ic, "existing", &["--force-new-cluster"]);
    c.wait_serving(0, LONG);
    c.wait_leader(&[0], LONG);
    let r = c.client(0).get("/v2/keys/f?quorum=true");
    assert_eq!(r.json()["node"]["value"], "kept");
    let members = c.client(0).get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    let r = put(&c, 0, "/f", "alone");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Runs a member that must refuse to start; its exit code and log.
fn refused(c: &mut Cluster, i: usize, ic: &str, state: &str) -> (Option<i32>, String) {
    c.spawn(i, ic, state, &[]);
    let code = c.nodes[i].wait_exit(LONG);
    (code, c.nodes[i].log())
}

#[test]
fn bootstrap_misconfigurations_exit_with_etcds_messages() {
    let mut c = Cluster::plan(3, &[]);
    // Not listed.
    let ic = c.initial_cluster(&[0]);
    let (code, log) = refused(&mut c, 1, &ic, "new");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("m2 not listed in the initial cluster config"),
        "{log}"
    );

    // Different advertised peer URLs.
    let ic = format!("m3=http://{}:1,{}", c.nodes[2].ip, c.initial_cluster(&[0]));
    let (code, log) = refused(&mut c, 2, &ic, "new");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("error setting up initial cluster: m3 has different advertised URLs in the cluster and advertised peer URLs list"),
        "{log}"
    );

    // A running two-member cluster m1, m2 (with m3 not part of it yet).
    let ic = c.initial_cluster(&[0, 1]);
    c.spawn(0, &ic, "new", &[]);
    c.spawn(1, &ic, "new", &[]);
    c.wait_serving(0, LONG);
    c.wait_serving(1, LONG);

    // Joining with a member list that lacks the new member: counts differ.
    let all3 = c.initial_cluster(&[0, 1, 2]);
    let (code, log) = refused(&mut c, 2, &all3, "existing");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("assign ids error: the member count is unequal"),
        "{log}"
    );

    // The cluster expects a member at one URL, the joiner says another.
    let mut admin = c.client(0);
    let r = add_member(&mut admin, &format!("http://{}:9", c.nodes[2].ip));
    assert_eq!(r.status, 201, "{}", r.text());
    let all3 = c.initial_cluster(&[0, 1, 2]);
    let (code, log) = refused(&mut c, 2, &all3, "existing");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("assign ids error: unmatched member while checking PeerURLs"),
        "{log}"
    );

    // A member started as a new cluster whose peers belong to another cluster.
    let (code, log) = refused(&mut c, 2, &all3, "new");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("conflicting cluster ID to the target cluster"),
        "{log}"
    );
}

#[test]
fn disaster_recovery_from_a_backup_as_in_section_6_3() {
    // A running three-member cluster with data.
    let mut c = Cluster::start(3, &["--snapshot-count", "40"]);
    c.wait_leader(&[0, 1, 2], LONG);
    for n in 0..100 {
        let r = put(&c, n % 3, &format!("/dr/{n}"), &n.to_string());
        assert_eq!(r.status, 201, "{}", r.text());
    }
    c.wait_value(0, "/dr/99", "99", LONG);

    // Back up member 1's data dir while it runs, into the data dir of a fresh member.
    let old_id = c.member_id(0);
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

    // The whole cluster is lost.
    for i in 0..3 {
        c.kill(i);
    }

    // Start from the backup as a new one-member cluster.
    let ic = c.initial_cluster(&[fresh]);
    c.spawn(fresh, &ic, "new", &["--force-new-cluster"]);
    c.wait_serving(fresh, LONG);
    c.wait_leader(&[fresh], LONG);
    let r = c.client(fresh).get("/v2/keys/dr/99?quorum=true");
    assert_eq!(r.json()["node"]["value"], "99", "{}", r.text());
    let list = c.client(fresh).get("/v2/members").json();
    let members = list["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{list}");
    assert_eq!(
        members[0]["peerURLs"][0],
        c.nodes[fresh].peer_url().as_str()
    );
    assert_ne!(
        members[0]["id"].as_str().unwrap(),
        old_id,
        "the backup runs under a new member ID"
    );

    // Grow it back to three members.
    let mut grown = vec![fresh];
    for _ in 0..2 {
        let i = c.plan_node();
        let mut admin = c.client(fresh);
        let r = add_member(&mut admin, &c.nodes[i].peer_url());
        assert_eq!(r.status, 201, "{}", r.text());
        grown.push(i);
        let ic = c.initial_cluster(&grown);
        c.spawn(i, &ic, "existing", &[]);
        c.wait_serving(i, LONG);
        c.wait_value(i, "/dr/50", "50", LONG);
    }
    let r = put(&c, grown[2], "/dr/after", "grown");
    assert_eq!(r.status, 201, "{}", r.text());
    for &i in &grown {
        c.wait_value(i, "/dr/after", "grown", LONG);
    }
}

#[test]
fn a_follower_restarted_after_kill_still_shows_what_it_acknowledged() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_leader(&[0, 1, 2], LONG);
    let follower = (leader + 1) % 3;
    for round in 0..3 {
        let value = format!("r{round}");
        let r = put(&c, follower, "/ack", &value);
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
        // Killed right after the answer: its disk may not record the commit yet.
        c.kill(follower);
        c.restart(follower);
        // A plain (local) read on the member that acknowledged the write.
        let r = c.client(follower).get("/v2/keys/ack");
        assert_eq!(r.json()["node"]["value"], value.as_str(), "round {round}");
    }
}

/// Shard 0 runs raft beside its clients. A flood of clients on the leader's only shard, each
/// asking for a listing that costs real CPU, must not hold back the heartbeats: raft has its
/// own task queue, which the executor serves within a millisecond of it having work. Without
/// it, 256 runnable client tasks stood in front of every raft step and the followers called
/// an election.
#[test]
fn a_client_flood_on_the_leaders_raft_shard_calls_no_election() {
    let c = Cluster::start(3, &["--shards", "1"]);
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, LONG);
    let mut client = c.client(leader);
    let value = "v".repeat(64);
    for i in 0..2000 {
        let r = client.put(&format!("/v2/keys/flood/k{i:05}"), &[("value", &value)]);
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
    }
    let term = |i: usize| {
        let r = c.client(i).get("/v2/keys/flood/k00000");
        r.header("X-Raft-Term").map(str::to_string)
    };
    let terms_before: Vec<_> = all.iter().map(|&i| term(i)).collect();
    let leader_id = c.member_id(leader);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood: Vec<_> = (0..256)
        .map(|_| {
            let mut client = c.client(leader);
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match client.try_request("GET", "/v2/keys/flood?recursive=true", &[], b"") {
                        Ok(r) if r.status == 200 => {
                            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in flood {
        let _ = t.join();
    }
    assert!(
        served.load(std::sync::atomic::Ordering::Relaxed) >= 256,
        "the flood reached the leader"
    );
    let terms_after: Vec<_> = all.iter().map(|&i| term(i)).collect();
    assert_eq!(terms_after, terms_before, "no member saw a new term");
    let now_leader = c.wait_leader(&all, LONG);
    assert_eq!(c.member_id(now_leader), leader_id, "the same leader");
}

/// How often member `i`'s log says `what` about peer `peer` (hex ID).
fn log_count(c: &Cluster, i: usize, what: &str, peer: &str) -> usize {
    c.nodes[i]
        .log()
        .lines()
        .filter(|l| l.contains(what) && l.contains(peer))
        .count()
}

/// Waits until member `i`'s log has said `what` about `peer` more than `before` times.
fn wait_log(c: &Cluster, i: usize, what: &str, peer: &str, before: usize) {
    let deadline = Instant::now() + LONG;
    while log_count(c, i, what, peer) <= before {
        assert!(
            Instant::now() < deadline,
            "member {i} never logged {what:?} for {peer}:\n{}",
            c.nodes[i].log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const READER_UP: &str = "established a TCP streaming connection with peer";
const STREAM_LOST: &str = "lost the TCP streaming connection with peer";

/// Every member keeps a stream open from each peer (the peer's messages to it flow there), a
/// member that goes away loses its streams, and once it is back they open again and it
/// catches up on what it missed.
#[test]
fn members_stream_raft_messages_and_reopen_the_streams_after_a_restart() {
    let mut c = Cluster::start(3, &[]);
    let all = [0, 1, 2];
    let leader = c.wait_leader(&all, LONG);
    let ids: Vec<String> = all.iter().map(|&i| c.member_id(i)).collect();
    for i in all {
        for j in all.iter().copied().filter(|&j| j != i) {
            // Both ends say so: i reads the stream from j, and j writes it.
            wait_log(
                &c,
                i,
                &format!("{READER_UP} {} (stream reader)", ids[j]),
                "",
                0,
            );
            wait_log(
                &c,
                j,
                &format!("{READER_UP} {} (stream writer)", ids[i]),
                "",
                0,
            );
        }
    }
    assert_eq!(put(&c, leader, "/s/1", "a").status, 201);
    for i in all {
        c.wait_value(i, "/s/1", "a", LONG);
    }

    let follower = (leader + 1) % 3;
    let writer_up = format!("{READER_UP} {} (stream writer)", ids[follower]);
    let reader_up = format!("{READER_UP} {} (stream reader)", ids[follower]);
    let (writes_before, reads_before) = (
        log_count(&c, leader, &writer_up, ""),
        log_count(&c, leader, &reader_up, ""),
    );
    c.kill(follower);
    wait_log(&c, leader, STREAM_LOST, &ids[follower], 0);
    assert_eq!(put(&c, leader, "/s/2", "b").status, 201);
    c.restart(follower);
    // The restarted member opens its stream from the leader again, and the leader its own
    // from the restarted member.
    wait_log(&c, leader, &writer_up, "", writes_before);
    wait_log(&c, leader, &reader_up, "", reads_before);
    c.wait_value(follower, "/s/2", "b", LONG);
    assert_eq!(put(&c, leader, "/s/3", "c").status, 201);
    for i in all {
        let r = c.client(i).get("/v2/keys/s/3?quorum=true");
        assert_eq!(r.json()["node"]["value"], "c", "member {i}: {}", r.text());
    }
}

#[test]
fn members_that_name_each_other_by_host_name_form_a_cluster() {
    // Peer URLs with a host name: every dial resolves `localhost` (off the raft shard, on the
    // blocking pool), tries its addresses in turn (::1 is not listened on) and reaches the
    // member on 127.0.0.1. The three must elect a leader and replicate.
    let names = ["h1", "h2", "h3"];
    let ports: Vec<(u16, u16)> = names
        .iter()
        .map(|_| (common::free_port(), common::free_port()))
        .collect();
    let initial = names
        .iter()
        .zip(&ports)
        .map(|(name, (_, peer))| format!("{name}=http://localhost:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (name, (port, peer)) in names.iter().zip(&ports) {
        let dir = common::temp_dir(&format!("hostname-{name}"));
        let client_url = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--name", name, "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://localhost:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "hostnames",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tern");
        members.push(common::Server {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            dir,
            owns_dir: true,
        });
    }
    for m in &members {
        common::wait_ready(m, "/health");
    }
    let put = members[0]
        .client()
        .put("/v2/keys/named", &[("value", "by-host")]);
    assert!(put.status == 200 || put.status == 201, "{}", put.text());
    for m in &members {
        let got = m.client().get("/v2/keys/named?quorum=true");
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["node"]["value"], "by-host");
    }
}
