//! Client errors as etcd's Go client renders them (`ternctl` prints them verbatim), and the
//! JSON decoding errors in Go's `encoding/json` words. Knows nothing about transport.

use super::*;
use std::fmt;

// ---------------------------------------------------------------------------------------
// Errors, as etcd's Go client renders them.

/// An etcd API error body (`{"errorCode":..,"message":..,"cause":..,"index":..}`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EtcdError {
    pub code: i64,
    pub message: String,
    pub cause: String,
    pub index: u64,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code, self.message, self.cause, self.index
        )
    }
}

/// Every way a client call can fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an etcd error body.
    Etcd(EtcdError),
    /// Every endpoint failed; one entry per attempt, with whether it was a connection error.
    Cluster(Vec<(String, bool)>),
    /// The total deadline passed (`context deadline exceeded`).
    DeadlineExceeded,
    /// No endpoints to talk to.
    NoEndpoints,
    /// A message printed as-is (auth/members errors, unexpected status codes, ...).
    Msg(String),
}

pub const ERR_CLUSTER_UNAVAILABLE: &str = "client: etcd cluster is unavailable or misconfigured";
pub const ERR_INVALID_JSON: &str =
    "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint";
pub const ERR_EMPTY_BODY: &str = "client: response body is empty";

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Etcd(e) => e.fmt(f),
            ClientError::Cluster(errs) => {
                f.write_str(ERR_CLUSTER_UNAVAILABLE)?;
                for (i, (e, _)) in errs.iter().enumerate() {
                    writeln!(f, "; error #{i}: {e}")?;
                }
                Ok(())
            }
            ClientError::DeadlineExceeded => f.write_str("context deadline exceeded"),
            ClientError::NoEndpoints => f.write_str("client: no endpoints available"),
            ClientError::Msg(m) => f.write_str(m),
        }
    }
}

impl ClientError {
    /// `ClusterError.Detail()`: one `error #i: ...` line per attempt.
    pub fn detail(&self) -> Option<String> {
        match self {
            ClientError::Cluster(errs) => Some(
                errs.iter()
                    .enumerate()
                    .map(|(i, (e, _))| format!("error #{i}: {e}\n"))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// etcdctl's `isConnectionError`: every attempt failed to connect or timed out.
    pub fn is_connection_error(&self) -> bool {
        match self {
            ClientError::Cluster(errs) => errs.iter().all(|(_, c)| *c),
            ClientError::DeadlineExceeded => true,
            _ => false,
        }
    }
}

pub(super) fn json_err(body: &[u8]) -> ClientError {
    ClientError::Msg(go_json_error(body))
}

/// Go's `encoding/json` error text for a body that is not valid JSON (approximate:
/// the common cases, an empty body and a bad first character).
pub fn go_json_error(body: &[u8]) -> String {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => "unexpected end of JSON input".into(),
        Some(&c)
            if !matches!(
                c,
                b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            ) =>
        {
            format!(
                "invalid character {} looking for beginning of value",
                go_char(c)
            )
        }
        Some(_) => "unexpected end of JSON input".into(),
    }
}

pub(super) fn go_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

pub(super) fn expect_status(resp: &HttpResponse, want: &[u16]) -> Result<(), ClientError> {
    if want.contains(&resp.status) {
        Ok(())
    } else {
        Err(ClientError::Msg(format!(
            "unexpected status code {}",
            resp.status
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rendering() {
        let e = ClientError::Etcd(EtcdError {
            code: 100,
            message: "Key not found".into(),
            cause: "/a".into(),
            index: 3,
        });
        assert_eq!(e.to_string(), "100: Key not found (/a) [3]");
        let c = ClientError::Cluster(vec![("x".into(), true), ("y".into(), true)]);
        assert_eq!(
            c.to_string(),
            "client: etcd cluster is unavailable or misconfigured; error #0: x\n; error #1: y\n"
        );
        assert_eq!(c.detail().unwrap(), "error #0: x\nerror #1: y\n");
        assert!(c.is_connection_error());
        assert!(!ClientError::Cluster(vec![("x".into(), false)]).is_connection_error());
    }
}
