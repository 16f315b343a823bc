//! `redis.tcp_keepalive_secs`: the service's connections to Redis carry TCP keepalive, on every
//! topology, so that a quiet lane keeps its flow in NAT tables and a vanished peer is found.
//! Read from the kernel's socket table (`/proc/net/tcp`), where a socket with keepalive on has
//! its keepalive timer pending; each test starts its own Redis, so that every client-side
//! socket to its ports is this test's, and the test's own connections (code writes) have
//! keepalive off, so that a timer found is the server's.

use crate::helpers::{APP, TestApp, spawn_app_with};
use crate::metrics;
use crate::redis_server::RedisServer;
use crate::topology::{Cluster, SentinelSet};

/// Short and odd: no other client of these servers has a keepalive timer this close (Redis'
/// own links, sentinels' and replicas', use its `tcp-keepalive`, 300 s).
const KEEPALIVE_SECS: u64 = 7;

/// Once the first probe has gone (after 7 s idle: a slow machine may get there between the
/// exchange and the reading), the timer runs for the 10 s between probes; and it may read a
/// little over its setting (the kernel counts in ticks).
const LIMIT_SECS: f64 = 10.5;

#[tokio::test]
async fn a_standalone_connection_has_keepalive_and_none_when_it_is_off() {
    let redis = RedisServer::start();
    let app = exchanged(|s| {
        s.redis.url = redis.url();
        s.redis.tcp_keepalive_secs = KEEPALIVE_SECS;
    })
    .await;
    assert_keepalive(&[redis.port()]);
    drop(app);

    let other = RedisServer::start();
    let app = exchanged(|s| {
        s.redis.url = other.url();
        s.redis.tcp_keepalive_secs = 0;
    })
    .await;
    // Not vacuous: the server holds a connection (the test's own ones are in the table too).
    let exposition = metrics::scrape(&app, &app.address).await;
    let held = metrics::value(&exposition, "sso_redis_connections");
    assert!(held >= 1.0, "the server holds {held} Redis connections");
    let sockets = client_sockets(&[other.port()]);
    assert!(!sockets.is_empty(), "no connection to {}", other.port());
    let timers: Vec<f64> = sockets.into_iter().flatten().collect();
    assert!(timers.is_empty(), "keepalive is off, yet: {timers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_found_master_connection_has_keepalive() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    let _app = exchanged(|s| {
        set.configure(&mut s.redis);
        s.redis.tcp_keepalive_secs = KEEPALIVE_SECS;
    })
    .await;
    let ports: Vec<u16> = set.data_nodes.iter().map(RedisServer::port).collect();
    assert_keepalive(&ports);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_connections_have_keepalive() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let _app = exchanged(|s| {
        cluster.configure(&mut s.redis);
        s.redis.tcp_keepalive_secs = KEEPALIVE_SECS;
    })
    .await;
    let ports: Vec<u16> = cluster.nodes.iter().map(RedisServer::port).collect();
    assert_keepalive(&ports);
}

/// An app configured by `configure` that has exchanged one code (so it holds a lane).
async fn exchanged(configure: impl FnOnce(&mut sso_token::config::Settings)) -> TestApp {
    let app = spawn_app_with(configure).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    app
}

/// Some client-side socket to one of `ports` has a keepalive timer due within
/// [`LIMIT_SECS`].
fn assert_keepalive(ports: &[u16]) {
    let timers = keepalive_timers(ports);
    assert!(
        timers.iter().any(|&due| due <= LIMIT_SECS),
        "no connection to {ports:?} has a keepalive timer within {LIMIT_SECS} s: {timers:?}"
    );
}

/// Seconds until the keepalive timer fires, of every established socket on this machine whose
/// remote port is one of `ports` and that has one pending.
fn keepalive_timers(ports: &[u16]) -> Vec<f64> {
    client_sockets(ports).into_iter().flatten().collect()
}

/// Every established socket on this machine whose remote port is one of `ports`: seconds until
/// its keepalive timer fires, if one is pending (`tr` 2 in `/proc/net/tcp{,6}`; `tm->when` in
/// clock ticks, 100 a second).
fn client_sockets(ports: &[u16]) -> Vec<Option<f64>> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| table.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields.get(2)?.rsplit(':').next()?;
            let remote_port = u16::from_str_radix(remote_port, 16).ok()?;
            let established = *fields.get(3)? == "01";
            let (timer, due) = fields.get(5)?.split_once(':')?;
            let due = u64::from_str_radix(due, 16).ok()?;
            (established && ports.contains(&remote_port))
                .then_some((timer == "02").then_some(due as f64 / 100.0))
        })
        .collect()
}
