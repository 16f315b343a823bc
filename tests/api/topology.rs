//! Real Redis topologies on loopback for the tests: a 3-master Cluster and a Sentinel set-up
//! (master + replica + 3 sentinels), each started by the harness in a few seconds and bounded by
//! timeouts. `each_topology!` runs one test body against standalone, Sentinel and Cluster.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::config::{RedisMode, RedisSettings};
use uuid::Uuid;

use crate::redis_server::{HeldPort, RedisServer};

/// How long a topology may take to come up before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
pub const MASTER_NAME: &str = "sso-master";

#[derive(Debug, Clone, Copy)]
pub enum Topology {
    Standalone,
    Sentinel,
    Cluster,
}

impl Topology {
    /// Points `settings` at this process's shared instance of the topology, starting it first.
    pub fn configure(self, settings: &mut RedisSettings) {
        match self {
            Self::Standalone => {}
            Self::Sentinel => shared_sentinel().configure(settings),
            Self::Cluster => shared_cluster().configure(settings),
        }
    }
}

/// Instances of one test's own, of a topology: for a test that changes what is not under its
/// key prefix (the script cache, the configuration), which the shared instances must not see.
pub enum OwnRedis {
    Standalone(RedisServer),
    Sentinel(SentinelSet),
    Cluster(Cluster),
}

impl OwnRedis {
    pub async fn start(topology: Topology) -> Self {
        let starting = tokio::task::spawn_blocking(move || match topology {
            Topology::Standalone => Self::Standalone(RedisServer::start()),
            Topology::Sentinel => Self::Sentinel(SentinelSet::start()),
            Topology::Cluster => Self::Cluster(Cluster::start()),
        });
        starting.await.expect("the instances started")
    }

    pub fn configure(&self, settings: &mut RedisSettings) {
        match self {
            Self::Standalone(redis) => settings.url = redis.url(),
            Self::Sentinel(set) => set.configure(settings),
            Self::Cluster(cluster) => cluster.configure(settings),
        }
    }

    /// The ports of the instances that hold data (not the sentinels).
    pub fn data_ports(&self) -> Vec<u16> {
        let nodes = match self {
            Self::Standalone(redis) => std::slice::from_ref(redis),
            Self::Sentinel(set) => &set.data_nodes[..],
            Self::Cluster(cluster) => &cluster.nodes[..],
        };
        nodes.iter().map(RedisServer::port).collect()
    }
}

/// For each `async fn <name>(Topology)`, a module `<name>` with the tests `on_standalone`,
/// `on_sentinel` and `on_cluster`: one body, run against every topology.
#[macro_export]
macro_rules! each_topology {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::topology::Topology;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_standalone() {
                super::$name(Topology::Standalone).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sentinel() {
                super::$name(Topology::Sentinel).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_cluster() {
                super::$name(Topology::Cluster).await;
            }
        }
    )+};
}

fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// Fails over on no test's demand, so its sentinels wait out a long stall of a busy machine
/// (the tests that fail over start sets of their own).
fn shared_sentinel() -> &'static SentinelSet {
    static SENTINEL: OnceLock<SentinelSet> = OnceLock::new();
    SENTINEL.get_or_init(|| SentinelSet::start_set(|port| port, STEADY_DOWN_AFTER_MS))
}

/// A directory under the target's temp dir, removed by the wrapper of the process using it.
fn scratch_dir(what: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{what}-{}-{}",
        std::process::id(),
        Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Calls `probe` until it says yes; panics with `what` after [`READY_TIMEOUT`].
pub fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !probe() {
        assert!(
            Instant::now() < deadline,
            "not ready after {READY_TIMEOUT:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `replicas` replicas of the master on `port` acknowledge its writes: what a test of
/// `redis.replica_acks` needs. `state=online` in the master's `INFO replication` is not enough:
/// Valkey 9 shows a replica online up to a second before it has loaded its copy and
/// acknowledges anything (its `WAIT`s then time out).
pub fn replicas_acknowledge(port: u16, replicas: usize) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    if conn.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
        return false;
    }
    // A key in one of the master's slots: a Cluster node refuses the others (MOVED).
    let written = sso_token::store::keys::slot_tags()
        .iter()
        .step_by(512)
        .any(|tag| {
            let key = format!("{{{}}}replicas-acknowledge", String::from_utf8_lossy(tag));
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .query::<()>(&mut conn)
                .is_ok()
        });
    written
        && redis::cmd("WAIT")
            .arg(replicas)
            .arg(100)
            .query::<usize>(&mut conn)
            .is_ok_and(|acked| acked >= replicas)
}

/// One command to the instance on `port`, bounded in time; `None` on any error.
pub fn query<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> Option<T> {
    query_as(port, None, command)
}

/// [`query`] to an instance that wants `password`, when given.
pub fn query_as<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    command: &redis::Cmd,
) -> Option<T> {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{port}")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    command.query(&mut conn).ok()
}

/// Three masters, no replicas unless [`Cluster::add_replica`] adds one, all 16384 slots
/// assigned (`redis-cli --cluster create`).
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
    /// Replicas added later (not seeds: `configure` lists the masters).
    pub replicas: Vec<RedisServer>,
    /// The nodes' bus ports, held while they live so that no other test can take one.
    bus_ports: Vec<HeldPort>,
}

/// A cluster-enabled redis-server whose bus port is `held`.
fn cluster_node(held: &HeldPort) -> RedisServer {
    let dir = scratch_dir("cluster-node");
    let dir_arg = dir.display().to_string();
    // The bus port would otherwise be the port + 10000: a port nobody checked.
    let bus_port = held.port().to_string();
    RedisServer::start_with(
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus_port,
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            // A master the tests freeze or kill costs only its own slots, however slowly the
            // test runs past the node timeout (by default the cluster then refuses every key).
            "--cluster-require-full-coverage",
            "no",
            "--dir",
            &dir_arg,
        ],
        Some(&dir),
    )
}

impl Cluster {
    pub fn start() -> Self {
        let bus_ports: Vec<HeldPort> = (0..3).map(|_| HeldPort::new()).collect();
        let nodes: Vec<RedisServer> = bus_ports.iter().map(cluster_node).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        run_bounded(
            Command::new(redis_cli())
                .args(["--cluster", "create"])
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
        );
        for node in &nodes {
            wait_until("cluster_state:ok on every node", || {
                query::<String>(node.port(), redis::cmd("CLUSTER").arg("INFO"))
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
        }
        Self {
            nodes,
            replicas: Vec::new(),
            bus_ports,
        }
    }

    /// Adds a replica to master `master` (`redis-cli --cluster add-node --cluster-slave`) and
    /// waits until it is in sync.
    pub fn add_replica(&mut self, master: usize) {
        let held = HeldPort::new();
        let replica = cluster_node(&held);
        let master_port = self.nodes[master].port();
        let id: String = query(master_port, redis::cmd("CLUSTER").arg("MYID")).expect("MYID");
        run_bounded(
            Command::new(redis_cli())
                .args(["--cluster", "add-node"])
                .arg(format!("127.0.0.1:{}", replica.port()))
                .arg(format!("127.0.0.1:{master_port}"))
                .args(["--cluster-slave", "--cluster-master-id", &id]),
        );
        wait_until("the cluster replica is in sync", || {
            replicas_acknowledge(master_port, 1)
        });
        self.replicas.push(replica);
        self.bus_ports.push(held);
    }

    pub fn configure(&self, settings: &mut RedisSettings) {
        settings.mode = RedisMode::Cluster;
        settings.nodes = self.nodes.iter().map(RedisServer::url).collect();
    }
}

/// A master and two replicas that refuse writes without a replica (`min-replicas-to-write 1`:
/// what keeps a demoted master from taking writes that the failover would lose, while the new
/// master keeps the other replica), and three sentinels with short timeouts.
pub struct SentinelSet {
    pub sentinels: Vec<RedisServer>,
    /// The master as started, then its two replicas; dropping one stops it.
    pub data_nodes: Vec<RedisServer>,
}

impl SentinelSet {
    /// A set of its own that a test does not fail over: a stall of the busy machine must not
    /// fail it over either.
    pub fn start() -> Self {
        Self::start_set(|port| port, STEADY_DOWN_AFTER_MS)
    }

    /// A set of its own that fails over soon after its master goes silent.
    pub fn start_to_fail_over() -> Self {
        Self::start_set(|port| port, DOWN_AFTER_MS)
    }

    /// A set of its own whose master is reached (by its replicas, the sentinels and so the
    /// service) through the port `front` returns for the master's port: a proxy in front of
    /// it. The test fails it over with `SENTINEL FAILOVER`; a stall of the busy machine must
    /// not start a failover before that (its fence would refuse the call the proxy waits for).
    pub fn start_behind(front: impl FnOnce(u16) -> u16) -> Self {
        Self::start_set(front, STEADY_DOWN_AFTER_MS)
    }

    /// `down_after_ms`: how long the sentinels wait for a silent master before failing over.
    fn start_set(front: impl FnOnce(u16) -> u16, down_after_ms: u64) -> Self {
        let master = data_node(&[]);
        let front_port = front(master.port());
        let master_port = front_port.to_string();
        let replica_of = ["--replicaof", "127.0.0.1", master_port.as_str()];
        let replicas = [data_node(&replica_of), data_node(&replica_of)];
        wait_until("both replicas are in sync", || {
            replicas_acknowledge(master.port(), 2)
        });
        let sentinels = (0..3)
            .map(|_| {
                let dir = scratch_dir("sentinel");
                let config = dir.join("sentinel.conf");
                let conf = sentinel_conf(front_port, down_after_ms);
                std::fs::write(&config, conf).expect("sentinel.conf");
                RedisServer::start_config(Some(&config), &["--sentinel"], Some(&dir))
            })
            .collect::<Vec<_>>();
        for sentinel in &sentinels {
            wait_until("every sentinel knows the master and the replica", || {
                sentinel_master(sentinel.port()) == Some(front_port)
                    && query::<Vec<redis::Value>>(
                        sentinel.port(),
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
                    )
                    .is_some_and(|replicas| !replicas.is_empty())
            });
        }
        let [first, second] = replicas;
        Self {
            sentinels,
            data_nodes: vec![master, first, second],
        }
    }

    pub fn configure(&self, settings: &mut RedisSettings) {
        settings.mode = RedisMode::Sentinel;
        settings.sentinels = self.sentinels.iter().map(RedisServer::url).collect();
        settings.master_name = MASTER_NAME.into();
    }

    /// Puts `password` on every data node (and tells the sentinels), as a production set-up
    /// has one. Done once all is up: the start-up probes of the harness use no password.
    pub fn protect(&self, password: &str) {
        for node in &self.data_nodes {
            for (setting, value) in [("masterauth", password), ("requirepass", password)] {
                let command = redis::cmd("CONFIG")
                    .arg("SET")
                    .arg(setting)
                    .arg(value)
                    .clone();
                let done: Option<String> = query(node.port(), &command);
                assert_eq!(done.as_deref(), Some("OK"), "CONFIG SET {setting}");
            }
        }
        for sentinel in &self.sentinels {
            let command = redis::cmd("SENTINEL")
                .arg("SET")
                .arg(MASTER_NAME)
                .arg("auth-pass")
                .arg(password)
                .clone();
            let done: Option<String> = query(sentinel.port(), &command);
            assert_eq!(done.as_deref(), Some("OK"), "SENTINEL SET auth-pass");
        }
    }

    /// The master's port according to the first sentinel.
    pub fn current_master(&self) -> Option<u16> {
        sentinel_master(self.sentinels[0].port())
    }
}

/// A master or replica in a directory of its own: a replica writes the dump.rdb it receives,
/// which must not land where other test instances would load it at start.
fn data_node(extra: &[&str]) -> RedisServer {
    let dir = scratch_dir("sentinel-data");
    let dir_arg = dir.display().to_string();
    let mut flags = MASTER_FLAGS.to_vec();
    flags.extend(["--dir", dir_arg.as_str()]);
    flags.extend(extra);
    RedisServer::start_with(&flags, Some(&dir))
}

/// Every data node gets these, so that a promoted replica protects itself the same way; no
/// delay before a full sync (the default waits 5 s for more replicas).
const MASTER_FLAGS: [&str; 6] = [
    "--min-replicas-to-write",
    "1",
    "--min-replicas-max-lag",
    "5",
    "--repl-diskless-sync-delay",
    "0",
];

/// A test's own set fails over soon after it stops its master.
const DOWN_AFTER_MS: u64 = 1000;
/// The shared set's, and that of a set a test does not fail over: a stall of a busy 2-core
/// machine must not fail it over.
const STEADY_DOWN_AFTER_MS: u64 = 5000;

fn sentinel_conf(master_port: u16, down_after_ms: u64) -> String {
    format!(
        "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
         sentinel failover-timeout {MASTER_NAME} 3000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n"
    )
}

/// The master port that the sentinel on `port` reports.
pub fn sentinel_master(port: u16) -> Option<u16> {
    let address: Vec<String> = query(
        port,
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME),
    )?;
    address.get(1)?.parse().ok()
}

/// The master port in the sentinel's `SENTINEL MASTERS` on `port`: what a client's look-up
/// reads (`GET-MASTER-ADDR-BY-NAME` names a promoted replica earlier, while a failover runs).
pub fn sentinel_masters_entry(port: u16) -> Option<u16> {
    let masters: Vec<std::collections::HashMap<String, String>> =
        query(port, redis::cmd("SENTINEL").arg("MASTERS"))?;
    let ours = masters
        .iter()
        .find(|master| master.get("name").is_some_and(|name| name == MASTER_NAME))?;
    ours.get("port")?.parse().ok()
}

/// How often the instance on `port` was asked to run a script (`EVAL`, `EVALSHA`, `SCRIPT`),
/// refused or not (`INFO commandstats`); `password`: the instance's, if it has one.
pub fn script_calls(port: u16, password: Option<&str>) -> u64 {
    let info: String = query_as(port, password, redis::cmd("INFO").arg("commandstats"))
        .unwrap_or_else(|| panic!("INFO commandstats of the instance on {port}"));
    info.lines()
        .filter(|line| {
            ["cmdstat_eval:", "cmdstat_evalsha:", "cmdstat_script"]
                .iter()
                .any(|name| line.starts_with(name))
        })
        .flat_map(|line| line.split([':', ',']))
        .filter_map(|field| field.split_once('='))
        .filter(|(name, _)| ["calls", "rejected_calls", "failed_calls"].contains(name))
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum()
}

/// How many `kind` error replies (`NOAUTH`, say) the instance on `port` gave (`INFO errorstats`).
pub fn error_replies(port: u16, password: Option<&str>, kind: &str) -> u64 {
    let info: String = query_as(port, password, redis::cmd("INFO").arg("errorstats"))
        .unwrap_or_else(|| panic!("INFO errorstats of the instance on {port}"));
    let prefix = format!("errorstat_{kind}:count=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

fn redis_cli() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// Runs `command` to completion, killing it and failing the test after [`READY_TIMEOUT`].
fn run_bounded(command: &mut Command) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli must be on PATH (or set REDIS_CLI)");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for redis-cli") {
            assert!(status.success(), "{command:?} failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
