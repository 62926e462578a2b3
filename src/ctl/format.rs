//! Output formats of etcdctl: `simple`, `extended` (RFC 2822 style) and `json` (Go's
//! `encoding/json` of the client's Response, byte for byte), plus the error lines.
//!
//! Owns: rendering a `client::Response` or a `client::ClientError` to text.
//! Must not know: argument parsing, HTTP, or exit codes.

use crate::client::{ClientError, Node, Response};

/// `printResponseKey`: the text for stdout, or `Err` with the text for stderr when the
/// format is unknown (etcdctl still exits 0 then).
pub fn response_key(resp: &Response, format: &str) -> Result<String, String> {
    let empty = Node::default();
    let node = resp.node.as_ref().unwrap_or(&empty);
    match format {
        "simple" => Ok(if resp.action != "delete" {
            format!("{}\n", node.value)
        } else {
            format!(
                "PrevNode.Value: {}\n",
                resp.prev_node.as_ref().map_or("", |p| p.value.as_str())
            )
        }),
        "extended" => {
            let mut s = format!(
                "Key: {}\nCreated-Index: {}\nModified-Index: {}\n",
                node.key, node.created_index, node.modified_index
            );
            if let Some(p) = &resp.prev_node {
                s.push_str(&format!("PrevNode.Value: {}\n", p.value));
            }
            s.push_str(&format!("TTL: {}\nIndex: {}\n", node.ttl, resp.index));
            if resp.action != "delete" {
                s.push_str(&format!("\n{}\n", node.value));
            }
            Ok(s)
        }
        "json" => Ok(format!("{}\n", response_json(resp))),
        other => Err(format!("Unsupported output format: {other}\n")),
    }
}

/// Go's `json.Marshal(resp)` for `client.Response`.
pub fn response_json(resp: &Response) -> String {
    let mut s = String::from("{\"action\":");
    s.push_str(&go_json_string(&resp.action));
    s.push_str(",\"node\":");
    push_node(&mut s, resp.node.as_ref());
    s.push_str(",\"prevNode\":");
    push_node(&mut s, resp.prev_node.as_ref());
    s.push('}');
    s
}

fn push_node(s: &mut String, n: Option<&Node>) {
    let Some(n) = n else {
        s.push_str("null");
        return;
    };
    s.push_str("{\"key\":");
    s.push_str(&go_json_string(&n.key));
    if n.dir {
        s.push_str(",\"dir\":true");
    }
    s.push_str(",\"value\":");
    s.push_str(&go_json_string(&n.value));
    s.push_str(",\"nodes\":");
    match &n.nodes {
        None => s.push_str("null"),
        Some(children) => {
            s.push('[');
            for (i, c) in children.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                push_node(s, Some(c));
            }
            s.push(']');
        }
    }
    s.push_str(&format!(
        ",\"createdIndex\":{},\"modifiedIndex\":{}",
        n.created_index, n.modified_index
    ));
    if let Some(e) = &n.expiration {
        s.push_str(",\"expiration\":");
        s.push_str(&go_json_string(&go_time(e)));
    }
    if n.ttl != 0 {
        s.push_str(&format!(",\"ttl\":{}", n.ttl));
    }
    s.push('}');
}

/// Re-renders an RFC 3339 time as Go's `time.Time.MarshalJSON` would after parsing it:
/// fractional seconds without trailing zeros, `Z` for a zero offset.
pub fn go_time(t: &str) -> String {
    let (main, zone) = match t.rfind(['Z', 'z', '+', '-']) {
        Some(i) if i > 10 => (&t[..i], &t[i..]),
        _ => (t, ""),
    };
    let (secs, frac) = match main.split_once('.') {
        Some((a, b)) => (a, b.trim_end_matches('0')),
        None => (main, ""),
    };
    let zone = match zone {
        "z" | "Z" | "+00:00" | "-00:00" => "Z",
        z => z,
    };
    if frac.is_empty() {
        format!("{secs}{zone}")
    } else {
        format!("{secs}.{frac}{zone}")
    }
}

/// Go's `encoding/json` string encoding (HTML-safe: `<`, `>`, `&` escaped).
pub fn go_json_string(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                s.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `handleError`'s stderr text: `Error:  <err>` plus the cluster error detail.
pub fn handle_error_text(err: &ClientError) -> String {
    let mut s = format!("Error:  {err}\n");
    if let Some(d) = err.detail() {
        s.push_str(&d);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{parse_keys_response, EtcdError, HttpResponse};

    fn resp(body: &str, index: u64) -> Response {
        parse_keys_response(&HttpResponse {
            status: 200,
            headers: vec![("x-etcd-index".into(), index.to_string())],
            body: body.as_bytes().to_vec(),
        })
        .unwrap()
    }

    const SET: &str = r#"{"action":"set","node":{"key":"/k","value":"v2","modifiedIndex":5,"createdIndex":5},"prevNode":{"key":"/k","value":"v1","modifiedIndex":4,"createdIndex":4}}"#;

    #[test]
    fn simple_prints_value() {
        assert_eq!(response_key(&resp(SET, 5), "simple").unwrap(), "v2\n");
    }

    #[test]
    fn simple_delete_prints_prev_value() {
        let d = r#"{"action":"delete","node":{"key":"/k","modifiedIndex":6,"createdIndex":5},"prevNode":{"key":"/k","value":"v2","modifiedIndex":5,"createdIndex":5}}"#;
        assert_eq!(
            response_key(&resp(d, 6), "simple").unwrap(),
            "PrevNode.Value: v2\n"
        );
    }

    #[test]
    fn extended_matches_etcdctl() {
        assert_eq!(
            response_key(&resp(SET, 5), "extended").unwrap(),
            "Key: /k\nCreated-Index: 5\nModified-Index: 5\nPrevNode.Value: v1\nTTL: 0\nIndex: 5\n\nv2\n"
        );
    }

    #[test]
    fn json_matches_go_marshal() {
        assert_eq!(
            response_key(&resp(SET, 5), "json").unwrap(),
            "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"v2\",\"nodes\":null,\"createdIndex\":5,\"modifiedIndex\":5},\"prevNode\":{\"key\":\"/k\",\"value\":\"v1\",\"nodes\":null,\"createdIndex\":4,\"modifiedIndex\":4}}\n"
        );
    }

    #[test]
    fn json_dir_with_ttl_and_children() {
        let body = r#"{"action":"get","node":{"key":"/d","dir":true,"expiration":"2026-01-02T03:04:05.120000000Z","ttl":30,"nodes":[{"key":"/d/a","value":"<&>","modifiedIndex":8,"createdIndex":8}],"modifiedIndex":7,"createdIndex":7}}"#;
        assert_eq!(
            response_json(&resp(body, 9)),
            "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"value\":\"\",\"nodes\":[{\"key\":\"/d/a\",\"value\":\"\\u003c\\u0026\\u003e\",\"nodes\":null,\"createdIndex\":8,\"modifiedIndex\":8}],\"createdIndex\":7,\"modifiedIndex\":7,\"expiration\":\"2026-01-02T03:04:05.12Z\",\"ttl\":30},\"prevNode\":null}"
        );
    }

    #[test]
    fn unknown_format_goes_to_stderr() {
        assert_eq!(
            response_key(&resp(SET, 5), "foo").unwrap_err(),
            "Unsupported output format: foo\n"
        );
    }

    #[test]
    fn go_time_trims_fraction() {
        assert_eq!(
            go_time("2026-01-02T03:04:05.000000000Z"),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(
            go_time("2026-01-02T03:04:05.5+02:00"),
            "2026-01-02T03:04:05.5+02:00"
        );
    }

    #[test]
    fn etcd_error_line() {
        let e = ClientError::Etcd(EtcdError {
            code: 100,
            message: "Key not found".into(),
            cause: "/nope".into(),
            index: 4,
        });
        assert_eq!(
            handle_error_text(&e),
            "Error:  100: Key not found (/nope) [4]\n"
        );
    }

    #[test]
    fn cluster_error_lines() {
        let e = ClientError::Cluster(vec![(
            "dial tcp 127.0.0.1:1: connect: connection refused".into(),
            true,
        )]);
        assert_eq!(
            handle_error_text(&e),
            "Error:  client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.0.1:1: connect: connection refused\n\nerror #0: dial tcp 127.0.0.1:1: connect: connection refused\n\n"
        );
    }
}
