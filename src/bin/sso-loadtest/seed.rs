//! The Redis side of a run: seeding codes in the contract's format (pipelined), counting
//! commands from `INFO commandstats`, and removing the codes a run did not use. A standalone
//! Redis, the master that the sentinels name, or a Cluster (scripts/failover-load.sh): in those
//! two the seeded codes wait for a replica, and commands and CPU are not counted, since the
//! master changes (and a Cluster has several).

mod connect;
mod counters;
mod info;

use std::collections::BTreeMap;

use anyhow::Context;
use deadpool_redis::redis;
use futures_util::future::try_join_all;
use indicatif::ProgressBar;
use sso_token::clock::unix_now;
use sso_token::issue_code;
use sso_token::store::{Conn, Store};

use crate::plan::TokenPlan;
use connect::{Source, open};

pub struct Redis {
    client: Source,
    conn: Conn,
    store: Store,
    /// `redis.url` with its password masked, for messages.
    url: String,
}

impl Redis {
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
            let code =
                issue_code::new_code().map_err(|_| anyhow::anyhow!("no randomness available"))?;
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
