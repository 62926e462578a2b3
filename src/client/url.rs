//! URLs and escaping as Go's `net/url` does them (so `--debug` prints etcdctl's cURL lines),
//! form encoding, and base64 for basic auth. Owns no I/O; knows nothing of etcd.

// ---------------------------------------------------------------------------------------
// URLs and escaping (Go's net/url rules, so --debug prints the same cURL lines).

/// A parsed endpoint or request URL: `scheme://host[:port]path[?query]`. Not
/// [`crate::config::Url`], which validates a flag's `scheme://host:port` as etcd's flags are
/// validated; this one takes what Go's `url.Parse` takes, with its error texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `host[:port]` as written; empty for opaque URLs such as `localhost:2379`.
    pub host: String,
    /// Unescaped path.
    pub path: String,
    /// Already encoded query, without `?`.
    pub query: String,
    /// Set for `scheme:opaque` URLs (Go keeps them and fails at request time).
    pub opaque: String,
}

impl Url {
    /// Parses like Go's `url.Parse` for the shapes endpoints take.
    pub fn parse(raw: &str) -> Result<Url, String> {
        let (scheme, rest) = match split_scheme(raw) {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => (String::new(), raw),
        };
        let (rest, query) = match rest.find('?') {
            Some(i) => (&rest[..i], rest[i + 1..].to_string()),
            None => (rest, String::new()),
        };
        if let Some(after) = rest.strip_prefix("//") {
            let (host, path) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            return Ok(Url {
                scheme,
                host: host.to_string(),
                path: unescape(path),
                query,
                opaque: String::new(),
            });
        }
        if !scheme.is_empty() && !rest.starts_with('/') {
            return Ok(Url {
                scheme,
                host: String::new(),
                path: String::new(),
                query,
                opaque: rest.to_string(),
            });
        }
        let first = rest.split('/').next().unwrap_or("");
        if scheme.is_empty() && first.contains(':') {
            return Err(format!(
                "parse {:?}: first path segment in URL cannot contain colon",
                raw
            ));
        }
        Ok(Url {
            scheme,
            host: String::new(),
            path: unescape(rest),
            query,
            opaque: String::new(),
        })
    }

    /// Go's `URL.String()`.
    pub fn to_string_go(&self) -> String {
        let mut s = String::new();
        if !self.scheme.is_empty() {
            s.push_str(&self.scheme);
            s.push(':');
        }
        if !self.opaque.is_empty() {
            s.push_str(&self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() {
                if !self.host.is_empty() || !self.path.is_empty() {
                    s.push_str("//");
                }
                s.push_str(&self.host);
            }
            let p = escape_path(&self.path);
            if !p.is_empty() && !p.starts_with('/') && !self.host.is_empty() {
                s.push('/');
            }
            s.push_str(&p);
        }
        if !self.query.is_empty() {
            s.push('?');
            s.push_str(&self.query);
        }
        s
    }

    /// `host:port` to dial, with the scheme's default port.
    pub fn dial_addr(&self) -> String {
        let h = &self.host;
        let has_port = match h.rfind(':') {
            Some(i) => !h[i..].contains(']'),
            None => false,
        };
        if has_port {
            h.clone()
        } else if self.scheme == "https" {
            format!("{h}:443")
        } else {
            format!("{h}:80")
        }
    }

    /// The request target: escaped path plus query.
    pub fn request_uri(&self) -> String {
        let mut p = escape_path(&self.path);
        if p.is_empty() {
            p.push('/');
        }
        if !self.query.is_empty() {
            p.push('?');
            p.push_str(&self.query);
        }
        p
    }

    pub(super) fn with_path(&self, path: String) -> Url {
        Url {
            path,
            query: String::new(),
            ..self.clone()
        }
    }
}

pub(super) fn split_scheme(raw: &str) -> Option<(String, &str)> {
    for (i, c) in raw.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if i > 0 && (c.is_ascii_digit() || c == '+' || c == '-' || c == '.') {
            continue;
        }
        if c == ':' && i > 0 {
            return Some((raw[..i].to_string(), &raw[i + 1..]));
        }
        return None;
    }
    None
}

pub(super) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(super) fn escape_with(s: &str, keep: impl Fn(u8) -> bool, space_plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') || keep(c) {
            out.push(c as char);
        } else if c == b' ' && space_plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{:02X}", c));
        }
    }
    out
}

/// Go's `url.PathEscape` flavour used by `URL.EscapedPath` (keeps `$&+,/:;=@`).
pub fn escape_path(s: &str) -> String {
    escape_with(s, |c| b"$&+,/:;=@".contains(&c), false)
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    escape_with(s, |_| false, true)
}

/// Go's `url.Values.Encode`: sorted by key.
pub fn encode_values(pairs: &[(&str, String)]) -> String {
    let mut v: Vec<&(&str, String)> = pairs.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v.iter()
        .map(|(k, val)| format!("{}={}", query_escape(k), query_escape(val)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// etcd's `pathutil.CanonicalURLPath`: cleaned, rooted, trailing slash kept.
pub fn canonical_url_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut np = clean_path(&p);
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

pub(super) fn join_path(a: &str, b: &str) -> String {
    clean_path(&format!("{a}/{b}"))
}

/// Go's `%q` for a string (used by the cURL debug lines and `member add` output).
pub fn go_quote(s: &str) -> String {
    crate::http::form::go_quote(s.as_bytes())
}

/// Standard base64 with padding (RFC 4648), for `Authorization: Basic`.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing_matches_go() {
        let u = Url::parse("http://127.0.0.1:2379/").unwrap();
        assert_eq!(u.to_string_go(), "http://127.0.0.1:2379/");
        assert_eq!(u.dial_addr(), "127.0.0.1:2379");
        assert_eq!(
            Url::parse("127.0.0.1:2379").unwrap_err(),
            "parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon"
        );
        let o = Url::parse("localhost:2379").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.opaque.as_str()),
            ("localhost", "2379")
        );
        assert_eq!(Url::parse("http://h").unwrap().dial_addr(), "h:80");
    }

    #[test]
    fn query_and_form_encoding() {
        assert_eq!(
            encode_values(&[("value", "a b&c".into()), ("ttl", "5".into())]),
            "ttl=5&value=a+b%26c"
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"root:pw"), "cm9vdDpwdw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
