//! tern: an etcd v2 compatible server, thread-per-core on glommio (io_uring).
//!
//! Data flow, one way:
//! - write: `http` → `api` (parse, build a `store::Command`) → `shard::Shard::propose` →
//!   shard 0's `raft` node → committed entries → every shard applies them to its `store`
//!   replica → the proposing shard answers once it has applied the entry; a shard serves
//!   nothing older than the newest index any client of the member was shown.
//! - read: `http` → `api` → this shard's `store` replica (no cross-core traffic);
//!   `quorum=true` first waits for a raft ReadIndex on the local replica.
//! - watch: a watcher lives in the store replica of the shard holding the connection.
//!
//! Units: `config` (flags), `error` (etcd error table), `store` (deterministic v2 state
//! machine), `http` (HTTP/1.1 codec and connection loop), `shard` (executors' shared plumbing),
//! `raft` (raft-rs driver, membership, snapshots, WAL recovery), `wal`/`snap` (durable files),
//! `transport` (raft messages between members over HTTP), `api` (v2 endpoints), `cluster` (IDs
//! and the replicated member list), `client`/`ctl` (ternctl), `tls`/`dns` (client TLS, SRV
//! lookups), `loadgen` (ternbench), `iomem` (locked-memory limit for glommio), `process`
//! (panic policy, descriptor budget), `ratelog` (rate-limited error logs), `server` (wiring).

pub mod api;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod ctl;
pub mod dns;
pub mod error;
pub mod http;
pub mod iomem;
pub mod listener;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod proxy;
pub mod raft;
pub mod ratelog;
pub mod server;
pub mod shard;
pub mod shutdown;
pub mod sim;
pub mod snap;
pub mod store;
pub mod timefmt;
pub mod tls;
pub mod transport;
pub mod wal;
