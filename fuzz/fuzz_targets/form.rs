//! Percent-decoding and form parsing (`tern::http::form`).
//!
//! The input, read as UTF-8 (lossily), is used three ways:
//! - as raw text for `decode_component`, `decode_path`, `parse_urlencoded`, `Form::from_query`
//!   and `Form::from_request` (never panic; `decode_component` and `decode_path` accept the same
//!   strings and differ only in `+`; `Form::from_query` keeps exactly `parse_urlencoded`'s pairs);
//! - as text to encode: `decode_component(escape(s)) == s` and `decode_path(escape(s)) == s`
//!   for an escaper written here that escapes a byte set chosen by the input;
//! - as a list of pairs (split at `\n`, then at the first `\t`): encoding them as a query and
//!   parsing it gives the same pairs back, also as a form body of a PUT request, where body
//!   pairs must come before query pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::http::form::{go_quote, parse_urlencoded};
use tern::http::{decode_component, decode_path, Form, Method, Request};

/// Percent-encodes `s`. Bytes that must be escaped in a component always are; others are
/// escaped when `mask` says so (mixing upper- and lower-case hex digits), so the decoder sees
/// both escaped and literal forms. With `plus_for_space` a space becomes `+`.
fn escape(s: &str, mask: u64, plus_for_space: bool) -> String {
    let mut out = String::new();
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let must = matches!(b, b'%' | b'+' | b'&' | b'=' | b';' | b'?' | b'#')
            || !(0x21..0x7f).contains(&b);
        if b == b' ' && plus_for_space {
            out.push('+');
        } else if must || mask >> (i % 64) & 1 == 1 {
            if i % 3 == 0 {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn request(method: Method, content_type: &str, query: String, body: String) -> Request {
    Request {
        method,
        path: "/v2/keys/k".to_string(),
        query,
        headers: [("Host", "h"), ("Content-Type", content_type)]
            .into_iter()
            .collect(),
        body: body.into_bytes(),
        minor_version: 1,
        keep_alive: true,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mask = tern_fuzz::fnv(data);

    // Raw text.
    let component = decode_component(&text);
    let path = decode_path(&text);
    assert_eq!(component.is_ok(), path.is_ok(), "escape validity differs");
    if let Err(e) = &component {
        assert!(e.starts_with("invalid URL escape \""), "{e}");
        assert_eq!(Err(e), path.as_ref());
    }
    if let Ok(c) = &component {
        // `+` is the only difference: as %20 the path decoder reads it as a space too.
        assert_eq!(
            decode_path(&text.replace('+', "%20")).as_ref(),
            Ok(c),
            "component vs path"
        );
    }
    let mut pairs = Vec::new();
    let parsed = parse_urlencoded(&text, &mut pairs);
    match Form::from_query(&text) {
        Ok(form) => {
            assert!(parsed.is_ok());
            assert_eq!(form.pairs(), &pairs[..]);
            for (k, v) in &pairs {
                assert!(form.contains(k));
                assert!(form.get_all(k).any(|x| x == v));
            }
        }
        Err(e) => assert_eq!(parsed, Err(e)),
    }
    let _ = go_quote(data);
    for ct in [
        "application/x-www-form-urlencoded",
        text.lines().next().unwrap_or(""),
    ] {
        let _ = Form::from_request(&request(
            Method::Put,
            ct,
            text.to_string(),
            text.to_string(),
        ));
    }

    // Round trips of one string.
    for plus in [false, true] {
        let escaped = escape(&text, mask, plus);
        assert_eq!(
            decode_component(&escaped).as_deref(),
            Ok(&*text),
            "component round trip of {escaped:?}"
        );
        if !plus {
            assert_eq!(
                decode_path(&escaped).as_deref(),
                Ok(&*text),
                "path round trip of {escaped:?}"
            );
        }
    }

    // Round trip of a list of pairs, as a query and as a form body.
    let want: Vec<(String, String)> = text
        .split('\n')
        .map(|line| {
            let (k, v) = line.split_once('\t').unwrap_or((line, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let query = want
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let m = mask.rotate_left(i as u32);
            format!("{}={}", escape(k, m, i % 2 == 0), escape(v, !m, i % 2 == 1))
        })
        .collect::<Vec<_>>()
        .join("&");
    let form = Form::from_query(&query).expect("an encoded query parses");
    assert_eq!(form.pairs(), &want[..], "query {query:?}");
    let req = request(
        Method::Post,
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        "from=query".to_string(),
        query.clone(),
    );
    let form = Form::from_request(&req).expect("an encoded form parses");
    let (body, q) = form.pairs().split_at(want.len());
    assert_eq!(body, &want[..]);
    assert_eq!(q, &[("from".to_string(), "query".to_string())]);
});
