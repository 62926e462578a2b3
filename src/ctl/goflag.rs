//! Reads argv the way etcdctl does: Go's `flag` package under urfave/cli 1.22.
//!
//! Owns the quirks scripts depend on: `-flag` and `--flag`, `-flag=value`, booleans as
//! `-flag=false`, global flags only before the command, command flags moved before the
//! positionals (urfave's `reorderArgs`, which also takes the word after a boolean flag
//! along), `--` handling, "Cannot use two forms of the same flag", and the help, version
//! and usage-error screens with their exit codes. The result is a canonical argv
//! (`--long=value ... -- positionals`) that clap parses without ambiguity.
//! Must not know: what the commands do.

use std::io::Write;

use clap::Command;

use super::cli::{GoKind, VERSION};
use super::help;

/// One flag as Go's flag set sees it.
#[derive(Clone, Debug)]
pub struct FlagDef {
    /// clap long name (`None`: single-letter-only flag such as ls's `-p`).
    pub long: Option<String>,
    pub short: Option<char>,
    pub names: Vec<String>,
    pub kind: GoKind,
    /// urfave's implicit help/version flags.
    pub special: Option<&'static str>,
}

/// The flag set of a clap command, plus urfave's help (and, for the app, version) flag.
pub fn flag_defs(cmd: &Command, with_version: bool) -> Vec<FlagDef> {
    let mut defs: Vec<FlagDef> = help::flags_of(cmd)
        .into_iter()
        .map(|a| FlagDef {
            long: a.get_long().map(str::to_string),
            short: a.get_short(),
            names: help::names_of(a),
            kind: help::kind_of(a),
            special: None,
        })
        .collect();
    defs.push(FlagDef {
        long: None,
        short: None,
        names: vec!["help".into(), "h".into()],
        kind: GoKind::Bool,
        special: Some("help"),
    });
    if with_version {
        defs.push(FlagDef {
            long: None,
            short: None,
            names: vec!["version".into(), "v".into()],
            kind: GoKind::Bool,
            special: Some("version"),
        });
    }
    defs
}

/// The flags a Go flag set saw, in order, and the remaining arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    /// (index into defs, name as typed, value: `None` for a boolean `false`).
    pub set: Vec<(usize, String, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    /// Whether a special (help/version) flag ended up true.
    pub fn special(&self, defs: &[FlagDef], which: &str) -> bool {
        self.set
            .iter()
            .rev()
            .find(|(i, _, _)| defs[*i].special == Some(which))
            .is_some_and(|(_, _, v)| v.is_some())
    }

    /// Canonical `--long=value` words for clap (last value wins, slices repeat).
    pub fn canonical(&self, defs: &[FlagDef]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            if d.special.is_some() {
                continue;
            }
            let flag = match (&d.long, d.short) {
                (Some(l), _) => format!("--{l}"),
                (None, Some(s)) => format!("-{s}"),
                (None, None) => continue,
            };
            let vals: Vec<&Option<String>> = self
                .set
                .iter()
                .filter(|(j, _, _)| *j == i)
                .map(|(_, _, v)| v)
                .collect();
            match d.kind {
                GoKind::Bool => {
                    if vals.last().is_some_and(|v| v.is_some()) {
                        out.push(flag);
                    }
                }
                GoKind::Slice => {
                    for v in vals.into_iter().flatten() {
                        out.push(format!("{flag}={v}"));
                    }
                }
                _ => {
                    if let Some(Some(v)) = vals.last() {
                        if d.long.is_some() {
                            out.push(format!("{flag}={v}"));
                        } else {
                            out.push(flag);
                            out.push(v.clone());
                        }
                    }
                }
            }
        }
        out
    }
}

fn lookup<'a>(defs: &'a [FlagDef], name: &str) -> Option<(usize, &'a FlagDef)> {
    defs.iter()
        .enumerate()
        .find(|(_, d)| d.names.iter().any(|n| n == name))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `FlagSet.Parse`: flags until the first non-flag or `--`. Errors carry Go's text.
pub fn go_parse(defs: &[FlagDef], args: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        if s.len() < 2 || !s.starts_with('-') {
            break;
        }
        let mut minuses = 1;
        if s.as_bytes()[1] == b'-' {
            minuses = 2;
            if s.len() == 2 {
                i += 1;
                break;
            }
        }
        let name = &s[minuses..];
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(format!("bad flag syntax: {s}"));
        }
        i += 1;
        let (name, value) = match name[1..].find('=') {
            Some(k) => (&name[..k + 1], Some(name[k + 2..].to_string())),
            None => (name, None),
        };
        let Some((idx, def)) = lookup(defs, name) else {
            if name == "help" || name == "h" {
                return Err("flag: help requested".into());
            }
            return Err(format!("flag provided but not defined: -{name}"));
        };
        if def.kind == GoKind::Bool {
            let v = match value {
                Some(v) => parse_bool(&v).ok_or_else(|| {
                    format!(
                        "invalid boolean value {} for -{name}: parse error",
                        quote(&v)
                    )
                })?,
                None => true,
            };
            p.set
                .push((idx, name.to_string(), v.then(|| "true".into())));
            continue;
        }
        let value = match value {
            Some(v) => v,
            None if i < args.len() => {
                i += 1;
                args[i - 1].clone()
            }
            None => return Err(format!("flag needs an argument: -{name}")),
        };
        let check = match def.kind {
            GoKind::Int => super::cli::parse_go_int(&value).map(|_| ()),
            GoKind::Duration => super::cli::parse_go_duration(&value).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = check {
            return Err(format!(
                "invalid value {} for flag -{name}: {e}",
                quote(&value)
            ));
        }
        p.set.push((idx, name.to_string(), Some(value)));
    }
    p.args = args[i..].to_vec();
    Ok(p)
}

fn quote(s: &str) -> String {
    crate::client::go_quote(s)
}

/// urfave's `normalizeFlags` check: two names of one flag both given.
pub fn normalize(defs: &[FlagDef], p: &Parsed) -> Result<(), String> {
    for (i, d) in defs.iter().enumerate() {
        if d.names.len() < 2 {
            continue;
        }
        let mut first: Option<&str> = None;
        for n in &d.names {
            if p.set.iter().any(|(j, name, _)| *j == i && name == n) {
                if let Some(f) = first {
                    return Err(format!("Cannot use two forms of the same flag: {n} {f}"));
                }
                first = Some(n);
            }
        }
    }
    Ok(())
}

fn arg_is_flag(defs: &[FlagDef], arg: &str) -> bool {
    if arg == "-" || arg == "--" || !arg.starts_with('-') {
        return false;
    }
    let a = arg.strip_prefix("--").unwrap_or_else(|| &arg[1..]);
    let a = a.split('=').next().unwrap_or("");
    defs.iter().any(|d| d.names.iter().any(|n| n == a))
}

/// urfave 1.22's `reorderArgs`: known flags (and the word after one, unless it is a
/// known flag too) move to the front; `--` moves to the front of the rest.
pub fn reorder(defs: &[FlagDef], args: &[String]) -> Vec<String> {
    let mut remaining: Vec<String> = Vec::new();
    let mut reordered: Vec<String> = Vec::new();
    let mut next_may_be_value = false;
    for (i, arg) in args.iter().enumerate() {
        if next_may_be_value && !arg_is_flag(defs, arg) {
            next_may_be_value = false;
            reordered.push(arg.clone());
        } else if arg == "--" {
            remaining.insert(0, "--".into());
            remaining.extend(args[i + 1..].iter().cloned());
            break;
        } else if arg_is_flag(defs, arg) {
            reordered.push(arg.clone());
            next_may_be_value = !arg.contains('=');
        } else {
            remaining.push(arg.clone());
        }
    }
    reordered.extend(remaining);
    reordered
}

/// What to do after reading argv.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Everything was printed already (help, version, usage error): exit with this code.
    Exit(i32),
    /// Parse this canonical argv with clap and run the command.
    Run(Vec<String>),
}

/// Emulates `App.Run` → `Command.Run` / `RunAsSubcommand` on `args` (without argv[0]).
pub fn resolve(
    app: &Command,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Resolved {
    let app_defs = flag_defs(app, true);
    let gp = match go_parse(&app_defs, args) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(out, "Incorrect Usage. {e}\n\n{}", help::app_help(app));
            let _ = writeln!(err, "{e}");
            return Resolved::Exit(1);
        }
    };
    if let Err(e) = normalize(&app_defs, &gp) {
        let _ = write!(out, "{e}\n{}", help::app_help(app));
        let _ = writeln!(err, "{e}");
        return Resolved::Exit(1);
    }
    if gp.special(&app_defs, "help") {
        let _ = write!(out, "{}", help::app_help(app));
        return Resolved::Exit(0);
    }
    if gp.special(&app_defs, "version") {
        let _ = write!(out, "etcdctl version: {VERSION}\nAPI version: 2\n");
        return Resolved::Exit(0);
    }
    let mut canon = vec!["etcdctl".to_string()];
    canon.extend(gp.canonical(&app_defs));
    let Some(name) = gp.args.first() else {
        let _ = write!(out, "{}", help::app_help(app));
        return Resolved::Exit(0);
    };
    let Some(cmd) = find(app, name) else {
        let _ = writeln!(err, "No help topic for '{name}'");
        return Resolved::Exit(3);
    };
    let rest = &gp.args[1..];
    if cmd.get_name() == "help" {
        return run_help(app, "etcdctl", rest, out, err, true);
    }
    canon.push(cmd.get_name().to_string());
    let help_name = format!("etcdctl {}", cmd.get_name());
    if cmd.has_subcommands() {
        let defs = flag_defs(cmd, false);
        let sp = match go_parse(&defs, rest) {
            Ok(p) => p,
            Err(e) => {
                let _ = write!(
                    out,
                    "Incorrect Usage. {e}\n\n{}",
                    help::subcommand_help(&help_name, cmd)
                );
                let _ = writeln!(err, "{e}");
                return Resolved::Exit(1);
            }
        };
        if sp.special(&defs, "help") {
            let _ = write!(out, "{}", help::subcommand_help(&help_name, cmd));
            return Resolved::Exit(0);
        }
        let Some(sub_name) = sp.args.first() else {
            let _ = write!(out, "{}", help::subcommand_help(&help_name, cmd));
            return Resolved::Exit(0);
        };
        let Some(sub) = find(cmd, sub_name) else {
            let _ = writeln!(err, "No help topic for '{sub_name}'");
            return Resolved::Exit(3);
        };
        if sub.get_name() == "help" {
            return run_help(cmd, &help_name, &sp.args[1..], out, err, false);
        }
        canon.push(sub.get_name().to_string());
        let sub_help = format!("{help_name} {}", sub.get_name());
        return leaf(sub, &sub_help, &sp.args[1..], canon, out, err);
    }
    leaf(cmd, &help_name, rest, canon, out, err)
}

fn find<'a>(cmd: &'a Command, name: &str) -> Option<&'a Command> {
    cmd.get_subcommands()
        .find(|c| c.get_name() == name || c.get_all_aliases().any(|a| a == name))
}

fn leaf(
    cmd: &Command,
    help_name: &str,
    args: &[String],
    mut canon: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Resolved {
    let defs = flag_defs(cmd, false);
    let args = reorder(&defs, args);
    let p = match go_parse(&defs, &args).and_then(|p| normalize(&defs, &p).map(|_| p)) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(
                out,
                "Incorrect Usage: {e}\n\n{}",
                help::command_help(help_name, cmd)
            );
            let _ = writeln!(err, "{e}");
            return Resolved::Exit(1);
        }
    };
    if p.special(&defs, "help") {
        let _ = write!(out, "{}", help::command_help(help_name, cmd));
        return Resolved::Exit(0);
    }
    canon.extend(p.canonical(&defs));
    canon.push("--".into());
    canon.extend(p.args);
    Resolved::Run(canon)
}

/// The `help` command, at the root (`top`) or inside a command group.
fn run_help(
    parent: &Command,
    parent_name: &str,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    top: bool,
) -> Resolved {
    let help_cmd = find(parent, "help").expect("every command group defines help");
    let defs = flag_defs(help_cmd, false);
    let args = reorder(&defs, args);
    let p = match go_parse(&defs, &args) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(
                out,
                "Incorrect Usage: {e}\n\n{}",
                help::command_help("", help_cmd)
            );
            let _ = writeln!(err, "{e}");
            return Resolved::Exit(1);
        }
    };
    if p.special(&defs, "help") {
        let _ = write!(out, "{}", help::command_help("", help_cmd));
        return Resolved::Exit(0);
    }
    match p.args.first() {
        Some(topic) => match find(parent, topic) {
            Some(c) if c.get_name() == "help" => {
                let _ = write!(out, "{}", help::command_help("", c));
                Resolved::Exit(0)
            }
            Some(c) => {
                let name = format!("{parent_name} {}", c.get_name());
                let _ = write!(out, "{}", help::command_help(&name, c));
                Resolved::Exit(0)
            }
            None => {
                let _ = writeln!(err, "No help topic for '{topic}'");
                Resolved::Exit(3)
            }
        },
        None if top => {
            let _ = write!(out, "{}", help::app_help(parent));
            Resolved::Exit(0)
        }
        None => {
            let _ = write!(out, "{}", help::subapp_help(parent_name, parent));
            Resolved::Exit(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::cli::Cli;
    use clap::CommandFactory;

    fn run(args: &[&str]) -> (Resolved, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let r = resolve(&Cli::command(), &args, &mut o, &mut e);
        (
            r,
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
        )
    }

    fn canon(args: &[&str]) -> Vec<String> {
        match run(args).0 {
            Resolved::Run(c) => c[1..].to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_dash_long_global_flag() {
        assert_eq!(
            canon(&["-endpoints", "http://h:1", "get", "/a"]),
            ["--endpoints=http://h:1", "get", "--", "/a"]
        );
    }

    #[test]
    fn flags_after_positionals_move_forward() {
        assert_eq!(
            canon(&["set", "/a", "b", "--ttl", "5"]),
            ["set", "--ttl=5", "--", "/a", "b"]
        );
    }

    #[test]
    fn word_after_boolean_flag_travels_with_it() {
        // urfave quirk: `/w` follows --recursive, so Go's parser stops there and
        // --after-index is left as a positional.
        assert_eq!(
            canon(&["watch", "--recursive", "/w", "--after-index", "1"]),
            ["watch", "--recursive", "--", "/w", "--after-index", "1"]
        );
    }

    #[test]
    fn double_dash_protects_values() {
        assert_eq!(canon(&["set", "--", "/x", "-y"]), ["set", "--", "/x", "-y"]);
    }

    #[test]
    fn unknown_flag_after_positional_is_ignored() {
        assert_eq!(
            canon(&["get", "/a", "--bogus"]),
            ["get", "--", "/a", "--bogus"]
        );
    }

    #[test]
    fn unknown_command_flag_is_usage_error() {
        let (r, out, err) = run(&["get", "--bogus", "/a"]);
        assert_eq!(r, Resolved::Exit(1));
        assert!(out.starts_with(
            "Incorrect Usage: flag provided but not defined: -bogus\n\nNAME:\n   etcdctl get"
        ));
        assert_eq!(err, "flag provided but not defined: -bogus\n");
    }

    #[test]
    fn unknown_global_flag_is_usage_error() {
        let (r, out, _) = run(&["--bogus"]);
        assert_eq!(r, Resolved::Exit(1));
        assert!(out.starts_with(
            "Incorrect Usage. flag provided but not defined: -bogus\n\nNAME:\n   etcdctl - "
        ));
    }

    #[test]
    fn unknown_command_exits_3() {
        let (r, _, err) = run(&["bogus"]);
        assert_eq!(
            (r, err.as_str()),
            (Resolved::Exit(3), "No help topic for 'bogus'\n")
        );
    }

    #[test]
    fn bad_int_value() {
        let (r, _, err) = run(&["watch", "--after-index", "abc", "/a"]);
        assert_eq!(r, Resolved::Exit(1));
        assert_eq!(
            err,
            "invalid value \"abc\" for flag -after-index: parse error\n"
        );
    }

    #[test]
    fn bad_bool_value() {
        let (_, _, err) = run(&["-debug=maybe", "get"]);
        assert_eq!(
            err,
            "invalid boolean value \"maybe\" for -debug: parse error\n"
        );
    }

    #[test]
    fn missing_flag_value() {
        let (_, _, err) = run(&["--endpoints"]);
        assert_eq!(err, "flag needs an argument: -endpoints\n");
    }

    #[test]
    fn two_forms_of_one_flag() {
        let (_, _, err) = run(&["get", "-q", "--quorum", "/a"]);
        assert_eq!(err, "Cannot use two forms of the same flag: q quorum\n");
    }

    #[test]
    fn version_flag() {
        let (r, out, _) = run(&["-v"]);
        assert_eq!(r, Resolved::Exit(0));
        assert_eq!(out, format!("etcdctl version: {VERSION}\nAPI version: 2\n"));
    }

    #[test]
    fn member_without_subcommand_lists() {
        let (r, out, _) = run(&["member"]);
        assert_eq!(r, Resolved::Exit(0));
        assert!(out.contains("COMMANDS:\n   list    enumerate existing cluster members\n"));
    }

    #[test]
    fn member_subcommand_canonical() {
        assert_eq!(
            canon(&["member", "add", "n1", "http://h:1"]),
            ["member", "add", "--", "n1", "http://h:1"]
        );
    }

    #[test]
    fn help_of_help_has_empty_name() {
        let (_, out, _) = run(&["help", "help"]);
        assert_eq!(
            out,
            "NAME:\n    - Shows a list of commands or help for one command\n\nUSAGE:\n    [command]\n"
        );
    }

    #[test]
    fn bool_false_is_dropped() {
        assert_eq!(canon(&["--no-sync=false", "ls"]), ["ls", "--"]);
    }

    #[test]
    fn roles_slice_repeats() {
        assert_eq!(
            canon(&["user", "grant", "--roles", "a", "--roles", "b", "u"]),
            ["user", "grant", "--roles=a", "--roles=b", "--", "u"]
        );
    }
}
