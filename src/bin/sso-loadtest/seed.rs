//! The Redis side of a run: seeding codes in the contract's format (pipelined), counting
//! commands from `INFO commandstats`, and removing the codes a run did not use. A standalone
//! Redis, the master that the sentinels name, or a Cluster (scripts/failover-load.sh): in those
//! two the seeded codes wait for a replica, and commands and CPU are not counted, since the
//! master changes (and a Cluster has several).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis;
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::sentinel::{SentinelClient, SentinelServerType};
use futures_util::future::try_join_all;
use indicatif::ProgressBar;
use sso_token::clock::unix_now;
use sso_token::codes;
use sso_token::config::{RedisMode, RedisSettings};
use sso_token::redact;
use sso_token::store::{Conn, Store};

use crate::plan::TokenPlan;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Redis {
    client: Source,
    conn: Conn,
    store: Store,
    /// `redis.url` with its password masked, for messages.
    url: String,
}

/// Where connections come from: one server, the master the sentinels name, or a Cluster.
enum Source {
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
    fn moving(&self) -> bool {
        !matches!(self.client, Source::Node(_))
    }

    /// Runs `cmds`: in one pipeline on a node's connection; in a Cluster, where one pipeline
    /// cannot span slots, each on its own, all at once over the connection's multiplexing.
    async fn run_all(&mut self, cmds: &[redis::Cmd]) -> redis::RedisResult<()> {
        match &self.conn {
            Conn::Node(_) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd.clone()).ignore();
                }
                pipe.query_async(&mut self.conn).await
            }
            Conn::Cluster(_) => {
                let conn = &self.conn;
                try_join_all(
                    cmds.iter()
                        .map(|cmd| async move { cmd.query_async::<()>(&mut conn.clone()).await }),
                )
                .await
                .map(drop)
            }
        }
    }

    /// Writes `count` fresh codes, `batch` `SET <prefix>code:<code> <json> EX <ttl>` per round trip.
    pub async fn seed(
        &mut self,
        plan: &TokenPlan,
        count: usize,
        ttl: u64,
        batch: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<Vec<String>> {
        let issued_at = unix_now();
        let mut codes = Vec::with_capacity(count);
        let mut sets = Vec::with_capacity(batch.min(count));
        for index in 0..count {
            let code = codes::new_code().map_err(|_| anyhow::anyhow!("no randomness available"))?;
            let record = serde_json::to_string(&plan.record(index, issued_at))?;
            let mut set = redis::cmd("SET");
            set.arg(self.store.code_key(&code))
                .arg(record)
                .arg("EX")
                .arg(ttl);
            sets.push(set);
            codes.push(code);
            if codes.len() % batch == 0 || codes.len() == count {
                self.run_all(&sets)
                    .await
                    .with_context(|| format!("seeding codes into {}", self.url))?;
                sets.clear();
                progress.set_position(codes.len() as u64);
            }
        }
        if self.moving() {
            // A failover must not lose codes that were never exchanged: a replica has them all
            // (in a Cluster, the redis crate asks every master and answers the lowest count).
            let acked: u32 = redis::cmd("WAIT")
                .arg(1)
                .arg(10_000)
                .query_async(&mut self.conn)
                .await
                .with_context(|| format!("WAIT on {}", self.url))?;
            anyhow::ensure!(acked >= 1, "no replica of {} took the codes", self.url);
        }
        Ok(codes)
    }

    /// Runs `cmd`; if it fails, runs it once more on a new connection (Redis may have been
    /// restarted during the run, as scripts/chaos.sh does).
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> anyhow::Result<T> {
        if let Ok(value) = cmd.query_async(&mut self.conn).await {
            return Ok(value);
        }
        self.conn = open(&mut self.client, &self.url).await?;
        cmd.query_async(&mut self.conn)
            .await
            .with_context(|| format!("{what} on {}", self.url))
    }

    /// Deletes codes a run never sent, so they do not linger until their TTL.
    pub async fn remove(&mut self, codes: &[String], batch: usize) -> anyhow::Result<()> {
        for part in codes.chunks(batch.max(1)) {
            let keys = part.iter().map(|code| self.store.code_key(code));
            if let Conn::Cluster(_) = self.conn {
                // Keys of many slots: one UNLINK each.
                let unlinks: Vec<redis::Cmd> = keys
                    .map(|key| redis::cmd("UNLINK").arg(key).clone())
                    .collect();
                self.run_all(&unlinks)
                    .await
                    .with_context(|| format!("removing unused codes from {}", self.url))?;
            } else {
                let unlink = redis::cmd("UNLINK").arg(keys.collect::<Vec<_>>()).clone();
                self.query::<()>(&unlink, "removing unused codes").await?;
            }
        }
        Ok(())
    }

    /// Calls per command name since the server started (`INFO commandstats`); none in Sentinel
    /// or Cluster mode.
    pub async fn command_calls(&mut self) -> anyhow::Result<BTreeMap<String, u64>> {
        let info = self.info("commandstats").await?;
        Ok(info
            .map(|info| parse_commandstats(&info))
            .unwrap_or_default())
    }

    /// The server's `run_id`, which changes when it restarts (its counters start again); none
    /// in Sentinel or Cluster mode, where the figures are not read at all.
    pub async fn run_id(&mut self) -> anyhow::Result<Option<String>> {
        let info = self.info("server").await?;
        Ok(info.and_then(|info| {
            (info.lines())
                .find_map(|line| line.strip_prefix("run_id:"))
                .map(|id| id.trim().to_owned())
        }))
    }

    /// CPU seconds the Redis server has used so far, when it tells (`INFO cpu`).
    pub async fn cpu_seconds(&mut self) -> anyhow::Result<Option<f64>> {
        let info = self.info("cpu").await?;
        Ok(info.and_then(|info| parse_cpu_seconds(&info)))
    }

    /// The counters as a run starts, for [`Self::used_since`].
    pub async fn counters(&mut self) -> anyhow::Result<Counters> {
        Ok(Counters {
            run_id: self.run_id().await?,
            calls: self.command_calls().await?,
            cpu_seconds: self.cpu_seconds().await?,
        })
    }

    /// What Redis did since `start`; `None` unless one Redis ran throughout.
    pub async fn used_since(&mut self, start: Counters) -> anyhow::Result<Option<Used>> {
        let after = self.command_calls().await?;
        let cpu_seconds = start
            .cpu_seconds
            .zip(self.cpu_seconds().await?)
            .map(|(b, a)| (a - b).max(0.0));
        // Figures only from one Redis that ran throughout (not Sentinel or Cluster, whose
        // master may change, nor across a restart, which resets the counters).
        let measured = start.run_id.is_some() && start.run_id == self.run_id().await?;
        Ok(measured.then(|| Used {
            calls: calls_between(&start.calls, &after),
            cpu_seconds,
        }))
    }

    /// One `INFO` section of the one server; none in Sentinel or Cluster mode, where the master
    /// may change during the run.
    async fn info(&mut self, section: &str) -> anyhow::Result<Option<String>> {
        if self.moving() {
            return Ok(None);
        }
        let what = format!("INFO {section}");
        let info = self.query(redis::cmd("INFO").arg(section), &what).await?;
        Ok(Some(info))
    }
}

/// Redis' counters at one moment ([`Redis::counters`]).
pub struct Counters {
    run_id: Option<String>,
    calls: BTreeMap<String, u64>,
    cpu_seconds: Option<f64>,
}

/// What Redis did over a run ([`Redis::used_since`]).
pub struct Used {
    /// Calls by command name, without the `INFO` calls that read them.
    pub calls: BTreeMap<String, u64>,
    /// Redis' own CPU time, when it tells.
    pub cpu_seconds: Option<f64>,
}

/// `url` is the redacted form, for messages only.
async fn open(client: &mut Source, url: &str) -> anyhow::Result<Conn> {
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

/// `used_cpu_sys` + `used_cpu_user` of `INFO cpu`: seconds of CPU Redis has used since it started.
fn parse_cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

/// `cmdstat_<name>:calls=<n>,usec=…` lines; subcommands keep their `|` (`script|load`).
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// What changed between two snapshots, without the `INFO` calls the snapshots made.
fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| {
            let delta = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (name.clone(), delta)
        })
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_info_becomes_seconds_of_cpu() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.500000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_cpu_seconds(info), Some(1.75));
        assert_eq!(parse_cpu_seconds("# CPU\r\n"), None);
    }

    #[test]
    fn commandstats_lines_become_calls_by_name() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=30,usec_per_call=2.50,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_script|load:calls=1,usec=9\r\n";
        let calls = parse_commandstats(info);
        assert_eq!(calls["evalsha"], 12);
        assert_eq!(calls["script|load"], 1);
        let mut later = calls.clone();
        later.insert("evalsha".into(), 20);
        later.insert("info".into(), 3);
        let delta = calls_between(&calls, &later);
        assert_eq!(delta.len(), 1);
        assert_eq!(delta["evalsha"], 8);
    }
}
