//! Wires tern together: validates the configuration against what this stage supports, starts
//! one executor per shard, the raft node on shard 0, and the client listeners on every shard.
//! The only module that imports everything.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::api::{Api, ApiShared};
use crate::cluster::{cluster_id, Member};
use crate::config::Config;
use crate::http::{serve_connection, Limits};
use crate::raft::storage::{recover, Bootstrap, Paths, Recovered};
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
    listen: Vec<SocketAddr>,
    limits: Limits,
    history: usize,
    /// What shard 0 learns from the data dir; the other shards wait for it.
    startup: Arc<OnceLock<Result<Startup, String>>>,
    /// Shard 0 only: the raft node's settings, taken once.
    raft: Arc<std::sync::Mutex<Option<RaftSettings>>>,
    paths: Paths,
    /// The member as this start's flags describe it (ignored after the first start).
    configured: Bootstrap,
    members: Vec<Member>,
    cors: Vec<String>,
    nshards: usize,
}

/// The outcome of recovery on shard 0, shared with every shard.
struct Startup {
    api: Arc<ApiShared>,
    store_snapshot: Option<Arc<Vec<u8>>>,
    /// Every shard applies up to here before it accepts clients.
    commit: u64,
}

pub fn run(config: Config) -> Result<(), StartError> {
    config
        .check_supported(crate::config::SUPPORTED_NOW)
        .map_err(|e| StartError(e.to_string()))?;
    let me = local_member(&config)?;
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
        probe_listen_address(addr)?;
    }

    let nshards = config.shards.max(1);
    let shared = Arc::new(Shared::new(nshards, Duration::from_secs(5)));
    let paths = Paths::new(&config.data_dir, config.wal_dir.as_deref());
    let plan = ShardPlan {
        shared: shared.clone(),
        listen: listen.clone(),
        limits: Limits {
            max_body_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        history: config.watch_history,
        startup: Arc::new(OnceLock::new()),
        raft: Arc::new(std::sync::Mutex::new(Some(RaftSettings {
            heartbeat: config.heartbeat_interval,
            election_timeout: config.election_timeout,
            debug: config.debug,
            snapshot_count: config.snapshot_count,
            max_snapshots: config.max_snapshots as usize,
            max_wals: config.max_wals as usize,
            snap_dir: paths.snap.clone(),
        }))),
        paths,
        configured: Bootstrap {
            member_id: me.id,
            cluster_id: cid,
            name: me.name.clone(),
            voters: vec![me.id],
        },
        members: vec![me.clone()],
        cors: config.cors.clone(),
        nshards,
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
    let mut first_error = None;
    for h in handles {
        let outcome = match h.join() {
            Ok(result) => result,
            Err(e) => Err(StartError(format!("shard failed: {e}"))),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
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

/// Every shard binds each client address with SO_REUSEPORT, which would let a second tern on
/// the same port share it silently. A plain bind cannot tell that apart from connections of a
/// previous run lingering in TIME_WAIT/FIN_WAIT, so ask the port itself: if something keeps
/// accepting connections there for two seconds, it is taken. (A killed tern's listeners outlive
/// it briefly while the kernel tears down its io_uring instances.)
fn probe_listen_address(addr: &SocketAddr) -> Result<(), StartError> {
    let mut target = *addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_ok() {
        if std::time::Instant::now() > deadline {
            return Err(StartError(format!(
                "listen tcp {addr}: bind: address already in use (another process is listening there)"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// One shard's listener on a client address: SO_REUSEPORT so every shard accepts on it (the
/// kernel spreads connections), SO_REUSEADDR so a restart is not refused over TIME_WAIT.
fn bind_shard_listener(addr: SocketAddr) -> Result<TcpListener, StartError> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fail = |e: std::io::Error| StartError(format!("listen tcp {addr}: bind: {e}"));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_reuse_port(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    // SAFETY: the fd is a listening TCP socket we own; ownership moves to glommio.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
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
    let mut recovered = None;
    if id == 0 {
        let result = recover_member(&plan).await;
        match result {
            Ok((startup, rec)) => {
                let _ = plan.startup.set(Ok(startup));
                recovered = Some(rec);
            }
            Err(e) => {
                let _ = plan.startup.set(Err(e.clone()));
                return Err(StartError(e));
            }
        }
    }
    let startup = loop {
        match plan.startup.get() {
            Some(Ok(s)) => break s,
            // Shard 0 reports the error; the others just stop.
            Some(Err(_)) => return Ok(()),
            None => glommio::timer::sleep(Duration::from_millis(1)).await,
        }
    };
    let store = match &startup.store_snapshot {
        Some(bytes) => Store::restore(bytes, plan.history)
            .map_err(|e| StartError(format!("restoring the store from its snapshot: {e:?}")))?,
        None => Store::new(plan.history),
    };
    let shard = Shard::start(id, plan.shared.clone(), store, mesh).await;
    if let Some(rec) = recovered {
        let settings = plan
            .raft
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| StartError("raft settings already taken".into()))?;
        crate::raft::start_node(settings, shard.clone(), rec).map_err(StartError)?;
    }
    // Serve nothing older than what was committed before this start.
    shard.wait_applied(startup.commit).await;
    let api = Api::new(shard, startup.api.clone());
    let mut accept_loops = Vec::new();
    for &addr in &plan.listen {
        let listener = bind_shard_listener(addr)?;
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
    if id == 0 {
        eprintln!(
            "tern: member {} ({}) of cluster {} serving clients on {} with {} shard(s)",
            crate::cluster::id_hex(startup.api.member.id),
            startup.api.member.name,
            crate::cluster::id_hex(startup.api.cluster_id),
            plan.listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            plan.nshards
        );
    }
    for task in accept_loops {
        task.await;
    }
    Ok(())
}

/// Shard 0: opens (or creates) the WAL and the newest snapshot; what the member is comes from
/// them once it has started before, whatever the `--initial-*` flags now say.
async fn recover_member(plan: &ShardPlan) -> Result<(Startup, Recovered), String> {
    let rec = recover(&plan.paths, plan.configured.clone()).await?;
    for w in &rec.warnings {
        eprintln!("tern: warning: {w}");
    }
    let b = &rec.bootstrap;
    if !rec.fresh {
        eprintln!(
            "tern: restarting member {} in cluster {} from {} (snapshot at {}, commit {}); --initial-* flags are ignored",
            crate::cluster::id_hex(b.member_id),
            crate::cluster::id_hex(b.cluster_id),
            plan.paths.wal.display(),
            rec.applied,
            rec.commit
        );
    }
    let mut member = plan.members[0].clone();
    member.id = b.member_id;
    member.name = b.name.clone();
    let api = Arc::new(ApiShared::new(
        member.clone(),
        vec![member],
        b.cluster_id,
        plan.cors.clone(),
        plan.nshards,
    ));
    let startup = Startup {
        api,
        store_snapshot: rec.store_snapshot.clone().map(Arc::new),
        commit: rec.commit,
    };
    Ok((startup, rec))
}
