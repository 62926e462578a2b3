//! etcd v2 authentication (manual §5.5.2): the replicated users, roles and switch
//! ([`state`]), and password hashing and checking with a cache of verified credentials
//! ([`password`]). The HTTP side (the `/v2/auth` endpoints and enforcement on every request)
//! lives in the API layer.

pub mod password;
pub mod state;
