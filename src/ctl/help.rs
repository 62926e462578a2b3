//! etcdctl's help screens, rendered byte for byte the way urfave/cli 1.22 (the library
//! etcdctl v2 is built on) renders them, from the clap definitions in `cli`.
//!
//! Owns: the App/Command/Subcommand help templates, flag stringification
//! (`--ttl value  key time-to-live in seconds (default: 0)`) and a `text/tabwriter` clone.
//! Must not know: argument parsing or anything of the commands' behaviour.

use clap::{Arg, ArgAction, Command};

use super::cli::{go_kind, GoKind, VERSION};

/// urfave's implicit `--help, -h` flag line.
pub const HELP_FLAG: &str = "--help, -h\tshow help";
/// urfave's implicit `--version, -v` flag line.
pub const VERSION_FLAG: &str = "--version, -v\tprint the version";

/// The Go kind of a clap argument.
pub fn kind_of(arg: &Arg) -> GoKind {
    match arg.get_action() {
        ArgAction::SetTrue => GoKind::Bool,
        ArgAction::Append => GoKind::Slice,
        _ => go_kind(arg.get_id().as_str()),
    }
}

/// The flag names of an argument, urfave order: long, aliases, short.
pub fn names_of(arg: &Arg) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(l) = arg.get_long() {
        v.push(l.to_string());
    }
    if let Some(a) = arg.get_all_aliases() {
        v.extend(a.into_iter().map(str::to_string));
    }
    if let Some(s) = arg.get_short() {
        v.push(s.to_string());
    }
    v
}

/// The visible flags of a command (positionals and clap's own help/version left out).
pub fn flags_of(cmd: &Command) -> Vec<&Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect()
}

fn unquote_usage(usage: &str) -> (String, String) {
    if let Some(i) = usage.find('`') {
        if let Some(j) = usage[i + 1..].find('`') {
            let j = i + 1 + j;
            let name = &usage[i + 1..j];
            return (
                name.to_string(),
                format!("{}{}{}", &usage[..i], name, &usage[j + 1..]),
            );
        }
    }
    (String::new(), usage.to_string())
}

/// One flag's help line, `names\tusage (default: x)` (urfave's `stringifyFlag`).
pub fn stringify_flag(arg: &Arg) -> String {
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let (mut placeholder, usage) = unquote_usage(&help);
    let kind = kind_of(arg);
    let mut default = String::new();
    if kind != GoKind::Bool {
        if placeholder.is_empty() {
            placeholder = "value".into();
        }
        if kind != GoKind::Slice {
            if let Some(d) = arg.get_default_values().first() {
                let d = d.to_string_lossy();
                if kind == GoKind::String {
                    if !d.is_empty() {
                        default = format!(" (default: {})", crate::client::go_quote(&d));
                    }
                } else {
                    default = format!(" (default: {d})");
                }
            }
        }
    }
    let names: Vec<String> = names_of(arg)
        .into_iter()
        .map(|n| {
            let prefix = if n.chars().count() == 1 { "-" } else { "--" };
            if placeholder.is_empty() {
                format!("{prefix}{n}")
            } else {
                format!("{prefix}{n} {placeholder}")
            }
        })
        .collect();
    format!(
        "{}\t{}",
        names.join(", "),
        format!("{usage}{default}").trim()
    )
}

fn about(cmd: &Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

fn description(cmd: &Command) -> String {
    let Some(long) = cmd.get_long_about().map(|a| a.to_string()) else {
        return String::new();
    };
    let Some((_, rest)) = long.split_once("\n\n") else {
        return String::new();
    };
    rest.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 || l.is_empty() {
                l.to_string()
            } else {
                format!("   {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn args_usage(cmd: &Command) -> String {
    cmd.get_positionals()
        .next()
        .and_then(|a| {
            a.get_value_names()
                .and_then(|v| v.first().map(|s| s.to_string()))
        })
        .unwrap_or_default()
}

fn command_names(cmd: &Command) -> String {
    let mut v = vec![cmd.get_name().to_string()];
    v.extend(cmd.get_all_aliases().map(str::to_string));
    v.join(", ")
}

fn command_rows(cmd: &Command, with_help: bool) -> String {
    cmd.get_subcommands()
        .filter(|c| with_help || c.get_name() != "help")
        .map(|c| format!("\n   {}\t{}", command_names(c), about(c)))
        .collect()
}

/// The root help (`etcdctl`, `etcdctl help`, `etcdctl -h`).
pub fn app_help(app: &Command) -> String {
    let mut flags: Vec<String> = flags_of(app).into_iter().map(stringify_flag).collect();
    flags.push(HELP_FLAG.into());
    flags.push(VERSION_FLAG.into());
    tabwrite(&format!(
        "NAME:\n   {name} - {usage}\n\nUSAGE:\n   {name} [global options] command [command options] [arguments...]\n\nVERSION:\n   {VERSION}\n\nCOMMANDS:{cmds}\n\nGLOBAL OPTIONS:\n   {flags}\n",
        name = app.get_name(),
        usage = about(app),
        cmds = command_rows(app, true),
        flags = flags.join("\n   "),
    ))
}

/// A command's help (`etcdctl help get`, `etcdctl get -h`). `help_name` is the full
/// name (`etcdctl member add`).
pub fn command_help(help_name: &str, cmd: &Command) -> String {
    let flags: Vec<String> = flags_of(cmd).into_iter().map(stringify_flag).collect();
    let au = args_usage(cmd);
    let mut s = format!(
        "NAME:\n   {help_name} - {}\n\nUSAGE:\n   {help_name}{} {}",
        about(cmd),
        if flags.is_empty() {
            ""
        } else {
            " [command options]"
        },
        if au.is_empty() { "[arguments...]" } else { &au }
    );
    let desc = description(cmd);
    if !desc.is_empty() {
        s.push_str(&format!("\n\nDESCRIPTION:\n   {desc}"));
    }
    if !flags.is_empty() {
        s.push_str("\n\nOPTIONS:\n   ");
        for f in flags {
            s.push_str(&f);
            s.push_str("\n   ");
        }
    }
    s.push('\n');
    tabwrite(&s)
}

/// A command group's listing (`etcdctl member`, `etcdctl member -h`).
pub fn subcommand_help(help_name: &str, cmd: &Command) -> String {
    tabwrite(&format!(
        "NAME:\n   {help_name} - {}\n\nUSAGE:\n   {help_name} command [command options] [arguments...]\n\nCOMMANDS:{}\n\nOPTIONS:\n   {HELP_FLAG}\n   \n",
        about(cmd),
        command_rows(cmd, false)
    ))
}

/// A command group's app-style help (`etcdctl member help`).
pub fn subapp_help(help_name: &str, cmd: &Command) -> String {
    tabwrite(&format!(
        "NAME:\n   {help_name} - {}\n\nUSAGE:\n   {help_name} [global options] command [command options] [arguments...]\n\nVERSION:\n   {VERSION}\n\nCOMMANDS:{}\n\nGLOBAL OPTIONS:\n   {HELP_FLAG}\n",
        about(cmd),
        command_rows(cmd, false)
    ))
}

/// Go's `text/tabwriter` with minwidth 1, tabwidth 8, padding 2, padchar ' ', no flags:
/// tab-terminated cells of consecutive lines form aligned columns.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|c| vec![0; c.len() - 1]).collect();
    let max_cols = lines.iter().map(|c| c.len() - 1).max().unwrap_or(0);
    for col in 0..max_cols {
        let mut i = 0;
        while i < lines.len() {
            if lines[i].len() - 1 <= col {
                i += 1;
                continue;
            }
            let start = i;
            let mut w = 0;
            while i < lines.len() && lines[i].len() - 1 > col {
                w = w.max(lines[i][col].chars().count());
                i += 1;
            }
            for row in widths.iter_mut().take(i).skip(start) {
                row[col] = (w + 2).max(1);
            }
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    for (li, cells) in lines.iter().enumerate() {
        if li > 0 {
            out.push('\n');
        }
        for (ci, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if ci + 1 < cells.len() {
                let pad = widths[li][ci] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn tabwriter_aligns_blocks_separately() {
        assert_eq!(
            tabwrite("a\tx\nlong\ty\n\nb\tz\n"),
            "a     x\nlong  y\n\nb  z\n"
        );
    }

    #[test]
    fn get_help_matches_etcdctl() {
        let app = Cli::command();
        let get = app.find_subcommand("get").unwrap();
        assert_eq!(
            command_help("etcdctl get", get),
            "NAME:\n   etcdctl get - retrieve the value of a key\n\nUSAGE:\n   etcdctl get [command options] <key>\n\nOPTIONS:\n   --sort        returns result in sorted order\n   --quorum, -q  require quorum for get request\n   \n"
        );
    }

    #[test]
    fn set_help_has_description_and_defaults() {
        let app = Cli::command();
        let set = app.find_subcommand("set").unwrap();
        let h = command_help("etcdctl set", set);
        assert!(h.contains("DESCRIPTION:\n   Set sets the value of a key.\n\n   When <value> begins with '-', <value> is interpreted as a flag.\n   Insert '--' for workaround:\n\n   $ set -- <key> <value>\n\nOPTIONS:\n"), "{h}");
        assert!(
            h.contains("   --ttl value              key time-to-live in seconds (default: 0)\n")
        );
        assert!(h.contains("   --swap-with-value value  previous value\n"));
    }

    #[test]
    fn global_output_flag_placeholder() {
        let app = Cli::command();
        let h = app_help(&app);
        assert!(h.contains("   --output simple, -o simple       output response in the given format (simple, `extended` or `json`) (default: \"simple\")\n"), "{h}");
        assert!(h.contains(
            "   --timeout value                  connection timeout per request (default: 2s)\n"
        ));
        assert!(h.contains("   help, h         Shows a list of commands or help for one command\n"));
    }

    #[test]
    fn member_listing_matches_etcdctl() {
        let app = Cli::command();
        let m = app.find_subcommand("member").unwrap();
        assert_eq!(
            subcommand_help("etcdctl member", m),
            "NAME:\n   etcdctl member - member add, remove and list subcommands\n\nUSAGE:\n   etcdctl member command [command options] [arguments...]\n\nCOMMANDS:\n   list    enumerate existing cluster members\n   add     add a new member to the etcd cluster\n   remove  remove an existing member from the etcd cluster\n   update  update an existing member in the etcd cluster\n\nOPTIONS:\n   --help, -h  show help\n   \n"
        );
    }
}
