//! Percent-decoding and form values, with the semantics of Go's `net/url` and `r.ParseForm`.
//!
//! Owns `application/x-www-form-urlencoded` decoding (query strings and form bodies),
//! path percent-decoding, and [`Form`], the merged body-then-query value list a handler reads.
//! Error texts are Go's (`invalid URL escape "%zz"`, …) because clients see them inside etcd
//! error causes. Knows nothing about which fields an API expects or what they mean.

use super::request::{Method, Request};

/// How `+` is treated while unescaping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Query component: `+` means space (Go's `QueryUnescape`).
    Query,
    /// Path: `+` is literal (Go's `PathUnescape`).
    Path,
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.EscapeError` text for a bad escape starting at byte `i` of `s`.
fn escape_error(s: &str, i: usize) -> String {
    let bytes = &s.as_bytes()[i..];
    let bad = &bytes[..bytes.len().min(3)];
    format!("invalid URL escape {}", go_quote(bad))
}

/// Go's `strconv.Quote` for the short byte strings of escape errors.
/// Go's `%q` (`strconv.Quote`) for bytes: escapes, `\xNN` for control and invalid bytes.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (b == b'+' && mode == Mode::Query))
    {
        return Ok(s.to_string());
    }
    let out = unescape_bytes(s, mode)?;
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The bytes `s` stands for; Go's `unescape` (which keeps bytes that are not UTF-8).
fn unescape_bytes(s: &str, mode: Mode) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(unhex);
                let lo = bytes.get(i + 2).copied().and_then(unhex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(escape_error(s, i)),
                }
                i += 3;
            }
            b'+' if mode == Mode::Query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Decodes one query/form component: `+` → space, `%XX` → byte (Go's `url.QueryUnescape`).
/// Bytes that are not UTF-8 after decoding are replaced (lossy).
pub fn decode_component(s: &str) -> Result<String, String> {
    unescape(s, Mode::Query)
}

/// Percent-decodes a raw request path (`+` stays `+`), as Go derives `r.URL.Path`.
pub fn decode_path(path: &str) -> Result<String, String> {
    unescape(path, Mode::Path)
}

/// [`decode_path`] without the lossy step: `%ff` stays the byte 0xff, as in Go's `r.URL.Path`.
pub fn decode_path_bytes(path: &str) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    // Nothing escaped (the usual case): the path as it is, without a copy.
    if !path.contains('%') {
        return Ok(path.as_bytes().into());
    }
    unescape_bytes(path, Mode::Path).map(Into::into)
}

/// Decodes `a=1&b=2` into `out` in order, with Go's `url.ParseQuery` rules: `&` separates
/// pairs, empty pairs are skipped, a pair without `=` has an empty value, a pair holding `;`
/// is an error. Valid pairs are kept even when an error is returned (the first error, except
/// that a semicolon error replaces an earlier one, exactly as Go does).
pub fn parse_urlencoded(query: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let mut err: Option<String> = None;
    for pair in query.split('&') {
        if pair.contains(';') {
            err = Some("invalid semicolon separator in query".to_string());
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = decode_component(key).and_then(|k| Ok((k, decode_component(value)?)));
        match decoded {
            Ok(kv) => out.push(kv),
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Request values as Go's `r.Form` after `r.ParseForm()`: form-body values first (POST, PUT
/// and PATCH with an urlencoded body), then query values; each name may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses the request's form as Go's `r.ParseForm` does; the error is Go's text.
    pub fn from_request(req: &Request) -> Result<Form, String> {
        let mut pairs = Vec::new();
        let mut err: Option<String> = None;
        if matches!(req.method, Method::Post | Method::Put | Method::Patch) {
            let ct = req.header("content-type").unwrap_or("");
            let ct = if ct.is_empty() {
                "application/octet-stream"
            } else {
                ct
            };
            let (media, media_err) = parse_media_type(ct);
            err = media_err;
            if media.as_deref() == Some("application/x-www-form-urlencoded") {
                let body = String::from_utf8_lossy(&req.body);
                if let Err(e) = parse_urlencoded(&body, &mut pairs) {
                    err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = parse_urlencoded(&req.query, &mut pairs) {
            err.get_or_insert(e);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(Form { pairs }),
        }
    }

    /// Parses a raw query string alone (Go's `url.ParseQuery`).
    pub fn from_query(query: &str) -> Result<Form, String> {
        let mut pairs = Vec::new();
        parse_urlencoded(query, &mut pairs)?;
        Ok(Form { pairs })
    }

    /// The first value of `name` (Go's `r.FormValue`, but `None` when absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, body values before query values.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present at all (even with an empty value).
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// The lower-cased media type of a Content-Type value, and Go's `mime.ParseMediaType` error
/// if any. Go keeps the media type when only a parameter is malformed, so both may be set.
fn parse_media_type(v: &str) -> (Option<std::borrow::Cow<'_, str>>, Option<String>) {
    let (base, params) = v.split_once(';').unwrap_or((v, ""));
    let base = base.trim();
    // Lower case; a copy only when it is not already (the usual header needs none).
    let base: std::borrow::Cow<'_, str> = if base.bytes().any(|b| b.is_ascii_uppercase()) {
        base.to_ascii_lowercase().into()
    } else {
        base.into()
    };
    // Go's checkMediaTypeDisposition.
    let typ_len = base.bytes().take_while(|&b| is_token(b)).count();
    if typ_len == 0 {
        return (None, Some("mime: no media type".to_string()));
    }
    let rest = &base[typ_len..];
    if !rest.is_empty() {
        let Some(rest) = rest.strip_prefix('/') else {
            return (
                None,
                Some("mime: expected slash after first token".to_string()),
            );
        };
        let sub_len = rest.bytes().take_while(|&b| is_token(b)).count();
        if sub_len == 0 {
            return (None, Some("mime: expected token after slash".to_string()));
        }
        if sub_len != rest.len() {
            let e = "mime: unexpected content after media subtype";
            return (None, Some(e.to_string()));
        }
    }
    let err = if params_valid(params) {
        None
    } else {
        Some("mime: invalid media parameter".to_string())
    };
    (Some(base), err)
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A simplified `consumeMediaParam` loop: `; token=(token|quoted-string)`, repeated, with
/// trailing semicolons allowed.
fn params_valid(params: &str) -> bool {
    if params.trim_matches([' ', '\t']).is_empty() {
        return true;
    }
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return true;
        }
        let Some(eq) = rest.find('=') else {
            return false;
        };
        let name = rest[..eq].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token) {
            return false;
        }
        let value = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let after = if let Some(q) = value.strip_prefix('"') {
            let mut escaped = false;
            let mut end = None;
            for (i, c) in q.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                }
            }
            let Some(end) = end else {
                return false;
            };
            &q[end + 1..]
        } else {
            let len = value.bytes().take_while(|&b| is_token(b)).count();
            if len == 0 {
                return false;
            }
            &value[len..]
        };
        let after = after.trim_start_matches([' ', '\t']);
        if after.is_empty() {
            return true;
        }
        let Some(next) = after.strip_prefix(';') else {
            return false;
        };
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, query: &str, content_type: Option<&str>, body: &str) -> Request {
        let mut headers: crate::http::Headers = [("Host", "h")].into_iter().collect();
        if let Some(ct) = content_type {
            headers.push("Content-Type", ct);
        }
        Request {
            method,
            path: "/v2/keys/k".to_string(),
            query: query.to_string(),
            headers,
            body: body.as_bytes().to_vec(),
            minor_version: 1,
            keep_alive: true,
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn body_values_come_before_query_values() {
        for method in [Method::Post, Method::Put, Method::Patch] {
            let req = request(
                method,
                "value=q&ttl=5",
                Some(FORM),
                "value=b&prevExist=false",
            );
            let form = Form::from_request(&req).expect("valid form");
            assert_eq!(form.get("value"), Some("b"));
            assert_eq!(form.get_all("value").collect::<Vec<_>>(), ["b", "q"]);
            assert_eq!(form.get("ttl"), Some("5"));
            assert_eq!(form.get("prevExist"), Some("false"));
            assert!(form.contains("ttl") && !form.contains("dir"));
        }
    }

    #[test]
    fn body_ignored_for_other_methods_and_content_types() {
        let delete = request(Method::Delete, "dir=true", Some(FORM), "value=b");
        let form = Form::from_request(&delete).expect("valid");
        assert_eq!((form.get("value"), form.get("dir")), (None, Some("true")));
        let get = request(Method::Get, "", Some(FORM), "value=b");
        assert!(Form::from_request(&get).expect("valid").is_empty());
        let no_ct = request(Method::Put, "a=1", None, "value=b");
        let form = Form::from_request(&no_ct).expect("valid");
        assert_eq!((form.get("value"), form.get("a")), (None, Some("1")));
        let json = request(Method::Put, "", Some("application/json"), "value=b");
        assert_eq!(Form::from_request(&json).expect("valid").get("value"), None);
        // Parameters and case do not matter.
        let params = request(
            Method::Put,
            "",
            Some("Application/X-WWW-Form-URLEncoded; charset=utf-8"),
            "value=b",
        );
        assert_eq!(
            Form::from_request(&params).expect("valid").get("value"),
            Some("b")
        );
    }

    #[test]
    fn decoding() {
        let form =
            Form::from_query("a=x+y&b=%2Fslash%2f&c&=skip&&d=%E2%82%AC&e=a=b").expect("valid");
        assert_eq!(form.get("a"), Some("x y"));
        assert_eq!(form.get("b"), Some("/slash/"));
        assert_eq!(form.get("c"), Some(""));
        assert_eq!(form.get(""), Some("skip"));
        assert_eq!(form.get("d"), Some("€"));
        assert_eq!(form.get("e"), Some("a=b"));
        assert_eq!(form.pairs().len(), 6);
        assert_eq!(
            decode_path("/v2/keys/a%2Fb+c%20d"),
            Ok("/v2/keys/a/b+c d".to_string())
        );
        assert_eq!(decode_component("a+b%2B"), Ok("a b+".to_string()));
        assert_eq!(
            decode_path_bytes("/a%ff%2e+").as_deref(),
            Ok(&b"/a\xff.+"[..])
        );
        assert_eq!(decode_path_bytes("/a+b").as_deref(), Ok(&b"/a+b"[..]));
        assert!(decode_path_bytes("/a%f").is_err());
        assert_eq!(
            decode_component("%ff%fe"),
            Ok("\u{fffd}\u{fffd}".to_string())
        );
    }

    #[test]
    fn invalid_escapes_use_go_text() {
        assert_eq!(
            decode_component("%zz"),
            Err(r#"invalid URL escape "%zz""#.to_string())
        );
        assert_eq!(
            decode_component("ab%2"),
            Err(r#"invalid URL escape "%2""#.to_string())
        );
        assert_eq!(
            decode_component("ab%"),
            Err(r#"invalid URL escape "%""#.to_string())
        );
        assert_eq!(
            decode_path("/a/%g1/b"),
            Err(r#"invalid URL escape "%g1""#.to_string())
        );
        assert_eq!(
            Form::from_query("a=1;b=2"),
            Err("invalid semicolon separator in query".to_string())
        );
        // The first error wins; body errors come before query errors.
        let req = request(Method::Put, "x=%zz", Some(FORM), "value=%qq");
        assert_eq!(
            Form::from_request(&req),
            Err(r#"invalid URL escape "%qq""#.to_string())
        );
        // Valid pairs are still kept by the parser when one pair is bad.
        let mut pairs = Vec::new();
        assert!(parse_urlencoded("a=1&b=%zz&c=3", &mut pairs).is_err());
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn media_type_errors() {
        let bad = request(Method::Put, "", Some("/json"), "value=b");
        assert_eq!(
            Form::from_request(&bad),
            Err("mime: no media type".to_string())
        );
        let bad = request(Method::Put, "", Some("application/"), "");
        assert_eq!(
            Form::from_request(&bad),
            Err("mime: expected token after slash".to_string())
        );
        let bad = request(
            Method::Put,
            "",
            Some(&format!("{FORM}; charset")),
            "value=b",
        );
        assert_eq!(
            Form::from_request(&bad),
            Err("mime: invalid media parameter".to_string())
        );
        let ok = request(Method::Put, "", Some(&format!("{FORM};")), "value=b");
        assert_eq!(
            Form::from_request(&ok).expect("valid").get("value"),
            Some("b")
        );
        let quoted = request(
            Method::Put,
            "",
            Some(&format!("{FORM}; charset=\"utf-8\"")),
            "v=1",
        );
        assert_eq!(
            Form::from_request(&quoted).expect("valid").get("v"),
            Some("1")
        );
    }
}
