//! `/v2/keys`: etcd 2.3's request parsing (`parseKeyRequest`), the mapping of PUT/POST/DELETE
//! to store commands (`applyRequest`), and the rendering of events, watches and errors.

use std::sync::Arc;

use super::{error_response, json_response, method_not_allowed, unix_nanos_now, Api};
use crate::error::{Code, Error};
use crate::http::{Body, Form, Method, Request, Response};
use crate::shard::WatchStream;
use crate::store::{Action, Command, Event};

/// A parsed `/v2/keys` request (etcd's `etcdserverpb.Request` for the v2 API).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyRequest<'a> {
    /// What follows `/v2/keys` in the percent-decoded path (borrowed: a read copies nothing).
    pub key: &'a str,
    pub value: String,
    pub dir: bool,
    pub prev_value: Option<String>,
    pub prev_index: u64,
    pub prev_exist: Option<bool>,
    pub wait: bool,
    pub wait_index: u64,
    pub recursive: bool,
    pub sorted: bool,
    pub quorum: bool,
    pub stream: bool,
    pub refresh: Option<bool>,
    pub no_value_on_success: bool,
    /// TTL in seconds, when given and non-empty.
    pub ttl: Option<u64>,
}

fn invalid(code: Code, cause: &str) -> Error {
    Error::new(code, cause, 0)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn get_bool(form: &Form, name: &str) -> Result<bool, Error> {
    match form.get(name) {
        None => Ok(false),
        Some(v) => parse_go_bool(v)
            .ok_or_else(|| invalid(Code::InvalidField, &format!("invalid value for \"{name}\""))),
    }
}

fn get_u64(form: &Form, name: &str, code: Code) -> Result<u64, Error> {
    match form.get(name) {
        None => Ok(0),
        Some(v) => {
            parse_go_uint(v).ok_or_else(|| invalid(code, &format!("invalid value for \"{name}\"")))
        }
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: digits only (no sign), no overflow.
fn parse_go_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Longest key tern accepts, in bytes. etcd has no limit; its store (and tern's) keeps each
/// node's full path, so memory grows with length × depth: unbounded keys are a way to exhaust it.
pub const MAX_KEY_BYTES: usize = 8 * 1024;
/// Deepest key tern accepts, in path components.
pub const MAX_KEY_DEPTH: usize = 256;

fn check_key_shape(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            Code::InvalidField,
            &format!(
                "key is {} bytes long; tern accepts at most {MAX_KEY_BYTES}",
                key.len()
            ),
        ));
    }
    let depth = key.split('/').filter(|c| !c.is_empty()).count();
    if depth > MAX_KEY_DEPTH {
        return Err(invalid(
            Code::InvalidField,
            &format!("key has {depth} levels; tern accepts at most {MAX_KEY_DEPTH}"),
        ));
    }
    Ok(())
}

/// etcd 2.3's `parseKeyRequest`, check for check, in its order.
pub fn parse_key_request<'a>(req: &Request, key: &'a str) -> Result<KeyRequest<'a>, Error> {
    let form = Form::from_request(req).map_err(|e| invalid(Code::InvalidForm, &e))?;
    let prev_index = get_u64(&form, "prevIndex", Code::IndexNaN)?;
    let wait_index = get_u64(&form, "waitIndex", Code::IndexNaN)?;
    let recursive = get_bool(&form, "recursive")?;
    let sorted = get_bool(&form, "sorted")?;
    let wait = get_bool(&form, "wait")?;
    let dir = get_bool(&form, "dir")?;
    let quorum = get_bool(&form, "quorum")?;
    let stream = get_bool(&form, "stream")?;
    if wait && req.method != Method::Get {
        return Err(invalid(
            Code::InvalidField,
            "\"wait\" can only be used with GET requests",
        ));
    }
    let prev_value = form.get("prevValue").map(str::to_string);
    if prev_value.as_deref() == Some("") {
        return Err(invalid(
            Code::PrevValueRequired,
            "\"prevValue\" cannot be empty",
        ));
    }
    let no_value_on_success = get_bool(&form, "noValueOnSuccess")?;
    let ttl = match form.get("ttl") {
        Some(v) if !v.is_empty() => Some(
            parse_go_uint(v).ok_or_else(|| invalid(Code::TtlNaN, "invalid value for \"ttl\""))?,
        ),
        _ => None,
    };
    let prev_exist = match form.get("prevExist") {
        None => None,
        Some(v) => Some(
            parse_go_bool(v)
                .ok_or_else(|| invalid(Code::InvalidField, "invalid value for prevExist"))?,
        ),
    };
    let refresh = match form.get("refresh") {
        None => None,
        Some(v) => Some(
            parse_go_bool(v)
                .ok_or_else(|| invalid(Code::InvalidField, "invalid value for refresh"))?,
        ),
    };
    let value = form.get("value").unwrap_or("").to_string();
    if refresh == Some(true) {
        if !value.is_empty() {
            return Err(invalid(
                Code::RefreshValue,
                "A value was provided on a refresh",
            ));
        }
        if ttl.is_none() {
            return Err(invalid(Code::RefreshTtlRequired, "No TTL value set"));
        }
    }
    Ok(KeyRequest {
        key,
        value,
        dir,
        prev_value,
        prev_index,
        prev_exist,
        wait,
        wait_index,
        recursive,
        sorted,
        quorum,
        stream,
        refresh,
        no_value_on_success,
        ttl,
    })
}

/// The expiration etcd derives from `ttl` seconds at `now` (unix nanoseconds): Go's
/// `now.Add(time.Duration(ttl) * time.Second).UnixNano()`, where the conversion, the product and
/// the nanosecond count all wrap around in 64 bits. `None` for 0, which etcd takes as "no TTL".
///
/// So TTLs too big for a `time.Duration` land anywhere: `ttl=9223372036854775807` one second in
/// the past (the key expires at once), `ttl=9223372036854775808` at `now`, `ttl=9223372036`
/// before 1970 (a set or create makes such a key permanent; an update or compare-and-swap
/// keeps the expiration, so the key expires at once).
pub fn ttl_expiration(now: i64, ttl: u64) -> Option<i64> {
    let at = now.wrapping_add((ttl as i64).wrapping_mul(1_000_000_000));
    (at != 0).then_some(at)
}

/// etcd 2.3's `applyRequest` for PUT, POST and DELETE. `now` is the proposer's clock.
pub fn to_command(method: &Method, r: &KeyRequest, now: i64) -> Command {
    let expire_at = r.ttl.and_then(|ttl| ttl_expiration(now, ttl));
    let refresh = r.refresh == Some(true);
    let key = r.key.to_string();
    let value = r.value.clone();
    let prev_value = r.prev_value.clone();
    let prev_index = (r.prev_index > 0).then_some(r.prev_index);
    match method {
        Method::Post => Command::Create {
            key,
            value,
            dir: r.dir,
            expire_at,
            unique: true,
        },
        Method::Delete => {
            if prev_index.is_some() || prev_value.is_some() {
                Command::CompareAndDelete {
                    key,
                    prev_value,
                    prev_index,
                }
            } else {
                Command::Delete {
                    key,
                    dir: r.dir,
                    recursive: r.recursive,
                }
            }
        }
        _ => match r.prev_exist {
            Some(true) if prev_index.is_none() && prev_value.is_none() => Command::Update {
                key,
                value: Some(value),
                dir: r.dir,
                expire_at,
                refresh,
            },
            Some(true) => Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at,
                refresh,
            },
            Some(false) => Command::Create {
                key,
                value,
                dir: r.dir,
                expire_at,
                unique: false,
            },
            None if prev_index.is_some() || prev_value.is_some() => Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at,
                refresh,
            },
            None => Command::Set {
                key,
                value,
                dir: r.dir,
                expire_at,
                refresh,
            },
        },
    }
}

/// `key` is what follows `/v2/keys` in the percent-decoded path.
pub async fn handle(api: &Api, req: &Request, key: &str) -> Response {
    let mut resp = match req.method {
        Method::Get | Method::Head | Method::Put | Method::Post | Method::Delete => {
            serve(api, req, key).await
        }
        _ => return method_not_allowed("HEAD,GET,PUT,POST,DELETE"),
    };
    resp.headers.push(api.cluster_id_header());
    resp
}

async fn serve(api: &Api, req: &Request, key: &str) -> Response {
    let started = std::time::Instant::now();
    if let Err(e) = check_key_shape(key) {
        return error_response(&e);
    }
    let r = match parse_key_request(req, key) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if !api.key_access(req, r.key, r.recursive).await {
        return super::auth::key_no_auth();
    }
    // etcd's reportRequest{Received,Failed,Completed}: parsed requests; watches count only
    // when they fail.
    let counters = &api.shard.shared.http[api.shard.id];
    let method = crate::metrics::http::method_index(req.method.as_str(), r.quorum);
    if r.wait {
        counters.watch_requested();
    } else if let Some(m) = method {
        counters.received(m);
    }
    let resp = serve_parsed(api, req, &r).await;
    if let Some(m) = method {
        if resp.status >= 400 {
            counters.failed(m, resp.status);
        } else if !r.wait {
            counters.succeeded(m, started.elapsed());
        }
    }
    resp
}

async fn serve_parsed(api: &Api, req: &Request, r: &KeyRequest<'_>) -> Response {
    match req.method {
        Method::Get | Method::Head => {
            if r.quorum {
                // etcd turns a quorum GET into a log entry; tern waits for a ReadIndex instead.
                if let Err(e) = api.shard.read_barrier().await {
                    return error_response(&e);
                }
            }
            if r.wait && !r.quorum {
                // Nothing older than what this member already showed any client (a GET reads
                // the newest published version, which is never older than that).
                api.shard.catch_up().await;
                return watch(api, r);
            }
            get(api, r)
        }
        _ => write(api, &req.method, r).await,
    }
}

/// A read, answered from the shard's published view. The JSON is written straight from the
/// tree into a spare body buffer (no copy of the node): a GET allocates nothing.
fn get(api: &Api, r: &KeyRequest<'_>) -> Response {
    let view = api.shard.view();
    let mut body = Response::body_buffer(256);
    let result = view.write_get(r.key, r.recursive, &mut body, unix_nanos_now());
    api.count_read(result.is_ok());
    let (etcd_index, raft_index, raft_term) = (view.index(), view.raft_index, view.raft_term);
    drop(view);
    api.shard.observe(raft_index);
    match result {
        Ok(()) => key_response(200, body, etcd_index, raft_index, raft_term),
        Err(e) => error_response(&e),
    }
}

async fn write(api: &Api, method: &Method, r: &KeyRequest<'_>) -> Response {
    let cmd = to_command(method, r, unix_nanos_now());
    match api.shard.propose(&cmd).await {
        Ok(outcome) => match outcome.result {
            Ok(event) => event_response(
                &event,
                r.no_value_on_success,
                outcome.raft_index,
                outcome.raft_term,
            ),
            Err(e) => error_response(&e),
        },
        Err(e) => {
            // Not an answer from the store (timeout, raft refused): etcd reports 300 with index 0.
            error_response(&Error::new(e.code, e.cause, 0))
        }
    }
}

/// etcd's `writeKeyEvent`.
fn event_response(
    event: &Event,
    no_value_on_success: bool,
    raft_index: u64,
    raft_term: u64,
) -> Response {
    let created = event.action == Action::Create
        || (event.action == Action::Set && event.prev_node.is_none());
    let mut body = Response::body_buffer(256);
    let hide_nodes = no_value_on_success
        && matches!(
            event.action,
            Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
        );
    if hide_nodes {
        body.extend_from_slice(b"{\"action\":\"");
        body.extend_from_slice(event.action.as_str().as_bytes());
        body.extend_from_slice(b"\"}\n");
    } else {
        event.write_json(&mut body, unix_nanos_now());
    }
    let status = if created { 201 } else { 200 };
    key_response(status, body, event.etcd_index, raft_index, raft_term)
}

/// A keys API answer: the JSON body and etcd's index headers.
fn key_response(
    status: u16,
    body: Vec<u8>,
    etcd_index: u64,
    raft_index: u64,
    raft_term: u64,
) -> Response {
    let mut resp = json_response(status, body);
    resp.headers.push(("X-Etcd-Index", etcd_index.into()));
    resp.headers.push(("X-Raft-Index", raft_index.into()));
    resp.headers.push(("X-Raft-Term", raft_term.into()));
    resp
}

/// etcd's `handleKeyWatch`: headers at once, then one event (or every event with `stream=true`).
fn watch(api: &Api, r: &KeyRequest<'_>) -> Response {
    let since = (r.wait_index > 0).then_some(r.wait_index);
    let start_index = api.shard.watch_index();
    let watcher = match api.shard.watch(r.key, r.recursive, r.stream, since) {
        Ok(w) => w,
        Err(e) => return error_response(&e),
    };
    let (raft_index, raft_term) = api.shard.applied();
    api.shard.observe(raft_index);
    let mut resp = json_response(200, Vec::new());
    resp.headers.push(("X-Etcd-Index", start_index.into()));
    resp.headers.push(("X-Raft-Index", raft_index.into()));
    resp.headers.push(("X-Raft-Term", raft_term.into()));
    resp.body = Body::Stream(Box::pin(event_stream(watcher, r.stream)));
    resp
}

/// The chunks of a watch response: one event, or every event with `stream=true`. Dropping the
/// stream (client gone) drops the watcher.
fn event_stream(watcher: WatchStream, stream: bool) -> impl futures_lite::Stream<Item = Vec<u8>> {
    futures_lite::stream::unfold(Some(watcher), move |watcher| async move {
        let mut watcher = watcher?;
        let event: Arc<Event> = watcher.next().await?;
        let mut body = Vec::with_capacity(256);
        event.write_json(&mut body, unix_nanos_now());
        Some((body, stream.then_some(watcher)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_and_uint_follow_strconv() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        assert_eq!(parse_go_bool("yes"), None);
        assert_eq!(parse_go_uint("42"), Some(42));
        assert_eq!(parse_go_uint("-1"), None);
        assert_eq!(parse_go_uint("+1"), None);
        assert_eq!(parse_go_uint(""), None);
        assert_eq!(parse_go_uint("18446744073709551616"), None);
    }

    fn req(
        prev_exist: Option<bool>,
        prev_value: Option<&str>,
        prev_index: u64,
    ) -> KeyRequest<'static> {
        KeyRequest {
            key: "/k",
            value: "v".into(),
            prev_exist,
            prev_value: prev_value.map(str::to_string),
            prev_index,
            ..Default::default()
        }
    }

    #[test]
    fn put_maps_to_commands_as_etcd_apply_request() {
        let cases: Vec<(KeyRequest, &str)> = vec![
            (req(None, None, 0), "Set"),
            (req(Some(false), None, 0), "Create"),
            (req(Some(false), Some("x"), 3), "Create"),
            (req(Some(true), None, 0), "Update"),
            (req(Some(true), Some("x"), 0), "CompareAndSwap"),
            (req(Some(true), None, 4), "CompareAndSwap"),
            (req(None, Some("x"), 0), "CompareAndSwap"),
            (req(None, None, 9), "CompareAndSwap"),
        ];
        for (r, want) in cases {
            let got = format!("{:?}", to_command(&Method::Put, &r, 0));
            assert!(got.starts_with(want), "{r:?} -> {got}");
        }
        let del = format!(
            "{:?}",
            to_command(&Method::Delete, &req(None, Some("x"), 0), 0)
        );
        assert!(del.starts_with("CompareAndDelete"));
        let del = format!("{:?}", to_command(&Method::Delete, &req(None, None, 0), 0));
        assert!(del.starts_with("Delete"));
        let post = to_command(&Method::Post, &req(None, None, 0), 0);
        assert!(matches!(post, Command::Create { unique: true, .. }));
    }

    #[test]
    fn ttls_beyond_a_go_duration_wrap_as_in_etcd() {
        const SECOND: i64 = 1_000_000_000;
        // 2026-12-03T06:48:00Z
        let now = 1_796_280_480 * SECOND;
        assert_eq!(ttl_expiration(now, 100), Some(now + 100 * SECOND));
        // (2^63 - 1) s is -1 s once multiplied in 64 bits; 2^64 - 1 is -1 to begin with.
        assert_eq!(ttl_expiration(now, i64::MAX as u64), Some(now - SECOND));
        assert_eq!(ttl_expiration(now, u64::MAX), Some(now - SECOND));
        // 2^63 s wraps to 0 s: the key expires at once, and shows no ttl.
        assert_eq!(ttl_expiration(now, 1 << 63), Some(now));
        // 9223372036 s fits a Duration, but the nanoseconds since 1970 overflow: 1734.
        let at = ttl_expiration(now, 9_223_372_036).unwrap();
        assert_eq!(
            crate::timefmt::rfc3339_nanos(at),
            "1734-08-24T07:00:42.290448384Z"
        );
        // Only an exact zero counts as no TTL at all.
        assert_eq!(ttl_expiration(0, 0), None);
        assert_eq!(ttl_expiration(-5 * SECOND, 5), None);
    }

    #[test]
    fn ttl_becomes_an_absolute_expiration_from_the_proposer_clock() {
        let mut r = req(None, None, 0);
        r.ttl = Some(5);
        match to_command(&Method::Put, &r, 1_000) {
            Command::Set { expire_at, .. } => assert_eq!(expire_at, Some(5_000_001_000)),
            other => panic!("{other:?}"),
        }
    }
}
