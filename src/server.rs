//! Wires tern together: validates the configuration against what this stage supports, starts
//! one executor per shard, the raft node on shard 0, and the client listeners on every shard.
//! The only module that imports everything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::api::{Api, ApiShared};
use crate::cluster::{cluster_id, Member};
use crate::config::Config;
use crate::http::{serve_connection, Limits};
use crate::raft::RaftSettings;
use crate::shard::{Shard, ShardMsg, Shared};
use crate::store::Store;

/// Capacity of each shard-to-shard channel.
const MESH_CHANNEL: usize = 4096;
/// Locked memory each executor asks io_uring for (registered buffers).
const IO_MEMORY: usize = 1 << 20;

/// A start-up failure, printed as `tern: <message>` before exiting 1.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a shard needs to start, cloned into each executor.
#[derive(Clone)]
struct ShardPlan {
    shared: Arc<Shared>,
    api: Arc<ApiShared>,
    listen: Vec<SocketAddr>,
    limits: Limits,
    history: usize,
    raft: Arc<RaftSettings>,
}

pub fn run(config: Config) -> Result<(), StartError> {
    config
        .check_supported(crate::config::SUPPORTED_NOW)
        .map_err(|e| StartError(e.to_string()))?;
    let me = local_member(&config)?;
    let members = vec![me.clone()];
    let cid = cluster_id(&[me.id]);

    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError(format!(
            "cannot access data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    raise_memlock_limit();

    let listen: Vec<SocketAddr> = config
        .listen_client_urls
        .iter()
        .map(|u| u.socket_addr())
        .collect();
    for addr in &listen {
        // SO_REUSEPORT would let a second tern share the port silently: refuse it up front.
        std::net::TcpListener::bind(addr)
            .map_err(|e| StartError(format!("listen tcp {addr}: bind: {e}")))?;
    }

    let nshards = config.shards.max(1);
    let shared = Arc::new(Shared::new(nshards, Duration::from_secs(5)));
    let plan = ShardPlan {
        shared: shared.clone(),
        api: Arc::new(ApiShared::new(
            me.clone(),
            members,
            cid,
            config.cors.clone(),
            nshards,
        )),
        listen: listen.clone(),
        limits: Limits {
            max_body_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        history: config.watch_history,
        raft: Arc::new(RaftSettings {
            id: me.id,
            voters: vec![me.id],
            heartbeat: config.heartbeat_interval,
            election_timeout: config.election_timeout,
            debug: config.debug,
        }),
    };
    let mesh = MeshBuilder::full(nshards, MESH_CHANNEL);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut handles = Vec::with_capacity(nshards);
    for i in 0..nshards {
        let plan = plan.clone();
        let mesh = mesh.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(i % cpus))
            .name(&format!("tern-shard-{i}"))
            .io_memory(IO_MEMORY)
            .spawn(move || shard_main(i, plan, mesh))
            .map_err(|e| {
                StartError(format!(
                    "cannot start shard {i}: {e} (io_uring and locked memory are required)"
                ))
            })?;
        handles.push(handle);
    }
    eprintln!(
        "tern: member {} ({}) of cluster {} serving clients on {} with {} shard(s)",
        crate::cluster::id_hex(me.id),
        me.name,
        crate::cluster::id_hex(cid),
        listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        nshards
    );
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(StartError(format!("shard failed: {e}"))),
        }
    }
    Ok(())
}

/// The local member as the bootstrap flags describe it. This stage runs one member: an
/// `--initial-cluster` naming anyone else is refused rather than silently ignored.
fn local_member(config: &Config) -> Result<Member, StartError> {
    let peers: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    let clients: Vec<String> = config
        .advertise_client_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    let mine: Vec<String> = config
        .initial_cluster
        .iter()
        .filter(|(name, _)| *name == config.name)
        .map(|(_, url)| url.to_string())
        .collect();
    if mine.is_empty() {
        return Err(StartError(format!(
            "couldn't find local name \"{}\" in the initial cluster configuration",
            config.name
        )));
    }
    if config
        .initial_cluster
        .iter()
        .any(|(name, _)| *name != config.name)
    {
        return Err(StartError(
            "flag --initial-cluster is not supported yet: this stage of tern runs a single member"
                .into(),
        ));
    }
    let mut sorted_mine = mine.clone();
    sorted_mine.sort();
    let mut sorted_peers = peers.clone();
    sorted_peers.sort();
    if sorted_mine != sorted_peers {
        return Err(StartError(format!(
            "error setting up initial cluster: {} has different advertised URLs in the cluster and advertised peer URLs list",
            config.name
        )));
    }
    Ok(Member::new(
        &config.name,
        &peers,
        &clients,
        &config.initial_cluster_token,
    ))
}

/// glommio registers io_uring buffers in locked memory; as root we can lift the limit.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the struct we pass; failure is reported by its return value.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if rc != 0 {
        // Not fatal: IO_MEMORY is small enough for the common 8 MiB default limit.
    }
}

async fn shard_main(
    id: usize,
    plan: ShardPlan,
    mesh: MeshBuilder<ShardMsg, glommio::channels::channel_mesh::Full>,
) -> Result<(), StartError> {
    let store = Store::new(plan.history);
    let shard = Shard::start(id, plan.shared.clone(), store, mesh).await;
    if id == 0 {
        crate::raft::start_memory_node(&plan.raft, shard.clone()).map_err(StartError)?;
    }
    let api = Api::new(shard, plan.api.clone());
    let mut accept_loops = Vec::new();
    for &addr in &plan.listen {
        let listener = TcpListener::bind(addr)
            .map_err(|e| StartError(format!("listen tcp {addr}: bind: {e}")))?;
        let api = api.clone();
        let limits = plan.limits;
        accept_loops.push(glommio::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        let api = api.clone();
                        glommio::spawn_local(async move {
                            let _ = serve_connection(stream, &api, &limits).await;
                        })
                        .detach();
                    }
                    Err(e) => {
                        eprintln!("tern: accept on {addr}: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for task in accept_loops {
        task.await;
    }
    Ok(())
}
