//! Auth commands: `user add|get|list|remove|grant|revoke|passwd`,
//! `role add|get|list|remove|grant|revoke`, `auth enable|disable` — etcdctl's order of
//! checks, messages and exit codes.
//!
//! Must not know: argv syntax or HTTP.

use super::cli::{AuthCommand, NameArgs, PermArgs, RoleCommand, RolesArgs, UserCommand};
use super::{ask_password, username_password, CmdResult, Ctx, Exit, EXIT_BAD_ARGS};
use crate::client::{canonical_url_path, Client, Permission, Role};

fn fail(msg: impl std::fmt::Display) -> Exit {
    eprintln!("{msg}");
    Exit(EXIT_BAD_ARGS)
}

/// `mustNewAuthAPI` & co: a synced client, and the endpoints once more under --debug.
fn auth_client(ctx: &Ctx) -> Result<Client, Exit> {
    let c = ctx.must_client()?;
    if ctx.g.debug {
        eprintln!("Cluster-Endpoints: {}", c.endpoints().join(", "));
    }
    Ok(c)
}

fn one_name<'a>(ctx: &Ctx, args: &'a [String], what: &str) -> Result<(Client, &'a str), Exit> {
    if args.len() != 1 {
        return Err(fail(format!("Please provide a {what}")));
    }
    Ok((auth_client(ctx)?, args[0].as_str()))
}

/// `auth enable|disable`.
pub fn auth(ctx: &Ctx, a: &AuthCommand) -> CmdResult {
    let (args, enable) = match a {
        AuthCommand::Enable(x) => (&x.args, true),
        AuthCommand::Disable(x) => (&x.args, false),
        AuthCommand::Help(_) => return Ok(()),
    };
    if !args.is_empty() {
        return Err(fail("No arguments accepted"));
    }
    let mut c = auth_client(ctx)?;
    c.deadline = ctx.total_deadline();
    if enable {
        c.auth_enable().map_err(fail)?;
        println!("Authentication Enabled");
    } else {
        c.auth_disable().map_err(fail)?;
        println!("Authentication Disabled");
    }
    Ok(())
}

/// `user <subcommand>`.
pub fn user(ctx: &Ctx, u: &UserCommand) -> CmdResult {
    match u {
        UserCommand::List(NameArgs { args }) => {
            if !args.is_empty() {
                return Err(fail("No arguments accepted"));
            }
            let mut c = auth_client(ctx)?;
            c.deadline = ctx.total_deadline();
            for name in c.user_list().map_err(fail)? {
                println!("{name}");
            }
            Ok(())
        }
        UserCommand::Add(NameArgs { args }) => {
            let (mut c, arg) = one_name(ctx, args, "username")?;
            c.deadline = ctx.total_deadline();
            let user = arg.split(':').next().unwrap_or("").to_string();
            let (_, pass) = username_password("New password: ", arg).map_err(|e| {
                eprintln!("Error reading password: {e}");
                Exit(EXIT_BAD_ARGS)
            })?;
            c.user_add(&user, &pass).map_err(fail)?;
            println!("User {user} created");
            Ok(())
        }
        UserCommand::Remove(NameArgs { args }) => {
            let (mut c, user) = one_name(ctx, args, "username")?;
            c.deadline = ctx.total_deadline();
            c.user_remove(user).map_err(fail)?;
            println!("User {user} removed");
            Ok(())
        }
        UserCommand::Passwd(NameArgs { args }) => {
            let (mut c, user) = one_name(ctx, args, "username")?;
            c.deadline = ctx.total_deadline();
            let pass = ask_password("New password: ").map_err(|e| {
                eprintln!("Error reading password: {e}");
                Exit(EXIT_BAD_ARGS)
            })?;
            c.user_passwd(user, &pass).map_err(fail)?;
            println!("Password updated");
            Ok(())
        }
        UserCommand::Grant(a) => user_grant_revoke(ctx, a, true),
        UserCommand::Revoke(a) => user_grant_revoke(ctx, a, false),
        UserCommand::Get(NameArgs { args }) => {
            let (mut c, name) = one_name(ctx, args, "username")?;
            c.deadline = ctx.total_deadline();
            let u = c.user_get(name).map_err(fail)?;
            println!("User: {}", u.user);
            println!("Roles: {}", u.roles.join(" "));
            Ok(())
        }
        UserCommand::Help(_) => Ok(()),
    }
}

fn user_grant_revoke(ctx: &Ctx, a: &RolesArgs, grant: bool) -> CmdResult {
    if a.roles.is_empty() {
        return Err(fail("No roles specified; please use `--roles`"));
    }
    let (mut c, user) = one_name(ctx, &a.args, "username")?;
    c.deadline = ctx.total_deadline();
    if grant {
        c.user_grant(user, &a.roles)
    } else {
        c.user_revoke(user, &a.roles)
    }
    .map_err(fail)?;
    println!("User {user} updated");
    Ok(())
}

/// `role <subcommand>`.
pub fn role(ctx: &Ctx, r: &RoleCommand) -> CmdResult {
    match r {
        RoleCommand::List(a) => {
            if !a.args.is_empty() {
                return Err(fail("No arguments accepted"));
            }
            let mut c = auth_client(ctx)?;
            c.deadline = ctx.total_deadline();
            for name in c.role_list().map_err(fail)? {
                println!("{name}");
            }
            Ok(())
        }
        RoleCommand::Add(NameArgs { args }) => {
            let (mut c, role) = one_name(ctx, args, "role name")?;
            c.deadline = ctx.total_deadline();
            if c.role_get(role).is_ok() {
                eprintln!("Role {role} already exists");
                return Err(Exit(EXIT_BAD_ARGS));
            }
            c.role_add(role).map_err(fail)?;
            println!("Role {role} created");
            Ok(())
        }
        RoleCommand::Remove(NameArgs { args }) => {
            let (mut c, role) = one_name(ctx, args, "role name")?;
            c.deadline = ctx.total_deadline();
            c.role_remove(role).map_err(fail)?;
            println!("Role {role} removed");
            Ok(())
        }
        RoleCommand::Grant(a) => role_grant_revoke(ctx, a, true),
        RoleCommand::Revoke(a) => role_grant_revoke(ctx, &into_grant(a), false),
        RoleCommand::Get(NameArgs { args }) => {
            let (mut c, name) = one_name(ctx, args, "role name")?;
            c.deadline = ctx.total_deadline();
            let role = c.role_get(name).map_err(fail)?;
            print!("{}", role_text(&role));
            Ok(())
        }
        RoleCommand::Help(_) => Ok(()),
    }
}

fn into_grant(a: &PermArgs<false>) -> PermArgs<true> {
    PermArgs {
        path: a.path.clone(),
        read: a.read,
        write: a.write,
        readwrite: a.readwrite,
        args: a.args.clone(),
    }
}

/// `role get` output.
pub fn role_text(role: &Role) -> String {
    let mut s = format!("Role: {}\nKV Read:\n", role.role);
    for p in role.read.iter().flatten() {
        s.push_str(&format!("\t{p}\n"));
    }
    s.push_str("KV Write:\n");
    for p in role.write.iter().flatten() {
        s.push_str(&format!("\t{p}\n"));
    }
    s
}

fn role_grant_revoke(ctx: &Ctx, a: &PermArgs<true>, grant: bool) -> CmdResult {
    if a.path.is_empty() {
        return Err(fail("No path specified; please use `--path`"));
    }
    let canon = canonical_url_path(&a.path);
    if canon != a.path {
        return Err(fail(format!(
            "Not canonical path; please use `--path={canon}`"
        )));
    }
    let count = [a.read, a.write, a.readwrite]
        .iter()
        .filter(|b| **b)
        .count();
    if count != 1 {
        return Err(fail(
            "Please specify exactly one of --read, --write or --readwrite",
        ));
    }
    let perm = if a.read {
        Permission::Read
    } else if a.write {
        Permission::Write
    } else {
        Permission::ReadWrite
    };
    let (mut c, role) = one_name(ctx, &a.args, "role name")?;
    c.deadline = ctx.total_deadline();
    let current = c.role_get(role).map_err(fail)?;
    let paths = vec![a.path.clone()];
    let new = if grant {
        c.role_grant(role, &paths, perm)
    } else {
        c.role_revoke(role, &paths, perm)
    }
    .map_err(fail)?;
    if new == current {
        print!(
            "Role unchanged; already {}",
            if grant { "granted" } else { "revoked" }
        );
    }
    println!("Role {role} updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_get_text() {
        let r = Role {
            role: "r1".into(),
            read: Some(vec!["/bar".into(), "/foo/*".into()]),
            write: None,
        };
        assert_eq!(
            role_text(&r),
            "Role: r1\nKV Read:\n\t/bar\n\t/foo/*\nKV Write:\n"
        );
    }
}
