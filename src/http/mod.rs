//! The HTTP/1.1 server layer: sans-IO request parsing, form decoding, response writing and
//! the per-connection loop on glommio-compatible async streams.
//!
//! Owns everything about HTTP framing and connection handling. Knows nothing about the etcd
//! v2 API, its errors, or what any path means: requests reach a [`Handler`], which may judge
//! each by its head before the body is read ([`Handler::admit`]) and returns a [`Response`].

pub mod client;
pub mod conn;
pub mod decode;
pub mod form;
pub mod request;
pub mod response;
pub mod spare;

pub use conn::{serve_connection, Admit, BodySink, Handler, HandlerFn, MAX_BACKLOG, MAX_IN_FLIGHT};
pub use form::{decode_component, decode_path, decode_path_bytes, Form};
pub use request::{
    parse_request, Headers, HttpError, Limits, Method, Parsed, Progress, Request, RequestHead,
    RequestParser, Step,
};
pub use response::{Body, BodyStream, HeaderValue, Response};
