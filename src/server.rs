//! Wires tern together: validates the configuration against what this stage supports, starts
//! one executor per shard, the raft node on shard 0, and the client listeners on every shard.
//! The only module that imports everything.

use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;

use crate::listener::placement::{ClientPlacement, Placing};
use glommio::{LocalExecutorBuilder, Placement};

use crate::api::discovery::DiscoveryService;
use crate::api::{Api, ApiShared};
use crate::cluster::{cluster_id, Member};
use crate::config::Config;
use crate::http::Limits;
use crate::listener::{accept_on_all, halted, probed_addresses, shard_serving, stopping, Listen};
use crate::raft::storage::{recover, Bootstrap, FirstStart, Paths, Recovered};
use crate::raft::{NodeEnv, RaftSettings};
use crate::shard::{RaftInput, Shard, ShardMsg, Shared};
use crate::store::Store;
use crate::transport::peer_api::PeerApi;
use crate::transport::{Links, Transport, TransportStats};

/// Capacity of each shard-to-shard channel.
const MESH_CHANNEL: usize = 4096;
/// Largest request body on the peer port (a snapshot of the whole store); the peer API
/// admits each request with a lower bound of its own.
const PEER_MAX_BODY: usize = crate::transport::peer_api::MAX_SNAPSHOT_BODY;
/// How long a peer request's body may take: as long as a peer waits for a snapshot's answer.
const PEER_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long output to a peer may wait with nothing going out (etcd's `ConnWriteTimeout`): a
/// member that stopped reading its raft stream loses it, and its reader dials a new one.
const PEER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// Which shard serves each client connection (see [`crate::listener::placement`]).
    placement: Arc<ClientPlacement>,
    listen: Vec<Listen>,
    limits: Limits,
    /// What shard 0 learns from the data dir; the other shards wait for it.
    startup: Arc<OnceLock<Result<Startup, String>>>,
    /// Shard 0 only: the raft node's settings, taken once.
    raft: Arc<std::sync::Mutex<Option<RaftSettings>>>,
    /// Where peer connections are made from (the peer listen address, when it is specific).
    peer_source: Option<std::net::IpAddr>,
    /// What `https://` peers are dialled with.
    peer_tls: Arc<crate::tls::reload::Reloading<rustls::ClientConfig>>,
    paths: Paths,
    /// The member as this start's flags describe it (ignored after the first start).
    configured: Bootstrap,
    cluster: ClusterPlan,
    /// `None` when the member has a WAL already.
    first_start: Option<FirstStartPlan>,
    force_new_cluster: bool,
    peer_listen: Vec<Listen>,
    cors: Vec<String>,
    /// `--discovery-service`: how `/new` makes tokens, when it is on.
    discovery_service: Option<DiscoveryService>,
    nshards: usize,
}

#[derive(Clone, Copy)]
enum FirstStartPlan {
    NewCluster,
    Join,
}

/// The outcome of recovery on shard 0, shared with every shard.
struct Startup {
    api: Arc<ApiShared>,
    /// Every shard applies up to here before it accepts clients.
    commit: u64,
}

/// What an operator reads first in the log (etcd 2.3 prints the same list): the version, the
/// shards and where they run, the URLs, the directories and the timing flags.
fn log_configuration(config: &Config, nshards: usize) {
    let join = |urls: &mut dyn Iterator<Item = String>| urls.collect::<Vec<_>>().join(",");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    tracing::info!(
        "tern Version: {} (etcd API {})",
        env!("CARGO_PKG_VERSION"),
        crate::api::ETCD_SERVER_VERSION
    );
    tracing::info!(
        "{nshards} shard(s) on {cpus} available CPU(s), {}",
        if config.pin_shards {
            "each pinned to a core (--pin-shards)"
        } else {
            "placed by the kernel"
        }
    );
    tracing::info!(
        "listening for peers on {}",
        join(&mut config.listen_peer_urls.iter().map(|u| u.to_string()))
    );
    tracing::info!(
        "listening for client requests on {}",
        join(&mut config.listen_client_urls.iter().map(|u| u.to_string()))
    );
    let lines = [
        ("name", config.name.clone()),
        ("data dir", config.data_dir.display().to_string()),
        (
            "wal dir",
            config.wal_dir.as_ref().map_or_else(
                || config.data_dir.join("member/wal").display().to_string(),
                |d| d.display().to_string(),
            ),
        ),
        (
            "heartbeat",
            format!("{}ms", config.heartbeat_interval.as_millis()),
        ),
        (
            "election",
            format!("{}ms", config.election_timeout.as_millis()),
        ),
        ("snapshot count", config.snapshot_count.to_string()),
        (
            "advertise client URLs",
            join(&mut config.advertise_client_urls.iter().map(|u| u.to_string())),
        ),
        (
            "initial advertise peer URLs",
            join(
                &mut config
                    .initial_advertise_peer_urls
                    .iter()
                    .map(|u| u.to_string()),
            ),
        ),
        ("initial cluster", config.initial_cluster.to_string()),
    ];
    for (what, value) in lines {
        tracing::info!("{what} = {value}");
    }
}

/// `--discovery-service`: token URLs start with the first advertised client URL (sorted, as
/// `/v2/members` lists them), so every member of a cluster answers alike.
fn discovery_service(config: &Config) -> Option<DiscoveryService> {
    if !config.discovery_service {
        return None;
    }
    let base = config.advertise_client_urls.first()?.to_string();
    tracing::info!(
        "discovery service on: GET /new makes tokens under {base}/v2/keys{} that expire after {}s",
        crate::api::discovery::PREFIX,
        config.discovery_service_ttl.as_secs()
    );
    Some(DiscoveryService::new(&base, config.discovery_service_ttl))
}

pub fn run(config: Config) -> Result<(), StartError> {
    config
        .check_supported(crate::config::SUPPORTED_NOW)
        .map_err(|e| StartError(e.to_string()))?;
    let mut config = config;
    // What the data dir was used for decides, as in etcd: a member's stays a member's, a
    // proxy's a proxy's, whatever the flags now say.
    let member_dir = config.data_dir.join("member").exists()
        || crate::wal::Wal::exists(&Paths::new(&config.data_dir, config.wal_dir.as_deref()).wal);
    let proxy_dir = crate::proxy::cluster_file(&config.data_dir).exists();
    if member_dir && config.is_proxy() {
        tracing::warn!(
            "the server is already initialized as member before, starting as etcd member..."
        );
        config.proxy = crate::config::ProxyMode::Off;
    } else if !member_dir && proxy_dir && !config.is_proxy() {
        tracing::warn!(
            "the server is already initialized as proxy before, starting as etcd proxy..."
        );
        config.proxy = crate::config::ProxyMode::On;
    }
    if config.is_proxy() {
        return crate::proxy::run(config);
    }
    if discover(&mut config)? == Discovered::ClusterFull {
        tracing::info!("discovery cluster full, falling back to proxy");
        config.proxy = crate::config::ProxyMode::On;
        return crate::proxy::run(config);
    }
    let server = Server::start(config)?;
    crate::shutdown::install(server.shared.clone()).map_err(StartError)?;
    server.wait()
}

/// A member running in this process: its executors, and how to stop it.
pub struct Server {
    shared: Arc<Shared>,
    executors: Executors,
}

impl Server {
    /// Starts a member as `config` describes (a member, not a proxy; discovery, if any,
    /// already done): recovers or creates its data dir and starts one executor per shard.
    /// Returns once the executors run; the member serves clients once it has caught up
    /// (`/health`). Installs no signal handlers: `main` does ([`crate::shutdown::install`]).
    pub fn start(config: Config) -> Result<Server, StartError> {
        start_member(config)
    }

    /// Starts an orderly stop, as SIGTERM does ([`crate::shutdown`]), on a thread of its own;
    /// [`Server::wait`] returns once it is done.
    pub fn stop(&self) {
        let shared = self.shared.clone();
        std::thread::spawn(move || crate::shutdown::stop(&shared));
    }

    /// Waits until every executor has ended: `Ok` after a stop, the fatal error that ended
    /// the member otherwise.
    pub fn wait(self) -> Result<(), StartError> {
        self.executors.join()
    }
}

fn start_member(config: Config) -> Result<Server, StartError> {
    let mut cluster = plan_cluster(&config)?;
    // Every certificate and key is checked before anything else is done or printed.
    let tls = crate::tls::setup(&config).map_err(StartError)?;

    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError(format!(
            "cannot access data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    crate::iomem::raise_memlock_limit();
    let nshards = config.shards.max(1);
    log_configuration(&config, nshards);
    let (fd_limit, connections) = crate::process::raise_fd_limit(nshards);
    tracing::info!(
        "open-files limit {fd_limit}: at most {connections} client and peer connections at once"
    );

    let listen = probed_addresses(&config.listen_client_urls, &tls.client)?;

    let shared = Arc::new(Shared::new(
        nshards,
        Duration::from_secs(5),
        config.watch_history,
    ));
    let paths = Paths::new(&config.data_dir, config.wal_dir.as_deref());
    let first_start = if crate::wal::Wal::exists(&paths.wal) {
        None
    } else if config.initial_cluster_state == crate::config::ClusterState::New {
        Some(FirstStartPlan::NewCluster)
    } else {
        join_cluster(&mut cluster, &tls.peer_client.get())?;
        Some(FirstStartPlan::Join)
    };
    let peer_listen = probed_addresses(&config.listen_peer_urls, &tls.peer)?;
    let plan = ShardPlan {
        shared: shared.clone(),
        placement: ClientPlacement::new(nshards),
        listen: listen.clone(),
        limits: Limits {
            max_body_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        startup: Arc::new(OnceLock::new()),
        raft: Arc::new(std::sync::Mutex::new(Some(RaftSettings {
            heartbeat: config.heartbeat_interval,
            election_timeout: config.election_timeout,
            snapshot_count: config.snapshot_count,
            max_snapshots: config.max_snapshots as usize,
            max_wals: config.max_wals as usize,
            snap_dir: paths.snap.clone(),
            name: config.name.clone(),
            client_urls: cluster.me.client_urls.clone(),
            strict_reconfig_check: config.strict_reconfig_check,
            election_ticks: None,
            join_peers: match first_start {
                Some(FirstStartPlan::Join) => cluster.initial.clone(),
                _ => Vec::new(),
            },
        }))),
        peer_source: peer_listen
            .first()
            .map(|l| l.addr.ip())
            .filter(|ip| !ip.is_unspecified()),
        peer_tls: tls.peer_client.clone(),
        paths,
        configured: Bootstrap {
            member_id: cluster.me.id,
            cluster_id: cluster.cluster_id,
            name: cluster.me.name.clone(),
            voters: cluster.initial.iter().map(|m| m.id).collect(),
        },
        cluster,
        first_start,
        force_new_cluster: config.force_new_cluster,
        peer_listen,
        cors: config.cors.clone(),
        discovery_service: discovery_service(&config),
        nshards,
    };
    let mesh = MeshBuilder::full(nshards, MESH_CHANNEL);
    let executors = spawn_executors("shard", nshards, config.pin_shards, &shared, move |i| {
        let (plan, mesh) = (plan.clone(), mesh.clone());
        move || shard_main(i, plan, mesh)
    })?;
    Ok(Server { shared, executors })
}

/// Runs `body(i)()` on executor `i` of `nshards` (threads `tern-<kind>-<i>`) until every one
/// ends; the first error any returns, or a panic's. Every executor ends once `shared` is
/// halted ([`Shared::halt`]). Pinned (`--pin-shards`), executor `i` owns CPU `i`; unpinned (the
/// default), the kernel can move one off a core that other processes (a co-located member, a
/// load generator) need. Shared by members and proxies.
pub(crate) fn run_executors<B, S, F>(
    kind: &str,
    nshards: usize,
    pin: bool,
    shared: &Arc<Shared>,
    body: B,
) -> Result<(), StartError>
where
    B: Fn(usize) -> S,
    S: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = Result<(), StartError>> + 'static,
{
    spawn_executors(kind, nshards, pin, shared, body)?.join()
}

/// The executors of one process (see [`run_executors`]).
pub(crate) struct Executors {
    kind: String,
    handles: Vec<glommio::ExecutorJoinHandle<Result<(), StartError>>>,
}

impl Executors {
    /// Waits for every executor; the first error any returned, or a panic's.
    pub(crate) fn join(self) -> Result<(), StartError> {
        let mut first_error = None;
        for h in self.handles {
            let outcome = match h.join() {
                Ok(result) => result,
                Err(e) => Err(StartError(format!("{} failed: {e}", self.kind))),
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
}

/// Starts the executors of [`run_executors`] without waiting for them.
pub(crate) fn spawn_executors<B, S, F>(
    kind: &str,
    nshards: usize,
    pin: bool,
    shared: &Arc<Shared>,
    body: B,
) -> Result<Executors, StartError>
where
    B: Fn(usize) -> S,
    S: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = Result<(), StartError>> + 'static,
{
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut handles = Vec::with_capacity(nshards);
    for i in 0..nshards {
        let placement = if pin {
            Placement::Fixed(i % cpus)
        } else {
            Placement::Unbound
        };
        let start = body(i);
        let shared = shared.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("tern-{kind}-{i}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                // The executor ends with its body, or as soon as the process halts (its other
                // tasks are dropped with it).
                futures_lite::future::or(start(), halted(&shared)).await
            })
            .map_err(|e| {
                StartError(format!(
                    "cannot start {kind} {i}: {e} (io_uring and locked memory are required)"
                ))
            })?;
        handles.push(handle);
    }
    Ok(Executors {
        kind: kind.to_string(),
        handles,
    })
}

/// The cluster as the bootstrap flags describe it (ignored once the member has a WAL).
#[derive(Clone)]
struct ClusterPlan {
    me: Member,
    initial: Vec<Member>,
    cluster_id: u64,
}

/// Reads `--name`, `--initial-cluster`, `--initial-advertise-peer-urls` and the token into the
/// members of a new cluster, refusing what etcd refuses, with its messages.
/// `--discovery` and `--discovery-srv`: on a first start the initial cluster comes from the
/// discovery service (which may wait for the other members) or the DNS SRV records; on a
/// restart the WAL knows the cluster (and a discovery token is ignored, with etcd's warning).
/// What discovery decided this process is.
#[derive(Debug, PartialEq, Eq)]
enum Discovered {
    /// A member (of the cluster found, or of the one its flags or WAL describe).
    Member,
    /// The discovery cluster is full and `--discovery-fallback proxy` asks for a proxy.
    ClusterFull,
}

fn discover(config: &mut Config) -> Result<Discovered, StartError> {
    use crate::cluster::discovery::{join_cluster, DiscoveryError};
    let restart =
        crate::wal::Wal::exists(&Paths::new(&config.data_dir, config.wal_dir.as_deref()).wal);
    if restart && config.discovery_srv.is_some() {
        // The WAL has the cluster: a restart does not depend on DNS.
        config.initial_cluster = crate::config::InitialCluster::from_member(
            &config.name,
            &config.initial_advertise_peer_urls,
        );
        return Ok(Discovered::Member);
    }
    if let Some(domain) = config.discovery_srv.clone() {
        let urls: Vec<String> = config
            .initial_advertise_peer_urls
            .iter()
            .map(|u| u.to_string())
            .collect();
        let server = crate::dns::name_server();
        let found = crate::cluster::srv::initial_cluster(&config.name, &domain, &urls, &server)
            .map_err(StartError)?;
        tracing::info!("discovery-srv: the initial cluster from {domain} is {found}");
        config.initial_cluster = crate::config::InitialCluster::parse(&found)
            .map_err(|e| StartError(format!("discovery-srv: {e}")))?;
        return Ok(Discovered::Member);
    }
    let Some(url) = config.discovery.clone() else {
        return Ok(Discovered::Member);
    };
    let me = crate::config::InitialCluster::from_member(
        &config.name,
        &config.initial_advertise_peer_urls,
    );
    if restart {
        let paths = Paths::new(&config.data_dir, config.wal_dir.as_deref());
        tracing::warn!(
            "discovery token ignored since a cluster has already been initialized. Valid log found at {}",
            paths.wal.display()
        );
        config.initial_cluster = me;
        return Ok(Discovered::Member);
    }
    let urls: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    let id = Member::new(&config.name, &urls, &[], &config.initial_cluster_token).id;
    tracing::info!(
        "discovery: registering member {} ({me}) at {url}",
        crate::cluster::id_hex(id)
    );
    let via = crate::cluster::discovery::Via {
        tls: None,
        proxy: config.discovery_proxy.clone(),
    };
    let found = match join_cluster(&url, id, &me.to_string(), &via) {
        Ok(found) => found,
        Err(DiscoveryError::FullCluster)
            if config.discovery_fallback == crate::config::DiscoveryFallback::Proxy =>
        {
            return Ok(Discovered::ClusterFull)
        }
        Err(e) => return Err(StartError(e.to_string())),
    };
    tracing::info!("discovery: the initial cluster is {found}");
    config.initial_cluster = crate::config::InitialCluster::parse(&found).map_err(|e| {
        StartError(format!(
            "discovery: the registered members do not form a cluster: {e}"
        ))
    })?;
    config.initial_cluster_state = crate::config::ClusterState::New;
    Ok(Discovered::Member)
}

fn plan_cluster(config: &Config) -> Result<ClusterPlan, StartError> {
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, url) in config.initial_cluster.iter() {
        by_name
            .entry(name.to_string())
            .or_default()
            .push(url.to_string());
    }
    let Some(mine) = by_name.get(&config.name) else {
        return Err(StartError(format!(
            "{} not listed in the initial cluster config",
            config.name
        )));
    };
    let mut sorted_mine = mine.clone();
    sorted_mine.sort();
    let mut advertised: Vec<String> = config
        .initial_advertise_peer_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    advertised.sort();
    if sorted_mine != advertised {
        return Err(StartError(format!(
            "error setting up initial cluster: {} has different advertised URLs in the cluster and advertised peer URLs list",
            config.name
        )));
    }
    let clients: Vec<String> = config
        .advertise_client_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    let token = &config.initial_cluster_token;
    let initial: Vec<Member> = by_name
        .iter()
        .map(|(name, urls)| Member::new(name, urls, &[], token))
        .collect();
    let mut ids: Vec<u64> = initial.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != initial.len() {
        return Err(StartError(
            "error setting up initial cluster: two members share the same peer URLs".into(),
        ));
    }
    let me = Member::new(&config.name, mine, &clients, token);
    Ok(ClusterPlan {
        cluster_id: cluster_id(&ids),
        me,
        initial,
    })
}

/// `--initial-cluster-state existing`: asks the running members for their list, checks that
/// `--initial-cluster` describes the same members (etcd's `ValidateClusterAndAssignIDs`) and
/// takes their IDs and the cluster's.
fn join_cluster(plan: &mut ClusterPlan, tls: &Arc<rustls::ClientConfig>) -> Result<(), StartError> {
    let peers: Vec<String> = plan
        .initial
        .iter()
        .filter(|m| m.id != plan.me.id)
        .flat_map(|m| m.peer_urls.clone())
        .collect();
    let mut last_error = String::from("no peer URLs of other members");
    let mut remote = None;
    for url in &peers {
        match crate::client::peer_members(url, Duration::from_secs(2), tls.clone()) {
            Ok(found) => {
                remote = Some(found);
                break;
            }
            Err(e) => last_error = format!("{url}: {e}"),
        }
    }
    let Some((cid, remote)) = remote else {
        return Err(StartError(format!(
            "cannot fetch cluster info from peer urls: {last_error}"
        )));
    };
    if remote.len() != plan.initial.len() {
        return Err(StartError(
            "etcdserver: assign ids error: the member count is unequal".into(),
        ));
    }
    let sorted_urls = |urls: &[String]| {
        let mut u = urls.to_vec();
        u.sort();
        u
    };
    let mut remote: Vec<(Vec<String>, &crate::client::Member)> = remote
        .iter()
        .map(|m| (sorted_urls(&m.peer_urls), m))
        .collect();
    remote.sort_by(|a, b| a.0.cmp(&b.0));
    let mut local: Vec<&mut Member> = plan.initial.iter_mut().collect();
    local.sort_by(|a, b| a.peer_urls.cmp(&b.peer_urls));
    for (l, (urls, r)) in local.into_iter().zip(&remote) {
        if &l.peer_urls != urls {
            return Err(StartError(
                "etcdserver: assign ids error: unmatched member while checking PeerURLs".into(),
            ));
        }
        let id = u64::from_str_radix(&r.id, 16)
            .map_err(|_| StartError(format!("peer reported a bad member ID {:?}", r.id)))?;
        if l.peer_urls == plan.me.peer_urls {
            plan.me.id = id;
        }
        l.id = id;
    }
    plan.cluster_id = cid;
    Ok(())
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
            Ok((startup, rec, store)) => {
                let _ = plan.startup.set(Ok(startup));
                recovered = Some((rec, store));
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
    let shard = Shard::start(id, plan.shared.clone(), mesh).await;
    // Every shard connects its end of the client placement now, while the others do too
    // (each side of a channel waits for the other, re-polling).
    let placing = match plan.placement.take(id) {
        Some(end) => Placing::connect(end, plan.shared.clone()).await,
        None => None,
    };
    let ending = shard.clone();
    glommio::spawn_local(async move {
        stopping(&ending.shared).await;
        ending.end_watches();
    })
    .detach();
    if let Some((rec, store)) = recovered {
        // Raft, its ticker, the transport and the peer port run in their own task queue, which
        // the executor serves within RAFT_LATENCY of it having work however many client tasks
        // are runnable: a flood of clients on this shard cannot hold back heartbeats (tasks
        // spawned from inside the queue stay in it).
        let raft_queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::Matters(RAFT_LATENCY),
            "raft",
        );
        let start_raft = start_raft_and_peer_port(plan.clone(), shard.clone(), startup, rec, store);
        glommio::spawn_local_into(start_raft, raft_queue)
            .map_err(|e| StartError(format!("raft task queue: {e}")))?
            .await?;
    }
    // Serve nothing older than what was committed before this start, and (as etcd) only once
    // the cluster knows this member's name and client URLs.
    shard.wait_applied(startup.commit).await;
    let me = &startup.api.member;
    while !plan
        .shared
        .membership()
        .get(me.id)
        .is_some_and(|m| m.name == me.name && m.client_urls == me.client_urls)
    {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // A member of a larger cluster may have acknowledged writes whose commit its disk does
    // not record yet (the commit index rides on later syncs): catch up with the leader's
    // commit before serving, so nothing it acknowledged before a crash is missing after.
    if plan.shared.membership().len() > 1 {
        while shard.read_barrier().await.is_err() {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    }
    let api = Rc::new(Api::new(shard, startup.api.clone()));
    let accept_loops = accept_on_all(&plan.listen, &api, plan.limits, &plan.shared, placing)?;
    if id == 0 {
        tracing::info!(
            "member {} ({}) of cluster {} serving clients on {} with {} shard(s)",
            crate::cluster::id_hex(startup.api.member.id),
            startup.api.member.name,
            crate::cluster::id_hex(startup.api.cluster_id),
            plan.listen
                .iter()
                .map(|l| match l.tls {
                    Some(_) => format!("{} (TLS)", l.addr),
                    None => l.addr.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            plan.nshards
        );
    }
    shard_serving(&plan.shared);
    panic_if_asked(id);
    for task in accept_loops {
        task.await;
    }
    // Stopping: nothing new is accepted; open connections and shard 0's raft node go on until
    // the process halts (crate::shutdown), which ends this executor.
    std::future::pending::<()>().await;
    Ok(())
}

/// How soon shard 0's executor turns to raft's task queue once it has work, whatever the
/// clients on that shard are doing (a heartbeat interval is 100 ms by default).
const RAFT_LATENCY: Duration = Duration::from_millis(1);

/// Shard 0: starts the raft node over the recovered log and store, and serves the peer port.
fn start_raft_and_peer_port(
    plan: ShardPlan,
    shard: Rc<Shard>,
    startup: &Startup,
    rec: Recovered,
    store: Store,
) -> impl std::future::Future<Output = Result<(), StartError>> + 'static {
    let api = startup.api.clone();
    async move {
        let settings = plan
            .raft
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| StartError("raft settings already taken".into()))?;
        let snap_dir = settings.snap_dir.clone();
        let (source, tls, stats) = (
            plan.peer_source,
            plan.peer_tls.clone(),
            api.transport.clone(),
        );
        let heartbeat = settings.heartbeat;
        let links = Rc::new(Links::default());
        let max_batch_body = crate::transport::max_batch_body(plan.limits.max_body_bytes);
        let transport = crate::transport::Settings {
            source,
            tls,
            stats,
            links: links.clone(),
            max_frame: max_batch_body,
        };
        let driver = crate::raft::build_node(
            settings,
            NodeEnv::system(),
            shard,
            rec,
            store,
            |member, cluster, inbox| Transport::new(member, cluster, transport, inbox),
        )
        .map_err(StartError)?;
        let inbox = driver.inbox();
        let shared = plan.shared.clone();
        glommio::spawn_local(async move {
            // A node that must stop for good ends the process (etcd exits too).
            if let Err(why) = driver.run().await {
                tracing::error!("{why}");
                shared.halt(Err(why.to_string()));
            }
        })
        .detach();
        let ticks = inbox.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(heartbeat).await;
                ticks.push(RaftInput::Tick);
            }
        })
        .detach();
        let peer_api = Rc::new(PeerApi {
            cluster: api.cluster_id,
            shared: plan.shared.clone(),
            inbox,
            stats: api.transport.clone(),
            version_json: crate::api::version_json(),
            max_batch_body,
            snap_dir,
            links,
        });
        // The peer port takes bodies as large as a snapshot of the whole store.
        let limits = Limits {
            max_body_bytes: PEER_MAX_BODY,
            body_timeout: Some(PEER_BODY_TIMEOUT),
            write_timeout: Some(PEER_WRITE_TIMEOUT),
            ..Limits::default()
        };
        accept_on_all(&plan.peer_listen, &peer_api, limits, &plan.shared, None)?;
        Ok(())
    }
}

/// Test hook: `TERN_TEST_PANIC_SHARD=<n>` makes shard n panic once it serves clients, so a
/// test can check that a panic on any shard ends the process (`tests/hardening.rs`).
fn panic_if_asked(shard: usize) {
    let asked = std::env::var("TERN_TEST_PANIC_SHARD").ok();
    if asked.and_then(|v| v.parse::<usize>().ok()) == Some(shard) {
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            panic!("TERN_TEST_PANIC_SHARD={shard}: panicking on purpose");
        })
        .detach();
    }
}

/// Shard 0: opens (or creates) the WAL and the newest snapshot; what the member is comes from
/// them once it has started before, whatever the `--initial-*` flags now say.
/// Recovers raft's log and the store (published for every shard) from the data dir.
async fn recover_member(plan: &ShardPlan) -> Result<(Startup, Recovered, Store), String> {
    let first = match plan.first_start {
        Some(FirstStartPlan::Join) | None => FirstStart::Join,
        Some(FirstStartPlan::NewCluster) => FirstStart::NewCluster(&plan.cluster.initial),
    };
    let started = std::time::Instant::now();
    let mut rec = recover(
        &plan.paths,
        plan.configured.clone(),
        first,
        plan.force_new_cluster.then_some(&plan.cluster.me),
    )
    .await?;
    if !rec.fresh {
        tracing::info!(
            "recovered the snapshot at {} and the WAL to commit {} in {} ms",
            rec.applied,
            rec.commit,
            started.elapsed().as_millis()
        );
    }
    for w in &rec.warnings {
        tracing::warn!("{w}");
    }
    let store = rec.take_store(&plan.shared)?;
    let b = &rec.bootstrap;
    if !rec.fresh {
        tracing::info!(
            "restarting member {} in cluster {} from {} (snapshot at {}, commit {}); --initial-* flags are ignored",
            crate::cluster::id_hex(b.member_id),
            crate::cluster::id_hex(b.cluster_id),
            plan.paths.wal.display(),
            rec.applied,
            rec.commit
        );
    }
    // The name is --name of this start (as in etcd); the IDs are the WAL's.
    let mut member = plan.cluster.me.clone();
    member.id = b.member_id;
    let mut api = ApiShared::new(
        member,
        b.cluster_id,
        Arc::new(TransportStats::default()),
        plan.cors.clone(),
        plan.nshards,
    );
    api.discovery_service = plan.discovery_service.clone();
    let api = Arc::new(api);
    let startup = Startup {
        api,
        commit: rec.commit,
    };
    Ok((startup, rec, store))
}
