//! The key-space commands: get, ls, set, mk, mkdir, setdir, update, updatedir, rm,
//! rmdir, watch, exec-watch — etcdctl's behaviour, messages and exit codes.
//!
//! Must not know: argv syntax (already typed by `cli`) or HTTP (that is `client`).

use std::io::Read;

use super::cli::{ExecWatchArgs, GetArgs, LsArgs, MkArgs, RmArgs, SetArgs, TtlKeyArgs};
use super::cli::{KeyArgs, TtlKeyValueArgs, WatchArgs};
use super::{handle_error, handle_error_msg, print_key, CmdResult, Ctx, Exit};
use super::{EXIT_BAD_ARGS, EXIT_SERVER_ERROR};
use crate::client::SetOptions;
use crate::client::{Client, ClientError, DeleteOptions, GetOptions, Node, PrevExist, Response};

fn key_arg(args: &[String]) -> Result<&str, Exit> {
    args.first()
        .map(String::as_str)
        .ok_or_else(|| handle_error_msg(EXIT_BAD_ARGS, "key required"))
}

/// `argOrStdin`: the value argument, or all of stdin.
fn value_arg(args: &[String]) -> Result<String, Exit> {
    if let Some(v) = args.get(1) {
        return Ok(v.clone());
    }
    let mut buf = Vec::new();
    match std::io::stdin().read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Ok(String::from_utf8_lossy(&buf).into_owned()),
        _ => Err(handle_error_msg(EXIT_BAD_ARGS, "value required")),
    }
}

/// Sends one request with the command's total deadline (counted from now); a failure is
/// etcdctl's server-error exit.
fn send(
    ctx: &Ctx,
    c: &mut Client,
    request: impl FnOnce(&mut Client) -> Result<Response, ClientError>,
) -> Result<Response, Exit> {
    c.deadline = ctx.total_deadline();
    request(c).map_err(|e| handle_error(EXIT_SERVER_ERROR, &e))
}

fn ttl(t: i64) -> u64 {
    if t > 0 {
        t as u64
    } else {
        0
    }
}

/// `get <key>`.
pub fn get(ctx: &Ctx, a: &GetArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| {
        c.get(
            key,
            &GetOptions {
                sort: a.sort,
                quorum: a.quorum,
                recursive: false,
            },
        )
    })?;
    if let Some(n) = resp.node.as_ref().filter(|n| n.dir) {
        eprintln!("{}: is a directory", n.key);
        return Err(Exit(EXIT_BAD_ARGS));
    }
    print_key(ctx, &resp);
    Ok(())
}

/// `ls [key]`.
pub fn ls(ctx: &Ctx, a: &LsArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = a.args.first().map_or("/", String::as_str);
    let resp = send(ctx, &mut c, |c| {
        c.get(
            key,
            &GetOptions {
                sort: a.sort,
                recursive: a.recursive,
                quorum: a.quorum,
            },
        )
    })?;
    if ctx.output() == "simple" {
        let mut out = String::new();
        if let Some(n) = &resp.node {
            if !n.dir {
                out.push_str(&format!("{}\n", n.key));
            }
            for child in n.nodes.iter().flatten() {
                ls_print(&mut out, child, a.p);
            }
        }
        print!("{out}");
    } else {
        print_key(ctx, &resp);
    }
    Ok(())
}

/// `rPrint`: a node and its descendants, directories with `/` under `-p`.
pub fn ls_print(out: &mut String, n: &Node, slash: bool) {
    if n.dir && slash {
        out.push_str(&format!("{}/\n", n.key));
    } else {
        out.push_str(&format!("{}\n", n.key));
    }
    for c in n.nodes.iter().flatten() {
        ls_print(out, c, slash);
    }
}

/// `set <key> <value>`.
pub fn set(ctx: &Ctx, a: &SetArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| {
        c.set(
            key,
            &value,
            &SetOptions {
                ttl: ttl(a.ttl),
                prev_index: a.swap_with_index as u64,
                prev_value: a.swap_with_value.clone(),
                ..Default::default()
            },
        )
    })?;
    print_key(ctx, &resp);
    Ok(())
}

/// `mk <key> <value>` (or an in-order key under the `<key>` directory).
pub fn mk(ctx: &Ctx, a: &MkArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| {
        if a.in_order {
            c.create_in_order(key, &value, ttl(a.ttl))
        } else {
            c.create(key, &value, ttl(a.ttl))
        }
    })?;
    print_key(ctx, &resp);
    Ok(())
}

/// `mkdir <key>` (`prev`: must not exist) and `setdir <key>` (`prev`: ignore).
pub fn mkdir(ctx: &Ctx, a: &TtlKeyArgs, prev: PrevExist) -> CmdResult {
    set_dir(ctx, &a.args, a.ttl, prev)
}

/// `update <key> <value>`.
pub fn update(ctx: &Ctx, a: &TtlKeyValueArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| c.update(key, &value, ttl(a.ttl)))?;
    print_key(ctx, &resp);
    Ok(())
}

/// `updatedir <key>`.
pub fn updatedir(ctx: &Ctx, a: &TtlKeyValueArgs) -> CmdResult {
    set_dir(ctx, &a.args, a.ttl, PrevExist::Exist)
}

/// Creates or updates the directory `args[0]` (mkdir, setdir, updatedir).
fn set_dir(ctx: &Ctx, args: &[String], ttl_secs: i64, prev: PrevExist) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(args)?;
    let options = SetOptions {
        ttl: ttl(ttl_secs),
        dir: true,
        prev_exist: prev,
        ..Default::default()
    };
    let resp = send(ctx, &mut c, |c| c.set(key, "", &options))?;
    if ctx.output() != "simple" {
        print_key(ctx, &resp);
    }
    Ok(())
}

fn print_delete(ctx: &Ctx, resp: &Response) {
    let dir = resp.node.as_ref().is_some_and(|n| n.dir);
    if !dir || ctx.output() != "simple" {
        print_key(ctx, resp);
    }
}

/// `rm <key>`.
pub fn rm(ctx: &Ctx, a: &RmArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| {
        c.delete(
            key,
            &DeleteOptions {
                prev_index: a.with_index as u64,
                prev_value: a.with_value.clone(),
                dir: a.dir,
                recursive: a.recursive,
            },
        )
    })?;
    print_delete(ctx, &resp);
    Ok(())
}

/// `rmdir <key>`.
pub fn rmdir(ctx: &Ctx, a: &KeyArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let resp = send(ctx, &mut c, |c| {
        c.delete(
            key,
            &DeleteOptions {
                dir: true,
                ..Default::default()
            },
        )
    })?;
    print_delete(ctx, &resp);
    Ok(())
}

/// `watch <key>`: one event, or every event with `--forever`.
pub fn watch(ctx: &Ctx, a: &WatchArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    let key = key_arg(&a.args)?;
    let mut w = c.watcher(key, a.after_index as u64, a.recursive);
    super::exit_zero_on_interrupt();
    loop {
        let resp = w
            .next(&mut c)
            .map_err(|e| handle_error(EXIT_SERVER_ERROR, &e))?;
        let Some(node) = resp.node.as_ref() else {
            continue;
        };
        if node.dir {
            continue;
        }
        if a.recursive {
            println!("[{}] {}", resp.action, node.key);
        }
        print_key(ctx, &resp);
        if !a.forever {
            return Ok(());
        }
    }
}

/// Splits exec-watch's arguments into the key and the command, etcdctl's way: with a
/// `--` after the key, `key -- cmd...`; otherwise the key is the last argument.
pub fn exec_watch_split(args: &[String]) -> (String, Vec<String>) {
    let sep = args.iter().enumerate().any(|(i, a)| a == "--" && i != 0);
    if sep {
        (args[0].clone(), args[2..].to_vec())
    } else {
        let n = args.len();
        (args[n - 1].clone(), args[..n - 1].to_vec())
    }
}

/// `exec-watch <key> -- <command> [args...]`: runs the command for every change.
pub fn exec_watch(ctx: &Ctx, a: &ExecWatchArgs) -> CmdResult {
    let mut c = ctx.must_client()?;
    if a.args.len() < 2 {
        return Err(handle_error_msg(
            EXIT_BAD_ARGS,
            "key and command to exec required",
        ));
    }
    let (key, cmd) = exec_watch_split(&a.args);
    super::exit_zero_on_interrupt();
    let mut w = c.watcher(&key, a.after_index as u64, a.recursive);
    loop {
        let resp = w
            .next(&mut c)
            .map_err(|e| handle_error(EXIT_SERVER_ERROR, &e))?;
        let node = resp.node.clone().unwrap_or_default();
        if node.dir {
            eprintln!("Ignored dir {} change", node.key);
            continue;
        }
        let Some(prog) = cmd.first() else {
            eprint!("exec: no command");
            return Err(Exit(EXIT_BAD_ARGS));
        };
        let spawned = std::process::Command::new(prog)
            .args(&cmd[1..])
            .env_remove("ETCDCTL_API")
            .env("ETCD_WATCH_ACTION", &resp.action)
            .env("ETCD_WATCH_MODIFIED_INDEX", node.modified_index.to_string())
            .env("ETCD_WATCH_KEY", &node.key)
            .env("ETCD_WATCH_VALUE", &node.value)
            .spawn();
        match spawned {
            Ok(mut child) => {
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    eprint!(
                        "exec: {}: executable file not found in $PATH",
                        crate::client::go_quote(prog)
                    );
                } else {
                    eprint!("fork/exec {prog}: {e}");
                }
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exec_watch_with_separator() {
        let (k, c) = exec_watch_split(&s(&["/k", "--", "sh", "-c", "x"]));
        assert_eq!((k.as_str(), c), ("/k", s(&["sh", "-c", "x"])));
    }

    #[test]
    fn exec_watch_without_separator_takes_last_as_key() {
        let (k, c) = exec_watch_split(&s(&["sh", "/k"]));
        assert_eq!((k.as_str(), c), ("/k", s(&["sh"])));
    }

    #[test]
    fn ls_print_marks_dirs() {
        let n = Node {
            key: "/d".into(),
            dir: true,
            nodes: Some(vec![Node {
                key: "/d/a".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut out = String::new();
        ls_print(&mut out, &n, true);
        assert_eq!(out, "/d/\n/d/a\n");
    }
}
