//! The etcdctl v2 command line as clap-derive types: one variant per etcdctl command,
//! help text as doc comments (rendered urfave/cli-style by `help`).
//!
//! Owns: names, aliases, flags, defaults, `ETCDCTL_*` variables, the Go value syntaxes
//! (`0x10`, `1m30s`). Conventions: a command's positional `args` carries etcdctl's
//! "ArgsUsage" as its value name; a leading paragraph of a doc comment is the one-line
//! usage, the rest (verbatim) the DESCRIPTION.
//! Must not know: how argv is reordered the Go way (`goflag`), nor any HTTP.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The version `--version` prints (etcd 2.3's etcdctl is what ternctl emulates).
pub const VERSION: &str = "2.3.7";

/// Global options, before the command.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "etcdctl",
    about = "A simple command line client for etcd.",
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// output cURL commands which can be used to reproduce the request
    #[arg(long)]
    pub debug: bool,
    /// don't synchronize cluster information before sending request
    #[arg(long)]
    pub no_sync: bool,
    /// output response in the given format (`simple`, `extended` or `json`)
    #[arg(long, short = 'o', value_name = "simple", default_value = "simple")]
    pub output: String,
    /// domain name to query for SRV records describing cluster endpoints
    #[arg(long, short = 'D', env = "ETCDCTL_DISCOVERY_SRV")]
    pub discovery_srv: Option<String>,
    /// accept insecure SRV records describing cluster endpoints
    #[arg(long)]
    pub insecure_discovery: bool,
    /// DEPRECATED - "--endpoints" should be used instead
    #[arg(long, short = 'C', env = "ETCDCTL_PEERS")]
    pub peers: Option<String>,
    /// DEPRECATED - "--endpoints" should be used instead
    #[arg(long, env = "ETCDCTL_ENDPOINT")]
    pub endpoint: Option<String>,
    /// a comma-delimited list of machine addresses in the cluster (default: "http://127.0.0.1:2379,http://127.0.0.1:4001")
    #[arg(long, env = "ETCDCTL_ENDPOINTS")]
    pub endpoints: Option<String>,
    /// identify HTTPS client using this SSL certificate file
    #[arg(long, env = "ETCDCTL_CERT_FILE")]
    pub cert_file: Option<String>,
    /// identify HTTPS client using this SSL key file
    #[arg(long, env = "ETCDCTL_KEY_FILE")]
    pub key_file: Option<String>,
    /// verify certificates of HTTPS-enabled servers using this CA bundle
    #[arg(long, env = "ETCDCTL_CA_FILE")]
    pub ca_file: Option<String>,
    /// provide username[:password] and prompt if password is not supplied.
    #[arg(long, short = 'u', env = "ETCDCTL_USERNAME", verbatim_doc_comment)]
    pub username: Option<String>,
    /// connection timeout per request
    #[arg(long, default_value = "2s", value_parser = parse_go_duration)]
    pub timeout: Duration,
    /// timeout for the command execution (except watch)
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub total_timeout: Duration,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// etcdctl's commands, in its help order.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// backup an etcd directory
    Backup(BackupArgs),
    /// check the health of the etcd cluster
    ClusterHealth(ClusterHealthArgs),
    /// make a new key with a given value
    Mk(MkArgs),
    /// make a new directory
    Mkdir(TtlKeyArgs),
    /// remove a key or a directory
    Rm(RmArgs),
    /// removes the key if it is an empty directory or a key-value pair
    Rmdir(KeyArgs),
    /// retrieve the value of a key
    Get(GetArgs),
    /// retrieve a directory
    Ls(LsArgs),
    /// set the value of a key
    ///
    /// Set sets the value of a key.
    ///
    /// When <value> begins with '-', <value> is interpreted as a flag.
    /// Insert '--' for workaround:
    ///
    /// $ set -- <key> <value>
    #[command(verbatim_doc_comment)]
    Set(SetArgs),
    /// create a new directory or update an existing directory TTL
    Setdir(TtlKeyArgs),
    /// update an existing key with a given value
    Update(TtlKeyValueArgs),
    /// update an existing directory
    Updatedir(TtlKeyValueArgs),
    /// watch a key for changes
    Watch(WatchArgs),
    /// watch a key for changes and exec an executable
    ExecWatch(ExecWatchArgs),
    /// member add, remove and list subcommands
    #[command(subcommand, disable_help_subcommand = true)]
    Member(MemberCommand),
    /// user add, grant and revoke subcommands
    #[command(subcommand, disable_help_subcommand = true)]
    User(UserCommand),
    /// role add, grant and revoke subcommands
    #[command(subcommand, disable_help_subcommand = true)]
    Role(RoleCommand),
    /// overall auth controls
    #[command(subcommand, disable_help_subcommand = true)]
    Auth(AuthCommand),
    /// Shows a list of commands or help for one command
    #[command(alias = "h")]
    Help(HelpArgs),
}

/// Positional arguments of `help`.
#[derive(Args, Debug, Clone)]
pub struct HelpArgs {
    #[arg(value_name = "[command]")]
    pub args: Vec<String>,
}

/// `backup` flags.
#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// Path to the etcd data dir
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Path to the etcd wal dir
    #[arg(long)]
    pub wal_dir: Option<String>,
    /// Path to the backup dir
    #[arg(long)]
    pub backup_dir: Option<String>,
    /// Path to the backup wal dir
    #[arg(long)]
    pub backup_wal_dir: Option<String>,
    /// Backup v3 backend data
    #[arg(long)]
    pub with_v3: bool,
    #[arg(value_name = " ")]
    pub args: Vec<String>,
}

/// `cluster-health` flags.
#[derive(Args, Debug, Clone)]
pub struct ClusterHealthArgs {
    /// forever check the health every 10 second until CTRL+C
    #[arg(long, short = 'f')]
    pub forever: bool,
    #[arg(value_name = " ")]
    pub args: Vec<String>,
}

/// `mk` flags.
#[derive(Args, Debug, Clone)]
pub struct MkArgs {
    /// create in-order key under directory <key>
    #[arg(long)]
    pub in_order: bool,
    /// key time-to-live in seconds
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub ttl: i64,
    #[arg(value_name = "<key> <value>")]
    pub args: Vec<String>,
}

/// `mkdir` and `setdir` flags.
#[derive(Args, Debug, Clone)]
pub struct TtlKeyArgs {
    /// key time-to-live in seconds
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub ttl: i64,
    #[arg(value_name = "<key>")]
    pub args: Vec<String>,
}

/// `update` and `updatedir` flags.
#[derive(Args, Debug, Clone)]
pub struct TtlKeyValueArgs {
    /// key time-to-live in seconds
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub ttl: i64,
    #[arg(value_name = "<key> <value>")]
    pub args: Vec<String>,
}

/// `rm` flags.
#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// removes the key if it is an empty directory or a key-value pair
    #[arg(long)]
    pub dir: bool,
    /// removes the key and all child keys(if it is a directory)
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// previous value
    #[arg(long, default_value = "")]
    pub with_value: String,
    /// previous index
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub with_index: i64,
    #[arg(value_name = "<key>")]
    pub args: Vec<String>,
}

/// Commands taking only a key.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    #[arg(value_name = "<key>")]
    pub args: Vec<String>,
}

/// `get` flags.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// returns result in sorted order
    #[arg(long)]
    pub sort: bool,
    /// require quorum for get request
    #[arg(long, short = 'q')]
    pub quorum: bool,
    #[arg(value_name = "<key>")]
    pub args: Vec<String>,
}

/// `ls` flags.
#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// returns result in sorted order
    #[arg(long)]
    pub sort: bool,
    /// returns all key names recursively for the given path
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// append slash (/) to directories
    #[arg(short = 'p')]
    pub p: bool,
    /// require quorum for get request
    #[arg(long, short = 'q')]
    pub quorum: bool,
    #[arg(value_name = "[key]")]
    pub args: Vec<String>,
}

/// `set` flags.
#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    /// key time-to-live in seconds
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub ttl: i64,
    /// previous value
    #[arg(long, default_value = "")]
    pub swap_with_value: String,
    /// previous index
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub swap_with_index: i64,
    #[arg(value_name = "<key> <value>")]
    pub args: Vec<String>,
}

/// `watch` flags.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// forever watch a key until CTRL+C
    #[arg(long, short = 'f')]
    pub forever: bool,
    /// watch after the given index
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub after_index: i64,
    /// returns all values for key and child keys
    #[arg(long, short = 'r')]
    pub recursive: bool,
    #[arg(value_name = "<key>")]
    pub args: Vec<String>,
}

/// `exec-watch` flags.
#[derive(Args, Debug, Clone)]
pub struct ExecWatchArgs {
    /// watch after the given index
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub after_index: i64,
    /// watch all values for key and child keys
    #[arg(long, short = 'r')]
    pub recursive: bool,
    #[arg(value_name = "<key> <command> [args...]")]
    pub args: Vec<String>,
}

/// `member` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum MemberCommand {
    /// enumerate existing cluster members
    List(NoArgs),
    /// add a new member to the etcd cluster
    Add(NameArgs<'n'>),
    /// remove an existing member from the etcd cluster
    Remove(NameArgs<'i'>),
    /// update an existing member in the etcd cluster
    Update(NameArgs<'u'>),
    /// Shows a list of commands or help for one command
    #[command(alias = "h")]
    Help(HelpArgs),
}

/// Subcommands without arguments (their ArgsUsage is a single space).
#[derive(Args, Debug, Clone)]
pub struct NoArgs {
    #[arg(value_name = " ")]
    pub args: Vec<String>,
}

/// Positional-only subcommands; `K` picks the ArgsUsage shown in help.
#[derive(Debug, Clone)]
pub struct NameArgs<const K: char> {
    pub args: Vec<String>,
}

fn args_usage(k: char) -> &'static str {
    match k {
        'n' => "<name> <peerURL>",
        'i' => "<memberID>",
        'u' => "<memberID> <peerURLs>",
        'U' => "<user>",
        'R' => "<role>",
        'A' => "<role> ",
        _ => " ",
    }
}

impl<const K: char> clap::FromArgMatches for NameArgs<K> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(NameArgs {
            args: m
                .get_many::<String>("args")
                .map(|v| v.cloned().collect())
                .unwrap_or_default(),
        })
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<const K: char> Args for NameArgs<K> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("args")
                .num_args(0..)
                .value_name(args_usage(K))
                .action(clap::ArgAction::Append),
        )
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `user` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// add a new user for the etcd cluster
    Add(NameArgs<'U'>),
    /// get details for a user
    Get(NameArgs<'U'>),
    /// list all current users
    List(NameArgs<'U'>),
    /// remove a user for the etcd cluster
    Remove(NameArgs<'U'>),
    /// grant roles to an etcd user
    Grant(RolesArgs),
    /// revoke roles for an etcd user
    Revoke(RolesArgs),
    /// change password for a user
    Passwd(NameArgs<'U'>),
    /// Shows a list of commands or help for one command
    #[command(alias = "h")]
    Help(HelpArgs),
}

/// `user grant|revoke` flags.
#[derive(Args, Debug, Clone)]
pub struct RolesArgs {
    /// List of roles to grant or revoke
    #[arg(long, action = clap::ArgAction::Append)]
    pub roles: Vec<String>,
    #[arg(value_name = "<user>")]
    pub args: Vec<String>,
}

/// `role` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum RoleCommand {
    /// add a new role for the etcd cluster
    Add(NameArgs<'A'>),
    /// get details for a role
    Get(NameArgs<'R'>),
    /// list all roles
    List(NoArgs),
    /// remove a role from the etcd cluster
    Remove(NameArgs<'R'>),
    /// grant path matches to an etcd role
    Grant(PermArgs<true>),
    /// revoke path matches for an etcd role
    Revoke(PermArgs<false>),
    /// Shows a list of commands or help for one command
    #[command(alias = "h")]
    Help(HelpArgs),
}

/// `role grant|revoke` flags (help wording differs between the two).
#[derive(Debug, Clone)]
pub struct PermArgs<const GRANT: bool> {
    pub path: String,
    pub read: bool,
    pub write: bool,
    pub readwrite: bool,
    pub args: Vec<String>,
}

impl<const G: bool> clap::FromArgMatches for PermArgs<G> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(PermArgs {
            path: m.get_one::<String>("path").cloned().unwrap_or_default(),
            read: m.get_flag("read"),
            write: m.get_flag("write"),
            readwrite: m.get_flag("readwrite"),
            args: m
                .get_many::<String>("args")
                .map(|v| v.cloned().collect())
                .unwrap_or_default(),
        })
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<const G: bool> Args for PermArgs<G> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        use clap::{Arg, ArgAction};
        let (path, read, write, rw) = if G {
            (
                "Path granted for the role to access",
                "Grant read-only access",
                "Grant write-only access",
                "Grant read-write access",
            )
        } else {
            (
                "Path revoked for the role to access",
                "Revoke read access",
                "Revoke write access",
                "Revoke read-write access",
            )
        };
        cmd.arg(Arg::new("path").long("path").default_value("").help(path))
            .arg(
                Arg::new("read")
                    .long("read")
                    .action(ArgAction::SetTrue)
                    .help(read),
            )
            .arg(
                Arg::new("write")
                    .long("write")
                    .action(ArgAction::SetTrue)
                    .help(write),
            )
            .arg(
                Arg::new("readwrite")
                    .long("readwrite")
                    .alias("rw")
                    .action(ArgAction::SetTrue)
                    .help(rw),
            )
            .arg(
                Arg::new("args")
                    .num_args(0..)
                    .value_name("<role>")
                    .action(ArgAction::Append),
            )
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `auth` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum AuthCommand {
    /// enable auth access controls
    Enable(NoArgs),
    /// disable auth access controls
    Disable(NoArgs),
    /// Shows a list of commands or help for one command
    #[command(alias = "h")]
    Help(HelpArgs),
}

/// How Go's flag package reads a flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoKind {
    Bool,
    Int,
    Duration,
    String,
    /// urfave's StringSlice: every occurrence appends.
    Slice,
}

/// The Go kind of a non-boolean, non-slice flag, by clap argument id.
pub fn go_kind(id: &str) -> GoKind {
    match id {
        "ttl" | "swap_with_index" | "with_index" | "after_index" => GoKind::Int,
        "timeout" | "total_timeout" => GoKind::Duration,
        _ => GoKind::String,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`; errors are flag's "parse error"/"value out of range".
pub fn parse_go_int(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r.to_string(), true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r.to_string(), true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    let digits = if prefixed {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error".into());
    }
    let v = i128::from_str_radix(&digits, radix).map_err(|_| "value out of range".to_string())?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| "value out of range".into())
}

/// Go's `time.ParseDuration`; errors are flag's "parse error".
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || "parse error".to_string();
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return Err(err());
        }
        let n: f64 = num.parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if neg {
        // A negative duration means "no timeout" for the uses here.
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("etcdctl").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn output_defaults_to_simple() {
        assert_eq!(parse(&["get", "--", "/a"]).output, "simple");
    }

    #[test]
    fn output_short_flag() {
        assert_eq!(parse(&["-o", "json", "get"]).output, "json");
    }

    #[test]
    fn no_sync_flag() {
        assert!(parse(&["--no-sync", "ls"]).no_sync);
    }

    #[test]
    fn timeout_default_is_two_seconds() {
        assert_eq!(parse(&["ls"]).timeout, Duration::from_secs(2));
    }

    #[test]
    fn total_timeout_go_syntax() {
        assert_eq!(
            parse(&["--total-timeout=1m30s", "ls"]).total_timeout,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn peers_short_alias() {
        assert_eq!(
            parse(&["-C", "http://x:1", "ls"]).peers.as_deref(),
            Some("http://x:1")
        );
    }

    #[test]
    fn username_short_alias() {
        assert_eq!(
            parse(&["-u", "root:pw", "ls"]).username.as_deref(),
            Some("root:pw")
        );
    }

    #[test]
    fn set_ttl_and_swap() {
        let Some(Command::Set(s)) =
            parse(&["set", "--ttl=5", "--swap-with-index=0x10", "--", "/a", "b"]).command
        else {
            panic!("not set")
        };
        assert_eq!((s.ttl, s.swap_with_index, s.args.len()), (5, 16, 2));
    }

    #[test]
    fn mk_in_order() {
        let Some(Command::Mk(m)) = parse(&["mk", "--in-order", "--", "/q", "v"]).command else {
            panic!("not mk")
        };
        assert!(m.in_order);
    }

    #[test]
    fn rm_recursive_short() {
        let Some(Command::Rm(r)) = parse(&["rm", "-r", "--", "/d"]).command else {
            panic!("not rm")
        };
        assert!(r.recursive);
    }

    #[test]
    fn ls_p_flag() {
        let Some(Command::Ls(l)) = parse(&["ls", "-p"]).command else {
            panic!("not ls")
        };
        assert!(l.p);
    }

    #[test]
    fn watch_after_index() {
        let Some(Command::Watch(w)) = parse(&["watch", "--after-index=7", "--", "/k"]).command
        else {
            panic!("not watch")
        };
        assert_eq!(w.after_index, 7);
    }

    #[test]
    fn exec_watch_keeps_command_args() {
        let Some(Command::ExecWatch(w)) =
            parse(&["exec-watch", "--", "/k", "sh", "-c", "echo"]).command
        else {
            panic!("not exec-watch")
        };
        assert_eq!(w.args, ["/k", "sh", "-c", "echo"]);
    }

    #[test]
    fn member_add_args() {
        let Some(Command::Member(MemberCommand::Add(a))) =
            parse(&["member", "add", "--", "n", "http://h:1"]).command
        else {
            panic!("not member add")
        };
        assert_eq!(a.args, ["n", "http://h:1"]);
    }

    #[test]
    fn user_grant_roles_repeat() {
        let Some(Command::User(UserCommand::Grant(g))) =
            parse(&["user", "grant", "--roles=a", "--roles=b", "--", "u"]).command
        else {
            panic!("not user grant")
        };
        assert_eq!(g.roles, ["a", "b"]);
    }

    #[test]
    fn role_grant_rw_alias() {
        let Some(Command::Role(RoleCommand::Grant(g))) =
            parse(&["role", "grant", "--path=/a", "--rw", "--", "r"]).command
        else {
            panic!("not role grant")
        };
        assert!(g.readwrite);
    }

    #[test]
    fn help_alias_h() {
        assert!(matches!(parse(&["h"]).command, Some(Command::Help(_))));
    }

    #[test]
    fn go_int_syntax() {
        assert_eq!(parse_go_int("0x1f"), Ok(31));
        assert_eq!(parse_go_int("010"), Ok(8));
        assert_eq!(parse_go_int("-3"), Ok(-3));
        assert_eq!(parse_go_int("abc"), Err("parse error".into()));
        assert_eq!(
            parse_go_int("99999999999999999999"),
            Err("value out of range".into())
        );
    }

    #[test]
    fn go_duration_syntax() {
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("x").is_err());
    }
}
