//! The v2 API's wire types on the client side: keys responses and nodes, members (and a
//! peer's `GET /members`), users, roles and permissions, the keys API options, and the JSON
//! bodies the client sends. Knows nothing about connections or failover.

use super::*;
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Wire types.

/// A key or directory (`client.Node`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    pub key: String,
    pub dir: bool,
    pub value: String,
    /// `None` when the server sent no `nodes` (Go: nil slice, marshalled as `null`).
    pub nodes: Option<Vec<Node>>,
    pub created_index: u64,
    pub modified_index: u64,
    /// As sent by the server (RFC 3339).
    pub expiration: Option<String>,
    pub ttl: i64,
}

/// A keys API answer (`client.Response`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Response {
    pub action: String,
    pub node: Option<Node>,
    pub prev_node: Option<Node>,
    /// `X-Etcd-Index`.
    pub index: u64,
    /// `X-Etcd-Cluster-Id`.
    pub cluster_id: String,
}

pub(super) fn node_from_json(v: &Value) -> Option<Node> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let u = |k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Node {
        key: s("key"),
        dir: o.get("dir").and_then(Value::as_bool).unwrap_or(false),
        value: s("value"),
        nodes: o
            .get("nodes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(node_from_json).collect()),
        created_index: u("createdIndex"),
        modified_index: u("modifiedIndex"),
        expiration: o
            .get("expiration")
            .and_then(Value::as_str)
            .map(str::to_string),
        ttl: o.get("ttl").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// Parses a keys API response body plus its headers (`unmarshalHTTPResponse`).
pub fn parse_keys_response(resp: &HttpResponse) -> Result<Response, ClientError> {
    match resp.status {
        200 | 201 => {
            if resp.body.is_empty() {
                return Err(ClientError::Msg(ERR_EMPTY_BODY.into()));
            }
            let v: Value = serde_json::from_slice(&resp.body)
                .map_err(|_| ClientError::Msg(ERR_INVALID_JSON.into()))?;
            let o = v
                .as_object()
                .ok_or_else(|| ClientError::Msg(ERR_INVALID_JSON.into()))?;
            let index = match resp.header("x-etcd-index") {
                Some(h) if !h.is_empty() => h.parse().map_err(|_| {
                    ClientError::Msg(format!(
                        "strconv.ParseUint: parsing {}: invalid syntax",
                        go_quote(h)
                    ))
                })?,
                _ => 0,
            };
            Ok(Response {
                action: o
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                node: o.get("node").and_then(node_from_json),
                prev_node: o.get("prevNode").and_then(node_from_json),
                index,
                cluster_id: resp.header("x-etcd-cluster-id").unwrap_or("").to_string(),
            })
        }
        _ => Err(parse_etcd_error(&resp.body)),
    }
}

pub(super) fn parse_etcd_error(body: &[u8]) -> ClientError {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return ClientError::Msg(ERR_INVALID_JSON.into());
    };
    ClientError::Etcd(EtcdError {
        code: o.get("errorCode").and_then(Value::as_i64).unwrap_or(0),
        message: o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        cause: o.get("cause").and_then(Value::as_str).unwrap_or("").into(),
        index: o.get("index").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// A cluster member (`client.Member`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

pub(super) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn member_from_json(v: &Value) -> Member {
    Member {
        id: v.get("id").and_then(Value::as_str).unwrap_or("").into(),
        name: v.get("name").and_then(Value::as_str).unwrap_or("").into(),
        peer_urls: strings(v.get("peerURLs")),
        client_urls: strings(v.get("clientURLs")),
    }
}

/// A peer's `GET /members` (what a member joining a running cluster checks its configuration
/// against): the cluster ID from `X-Etcd-Cluster-ID` and the member list.
/// `https://` peers are dialled with `tls`.
pub fn peer_members(
    peer_url: &str,
    timeout: Duration,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(u64, Vec<Member>), String> {
    let mut url = Url::parse(peer_url)?;
    url.path = "/members".into();
    url.query = String::new();
    let mut transport = Transport {
        dial_timeout: Some(timeout),
        tls: Some(tls),
        ..Transport::default()
    };
    let deadline = Instant::now() + timeout;
    let resp = transport
        .round_trip(&Request::new("GET", url), Some(deadline), Some(deadline))
        .map_err(|e| format!("{e:?}"))?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    let cluster = resp
        .header("X-Etcd-Cluster-ID")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or("no X-Etcd-Cluster-ID header")?;
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
    let members = v
        .as_array()
        .map(|a| a.iter().map(member_from_json).collect())
        .unwrap_or_default();
    Ok((cluster, members))
}

/// An auth user (`client.User`); roles by name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    pub user: String,
    pub roles: Vec<String>,
}

/// An auth role (`client.Role`): key prefixes it may read and write.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Role {
    pub role: String,
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
}

pub(super) fn role_from_json(v: &Value) -> Role {
    let kv = v.get("permissions").and_then(|p| p.get("kv"));
    let list = |k: &str| {
        kv.and_then(|kv| kv.get(k))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
    };
    Role {
        role: v.get("role").and_then(Value::as_str).unwrap_or("").into(),
        read: list("read"),
        write: list("write"),
    }
}

/// Read, write or both, for role grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ReadWrite,
}

// ---------------------------------------------------------------------------------------
// Keys API options.

/// `PrevExist` condition of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PrevExist {
    #[default]
    Ignore,
    Exist,
    NoExist,
}

/// Options of a PUT on `/v2/keys` (`client.SetOptions`).
#[derive(Clone, Debug, Default)]
pub struct SetOptions {
    pub prev_value: String,
    pub prev_index: u64,
    pub prev_exist: PrevExist,
    pub ttl: u64,
    pub refresh: bool,
    pub dir: bool,
    pub no_value_on_success: bool,
}

/// Options of a DELETE (`client.DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub prev_value: String,
    pub prev_index: u64,
    pub dir: bool,
    pub recursive: bool,
}

/// Options of a GET (`client.GetOptions`).
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    pub recursive: bool,
    pub sort: bool,
    pub quorum: bool,
}

/// etcd's `types.NewURLs`: every URL http(s)/unix(s), `host:port`, no path; sorted.
pub fn validate_peer_urls(urls: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in urls {
        let u = Url::parse(raw.trim())?;
        if !matches!(u.scheme.as_str(), "http" | "https" | "unix" | "unixs") {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {raw}"
            ));
        }
        let has_port = u
            .host
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'));
        if !has_port {
            return Err(format!(
                "URL address does not have the form \"host:port\": {raw}"
            ));
        }
        if !u.path.is_empty() {
            return Err(format!("URL must not contain a path: {raw}"));
        }
        out.push(u.to_string_go());
    }
    out.sort();
    Ok(out)
}

pub(super) fn peer_urls_json(urls: &[String]) -> String {
    serde_json::json!({ "peerURLs": urls }).to_string()
}

pub(super) fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub(super) fn js_list(v: Option<&[String]>) -> String {
    match v {
        None => "null".into(),
        Some(v) => format!(
            "[{}]",
            v.iter().map(|s| js(s)).collect::<Vec<_>>().join(",")
        ),
    }
}

/// The `field` of every object in the array `list` of a JSON body (user and role listings).
pub(super) fn names_in(body: &[u8], list: &str, field: &str) -> Result<Vec<String>, ClientError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| json_err(body))?;
    Ok(v.get(list)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.get(field).and_then(Value::as_str).unwrap_or("").into())
                .collect()
        })
        .unwrap_or_default())
}

/// Go's `json.Marshal(client.User{...})`, field order and omitempty included.
pub(super) fn user_json(name: &str, password: Option<&str>, op: &str, roles: &[String]) -> String {
    let mut s = format!("{{\"user\":{}", js(name));
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        s.push_str(&format!(",\"password\":{}", js(p)));
    }
    s.push_str(",\"roles\":null");
    if !op.is_empty() && !roles.is_empty() {
        s.push_str(&format!(",\"{op}\":{}", js_list(Some(roles))));
    }
    s.push('}');
    s
}

/// Go's `json.Marshal(client.Role{...})`.
pub(super) fn role_json(name: &str, change: Option<(&str, &[String], Permission)>) -> String {
    let perms = |r: Option<&[String]>, w: Option<&[String]>| {
        format!(
            "{{\"kv\":{{\"read\":{},\"write\":{}}}}}",
            js_list(r),
            js_list(w)
        )
    };
    let mut s = format!(
        "{{\"role\":{},\"permissions\":{}",
        js(name),
        perms(None, None)
    );
    if let Some((op, prefixes, perm)) = change {
        let (r, w) = match perm {
            Permission::Read => (Some(prefixes), None),
            Permission::Write => (None, Some(prefixes)),
            Permission::ReadWrite => (Some(prefixes), Some(prefixes)),
        };
        s.push_str(&format!(",\"{op}\":{}", perms(r, w)));
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_response_parsing() {
        let resp = HttpResponse {
            status: 200,
            headers: vec![("x-etcd-index".into(), "9".into())],
            body: br#"{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":3,"createdIndex":3}}"#.to_vec(),
        };
        let r = parse_keys_response(&resp).unwrap();
        assert_eq!(r.index, 9);
        let n = r.node.unwrap();
        assert!(n.dir);
        assert_eq!(n.nodes.unwrap()[0].value, "1");
        let err = HttpResponse {
            status: 404,
            body: br#"{"errorCode":100,"message":"Key not found","cause":"/x","index":5}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            parse_keys_response(&err).unwrap_err().to_string(),
            "100: Key not found (/x) [5]"
        );
        let empty = HttpResponse {
            status: 200,
            ..Default::default()
        };
        assert_eq!(
            parse_keys_response(&empty).unwrap_err().to_string(),
            ERR_EMPTY_BODY
        );
    }

    #[test]
    fn peer_url_validation() {
        assert_eq!(
            validate_peer_urls(&["bad-url".into()]).unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: bad-url"
        );
        assert_eq!(
            validate_peer_urls(&["http://h".into()]).unwrap_err(),
            "URL address does not have the form \"host:port\": http://h"
        );
        assert_eq!(
            validate_peer_urls(&["http://h:1/p".into()]).unwrap_err(),
            "URL must not contain a path: http://h:1/p"
        );
    }
}
