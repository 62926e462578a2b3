//! Cluster commands: `member list|add|remove|update` and `cluster-health`, with
//! etcdctl's messages (the §6.6 `ETCD_*` lines after `member add`) and exit codes.
//!
//! Must not know: argv syntax or HTTP.

use super::cli::{ClusterHealthArgs, MemberCommand};
use super::{handle_error, CmdResult, Ctx, Exit};
use super::{EXIT_BAD_ARGS, EXIT_CLUSTER_NOT_HEALTHY, EXIT_SERVER_ERROR};
use crate::client::{go_quote, Member};

fn fail(msg: impl std::fmt::Display) -> Exit {
    eprintln!("{msg}");
    Exit(EXIT_BAD_ARGS)
}

/// `member <subcommand>`.
pub fn member(ctx: &Ctx, m: &MemberCommand) -> CmdResult {
    match m {
        MemberCommand::List(a) => {
            if !a.args.is_empty() {
                return Err(fail("No arguments accepted"));
            }
            let mut c = ctx.must_client()?;
            c.deadline = ctx.total_deadline();
            let members = c.member_list().map_err(fail)?;
            let leader = c.member_leader().map_err(|e| {
                eprintln!("Failed to get leader:  {e}");
                Exit(EXIT_BAD_ARGS)
            })?;
            print!("{}", member_lines(&members, &leader.id));
            Ok(())
        }
        MemberCommand::Add(a) => {
            if a.args.len() != 2 {
                return Err(fail("Provide a name and a single member peerURL"));
            }
            let mut c = ctx.must_client()?;
            c.deadline = ctx.total_deadline();
            let new = c.member_add(&a.args[1]).map_err(fail)?;
            let name = &a.args[0];
            println!("Added member named {name} with ID {} to cluster", new.id);
            let members = c.member_list().map_err(fail)?;
            print!("{}", member_add_env(&members, &new.id, name));
            Ok(())
        }
        MemberCommand::Remove(a) => {
            if a.args.len() != 1 {
                return Err(fail("Provide a single member ID"));
            }
            let id = &a.args[0];
            let mut c = ctx.must_client()?;
            c.deadline = ctx.total_deadline();
            let members = c.member_list().map_err(|e| {
                eprintln!("Error while verifying ID against known members: {e}");
                Exit(EXIT_BAD_ARGS)
            })?;
            let mut found = false;
            for m in &members {
                if &m.id == id {
                    found = true;
                }
                if &m.name == id {
                    eprint!("Found a member named {}; if this is correct, please use its ID, eg:\n\tetcdctl member remove {}\n", m.name, m.id);
                    eprint!("For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n");
                }
            }
            if !found {
                eprintln!("Couldn't find a member in the cluster with an ID of {id}.");
                return Err(Exit(EXIT_BAD_ARGS));
            }
            if let Err(e) = c.member_remove(id) {
                eprint!("Received an error trying to remove member {id}: {e}");
                return Err(Exit(EXIT_BAD_ARGS));
            }
            println!("Removed member {id} from cluster");
            Ok(())
        }
        MemberCommand::Update(a) => {
            if a.args.len() != 2 {
                return Err(fail("Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)"));
            }
            let mut c = ctx.must_client()?;
            c.deadline = ctx.total_deadline();
            let urls: Vec<String> = a.args[1].split(',').map(str::to_string).collect();
            c.member_update(&a.args[0], &urls).map_err(fail)?;
            println!("Updated member with ID {} in cluster", a.args[0]);
            Ok(())
        }
        MemberCommand::Help(_) => Ok(()),
    }
}

/// `member list` lines.
pub fn member_lines(members: &[Member], leader: &str) -> String {
    let mut s = String::new();
    for m in members {
        if m.name.is_empty() {
            s.push_str(&format!(
                "{}[unstarted]: peerURLs={}\n",
                m.id,
                m.peer_urls.join(",")
            ));
        } else {
            s.push_str(&format!(
                "{}: name={} peerURLs={} clientURLs={} isLeader={}\n",
                m.id,
                m.name,
                m.peer_urls.join(","),
                m.client_urls.join(","),
                m.id == leader
            ));
        }
    }
    s
}

/// The configuration block printed after `member add` (§6.6).
pub fn member_add_env(members: &[Member], new_id: &str, new_name: &str) -> String {
    let mut conf = Vec::new();
    for m in members {
        for u in &m.peer_urls {
            let n = if m.id == new_id { new_name } else { &m.name };
            conf.push(format!("{n}={u}"));
        }
    }
    format!(
        "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        go_quote(new_name),
        go_quote(&conf.join(","))
    )
}

/// Interprets a `/health` body: `Ok(healthy)` or Go's JSON error text.
pub fn health_of(body: &[u8]) -> Result<bool, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| crate::client::go_json_error(body))?;
    let field = v.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("health"))
            .map(|(_, v)| v.clone())
    });
    Ok(match field {
        Some(serde_json::Value::String(s)) => s == "true",
        Some(serde_json::Value::Bool(b)) => b,
        _ => false,
    })
}

/// `cluster-health [--forever]`.
pub fn cluster_health(ctx: &Ctx, a: &ClusterHealthArgs) -> CmdResult {
    if a.forever {
        super::exit_zero_on_interrupt();
    }
    let mut c = ctx.must_client_no_sync()?;
    let members = match c.member_list() {
        Ok(m) => m,
        Err(e) => {
            println!("cluster may be unhealthy: failed to list members");
            return Err(handle_error(EXIT_SERVER_ERROR, &e));
        }
    };
    loop {
        let mut healthy = 0;
        for m in &members {
            if m.client_urls.is_empty() {
                println!(
                    "member {} is unreachable: no available published client urls",
                    m.id
                );
                continue;
            }
            let mut checked = false;
            for url in &m.client_urls {
                let body = match c.health(url) {
                    Ok(b) => b,
                    Err(e) => {
                        println!(
                            "failed to check the health of member {} on {url}: {e}",
                            m.id
                        );
                        continue;
                    }
                };
                match health_of(&body) {
                    Err(e) => {
                        println!(
                            "failed to check the health of member {} on {url}: {e}",
                            m.id
                        );
                        continue;
                    }
                    Ok(true) => {
                        println!("member {} is healthy: got healthy result from {url}", m.id);
                        healthy += 1;
                    }
                    Ok(false) => {
                        println!(
                            "member {} is unhealthy: got unhealthy result from {url}",
                            m.id
                        );
                    }
                }
                checked = true;
                break;
            }
            if !checked {
                println!(
                    "member {} is unreachable: [{}] are all unreachable",
                    m.id,
                    m.client_urls.join(" ")
                );
            }
        }
        if healthy == members.len() {
            println!("cluster is healthy");
        } else if healthy == 0 {
            println!("cluster is unavailable");
        } else {
            println!("cluster is degraded");
        }
        if !a.forever {
            return if healthy == members.len() {
                Ok(())
            } else {
                Err(Exit(EXIT_CLUSTER_NOT_HEALTHY))
            };
        }
        print!("\nnext check after 10 second...\n\n");
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, name: &str, peer: &str, client: &str) -> Member {
        Member {
            id: id.into(),
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: if client.is_empty() {
                vec![]
            } else {
                vec![client.into()]
            },
        }
    }

    /// infra0 (started) and an unstarted member added after it.
    fn started_and_unstarted() -> [Member; 2] {
        [
            m(
                "a1",
                "infra0",
                "http://10.0.1.10:2380",
                "http://10.0.1.10:2379",
            ),
            m("b2", "", "http://10.0.1.11:2380", ""),
        ]
    }

    #[test]
    fn member_list_lines() {
        let ms = started_and_unstarted();
        assert_eq!(
            member_lines(&ms, "a1"),
            "a1: name=infra0 peerURLs=http://10.0.1.10:2380 clientURLs=http://10.0.1.10:2379 isLeader=true\nb2[unstarted]: peerURLs=http://10.0.1.11:2380\n"
        );
    }

    #[test]
    fn member_add_block_matches_manual() {
        let ms = started_and_unstarted();
        assert_eq!(
            member_add_env(&ms, "b2", "infra1"),
            "\nETCD_NAME=\"infra1\"\nETCD_INITIAL_CLUSTER=\"infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }

    #[test]
    fn health_bodies() {
        assert_eq!(health_of(br#"{"health": "true"}"#), Ok(true));
        assert_eq!(health_of(br#"{"health":"false"}"#), Ok(false));
        assert_eq!(health_of(br#"{"health":true}"#), Ok(true));
        assert!(health_of(b"nope").is_err());
    }
}
