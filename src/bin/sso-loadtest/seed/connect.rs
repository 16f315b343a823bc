//! Reaching Redis, apart from what a run does there: one server, the sentinels' master, a Cluster.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis;
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::sentinel::{SentinelClient, SentinelServerType};
use sso_token::config::{RedisMode, RedisSettings};
use sso_token::redact;
use sso_token::store::{Conn, Store};

use super::Redis;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where connections come from: one server, the master the sentinels name, or a Cluster.
pub(super) enum Source {
    Node(redis::Client),
    Sentinel(SentinelClient),
    Cluster(ClusterClient),
}

impl Redis {
    /// Connects to the server's Redis (`redis.url`, or through `redis.sentinels`); key names
    /// come from the service's `Store`.
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let (mut client, url) = match settings.mode {
            RedisMode::Standalone => {
                // The redacted form, for messages only.
                let url = redact::redis_url(&settings.url);
                let client = redis::Client::open(settings.url.as_str())
                    .with_context(|| format!("redis.url `{url}`"))?;
                (Source::Node(client), url)
            }
            RedisMode::Sentinel => {
                let client = SentinelClient::build(
                    settings.sentinels.clone(),
                    settings.master_name.clone(),
                    None,
                    SentinelServerType::Master,
                )
                .context("redis.sentinels")?;
                (
                    Source::Sentinel(client),
                    format!("the master `{}`", settings.master_name),
                )
            }
            RedisMode::Cluster => {
                // A node that hangs must not hang seeding (the WAIT after it waits 10 s).
                let client = ClusterClientBuilder::new(settings.nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(Duration::from_secs(15))
                    .build()
                    .context("redis.nodes")?;
                (Source::Cluster(client), "the cluster".to_owned())
            }
        };
        let conn = open(&mut client, &url).await?;
        Ok(Self {
            client,
            conn,
            store: Store::new(settings)?,
            url,
        })
    }

    /// Sentinel and Cluster modes: a master may change during the run.
    pub(super) fn moving(&self) -> bool {
        !matches!(self.client, Source::Node(_))
    }
}

/// `url` is the redacted form, for messages only.
pub(super) async fn open(client: &mut Source, url: &str) -> anyhow::Result<Conn> {
    let connecting = async {
        match client {
            Source::Node(client) => client
                .get_multiplexed_async_connection()
                .await
                .map(Conn::Node),
            Source::Sentinel(client) => client.get_async_connection().await.map(Conn::Node),
            Source::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within 5 s"))?
        .with_context(|| url.to_owned())
}
