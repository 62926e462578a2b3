//! `/v2/members` and `/v2/machines`: the member list as clients see it.
//! Membership changes arrive with the cluster stage; until then they answer 501 and say so.

use super::{json_response, text_response, Api};
use crate::cluster::write_member_json;
use crate::http::{Method, Request, Response};

pub fn handle(api: &Api, req: &Request) -> Response {
    let mut resp = match req.method {
        Method::Get | Method::Head if req.path.trim_end_matches('/') == "/v2/members" => list(api),
        Method::Get | Method::Head => super::method_not_allowed("POST, PUT, DELETE"),
        Method::Post | Method::Put | Method::Delete => text_response(
            501,
            "tern: membership changes are not supported yet (single-member stage)\n",
        ),
        _ => super::method_not_allowed("GET, HEAD, POST, PUT, DELETE"),
    };
    resp.headers.push(api.cluster_id_header());
    resp
}

fn list(api: &Api) -> Response {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"members\":[");
    for (i, m) in api.shared.members.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_member_json(&mut body, m);
    }
    body.extend_from_slice(b"]}\n");
    json_response(200, body)
}

/// `/v2/machines`: every member's client URLs, comma-separated (etcd 2.3 joins with ", ").
pub fn machines(api: &Api) -> Response {
    let urls: Vec<&str> = api
        .shared
        .members
        .iter()
        .flat_map(|m| m.client_urls.iter().map(String::as_str))
        .collect();
    text_response(200, &urls.join(", "))
}
