//! `/v2/members` and `/v2/machines`: the member list as clients see it, and run-time changes to
//! it (add, remove, update peer URLs) as etcd's v2 members API answers them.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{json_response, text_response, Api};
use crate::cluster::membership::{MemberChange, MemberError};
use crate::cluster::{id_hex, member_id, write_member_json, Member};
use crate::http::{Method, Request, Response};

/// `sub` is what follows `/v2/members/` in the percent-decoded path (empty for the list).
pub async fn handle(api: &Api, req: &Request, sub: &str) -> Response {
    let method = &req.method;
    let body = &req.body;
    let content_type = req.header("content-type");
    {
        if !matches!(
            method,
            Method::Get | Method::Post | Method::Put | Method::Delete
        ) {
            return super::method_not_allowed("GET,POST,DELETE,PUT");
        }
        if !api.write_root_access(req).await {
            return super::auth::no_auth();
        }
        let mut resp = match (method, sub) {
            (Method::Get, "") => list(api),
            (Method::Get, "leader") => leader(api),
            (Method::Get, _) => message(404, "Not found"),
            (Method::Put | Method::Delete, "") => {
                let mut r = text_response(405, "Method Not Allowed\n");
                r.headers.push(("X-Content-Type-Options", "nosniff".into()));
                r
            }
            // etcd ignores whatever follows /v2/members in a POST.
            (Method::Post, _) => add(api, content_type, body).await,
            (Method::Put, id) => update(api, id, content_type, body).await,
            (_, id) => remove(api, id).await,
        };
        resp.headers.push(api.cluster_id_header());
        resp
    }
}

/// etcd's members API errors: `{"message":"…"}` (no trailing newline, unlike its JSON bodies).
fn message(status: u16, text: &str) -> Response {
    let mut body = b"{\"message\":".to_vec();
    crate::error::write_json_string(&mut body, text);
    body.push(b'}');
    json_response(status, body)
}

fn member_response(status: u16, m: &Member) -> Response {
    let mut body = Vec::with_capacity(160);
    write_member_json(&mut body, m);
    body.push(b'\n');
    json_response(status, body)
}

fn list(api: &Api) -> Response {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"members\":[");
    for (i, m) in api.shard.shared.membership().members().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_member_json(&mut body, m);
    }
    body.extend_from_slice(b"]}\n");
    json_response(200, body)
}

fn leader(api: &Api) -> Response {
    let leader = api
        .shard
        .shared
        .raft
        .leader
        .load(std::sync::atomic::Ordering::Acquire);
    match api.shard.shared.membership().get(leader) {
        Some(m) => member_response(200, m),
        None => message(503, "During election"),
    }
}

/// The media type etcd's members API checks: with parameters, the part before `;` trimmed and
/// lower-cased; without, the header value as it came (so `Application/JSON` is refused).
fn members_media_type(content_type: Option<&str>) -> String {
    let ct = content_type.unwrap_or("").trim_matches([' ', '\t']);
    match ct.split_once(';') {
        Some((media, _)) => media.trim().to_lowercase(),
        None => ct.to_string(),
    }
}

/// `{"peerURLs": [...]}` from a request with a JSON content type, validated as etcd's
/// `types.NewURLs` does.
fn peer_urls_from(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, Response> {
    let media = members_media_type(content_type);
    if media != "application/json" {
        return Err(message(
            415,
            &format!("Bad Content-Type {media}, accept application/json"),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let text = if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        };
        message(400, &text)
    })?;
    let urls = match v.get("peerURLs") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut urls = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) => urls.push(s.to_string()),
                    None => {
                        return Err(message(
                            400,
                            "json: cannot unmarshal into Go value of type string",
                        ))
                    }
                }
            }
            urls
        }
        Some(_) => {
            return Err(message(
                400,
                "json: cannot unmarshal into Go struct field of type []string",
            ))
        }
    };
    if urls.is_empty() {
        return Err(message(400, "no valid URLs given"));
    }
    for u in &urls {
        check_peer_url(u).map_err(|e| message(400, &e))?;
    }
    let mut urls = urls;
    urls.sort();
    Ok(urls)
}

fn check_peer_url(u: &str) -> Result<(), String> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {u}"
        ));
    };
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {u}"
        ));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !has_port {
        return Err(format!(
            "URL address does not have the form \"host:port\": {u}"
        ));
    }
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {u}"));
    }
    Ok(())
}

fn change_failed(e: MemberError, id: &str) -> Response {
    match e {
        MemberError::IdExists => message(409, "membership: ID exists"),
        MemberError::PeerUrlExists => message(409, "membership: peerURL exists"),
        MemberError::IdNotFound => message(404, &format!("No such member: {id}")),
        MemberError::IdRemoved => message(410, &format!("Member permanently removed: {id}")),
        MemberError::NotEnoughStarted | MemberError::Timeout => {
            tracing::warn!("member change refused: {e}");
            message(500, "Internal Server Error")
        }
    }
}

async fn add(api: &Api, content_type: Option<&str>, body: &[u8]) -> Response {
    let urls = match peer_urls_from(content_type, body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    // etcd's NewMember: peer URLs, the cluster's name and the time, so a re-added URL gets a
    // new ID.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let salt = format!("{}{now}", id_hex(api.shared.cluster_id));
    let member = Member {
        id: member_id(&urls, &salt),
        name: String::new(),
        peer_urls: urls,
        client_urls: Vec::new(),
    };
    let hex = id_hex(member.id);
    match api
        .shard
        .change_membership(MemberChange::Add(member.clone()))
        .await
    {
        Ok(()) => member_response(201, &member),
        Err(e) => change_failed(e, &hex),
    }
}

async fn update(api: &Api, id: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let Ok(num) = u64::from_str_radix(id, 16) else {
        return message(404, &format!("No such member: {id}"));
    };
    let urls = match peer_urls_from(content_type, body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let change = MemberChange::UpdatePeers {
        id: num,
        peer_urls: urls,
    };
    match api.shard.change_membership(change).await {
        Ok(()) => Response::new(204),
        // etcd's PUT handler knows only "not found" and "URL taken".
        Err(MemberError::IdRemoved) => message(500, "Internal Server Error"),
        Err(e) => change_failed(e, id),
    }
}

async fn remove(api: &Api, id: &str) -> Response {
    let Ok(num) = u64::from_str_radix(id, 16) else {
        return message(404, &format!("No such member: {id}"));
    };
    match api.shard.change_membership(MemberChange::Remove(num)).await {
        Ok(()) => Response::new(204),
        Err(e) => change_failed(e, id),
    }
}

/// `/v2/machines`: every member's client URLs, comma-separated (etcd 2.3 joins with ", ").
pub fn machines(api: &Api) -> Response {
    let members = api.shard.shared.membership();
    let urls: Vec<&str> = members
        .members()
        .flat_map(|m| m.client_urls.iter().map(String::as_str))
        .collect();
    text_response(200, &urls.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_validation_matches_etcd_messages() {
        assert!(check_peer_url("http://127.0.0.1:2380").is_ok());
        assert_eq!(
            check_peer_url("abc").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: abc"
        );
        assert!(check_peer_url("ftp://h:1").is_err());
        assert!(check_peer_url("http://h")
            .unwrap_err()
            .contains("host:port"));
        assert!(check_peer_url("http://h:1/x").unwrap_err().contains("path"));
    }

    #[test]
    fn content_type_errors_name_the_media_type_as_etcd() {
        let refused = |ct: Option<&str>| {
            let r = peer_urls_from(ct, b"{\"peerURLs\":[\"http://a:1\"]}").err()?;
            let crate::http::Body::Full(body) = &r.body else {
                panic!("streamed error")
            };
            Some((r.status, String::from_utf8_lossy(body).into_owned()))
        };
        let bad = |media: &str| {
            Some((
                415,
                format!("{{\"message\":\"Bad Content-Type {media}, accept application/json\"}}"),
            ))
        };
        assert_eq!(
            refused(Some("text/plain; charset=utf-8")),
            bad("text/plain")
        );
        assert_eq!(refused(Some("TEXT/Plain ; x")), bad("text/plain"));
        assert_eq!(refused(Some("text/plain")), bad("text/plain"));
        assert_eq!(refused(Some("Application/JSON")), bad("Application/JSON"));
        assert_eq!(refused(Some(";")), bad(""));
        assert_eq!(refused(None), bad(""));
        assert_eq!(refused(Some("Application/JSON; charset=utf-8")), None);
        assert_eq!(refused(Some("application/json;")), None);
        assert_eq!(refused(Some("application/json")), None);
    }

    #[test]
    fn body_checks() {
        let r = peer_urls_from(None, b"{}").unwrap_err();
        assert_eq!(r.status, 415);
        let r = peer_urls_from(Some("application/json; charset=utf-8"), b"{\"peerURLs\":[")
            .unwrap_err();
        assert_eq!(r.status, 400);
        let r = peer_urls_from(Some("application/json"), b"{\"peerURLs\":[]}").unwrap_err();
        assert_eq!(r.status, 400);
        let ok = peer_urls_from(
            Some("application/json"),
            b"{\"peerURLs\":[\"http://b:1\",\"http://a:1\"]}",
        )
        .unwrap();
        assert_eq!(ok, vec!["http://a:1", "http://b:1"]);
    }
}
