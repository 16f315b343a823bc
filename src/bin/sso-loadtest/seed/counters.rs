//! Redis' figures around a run (`INFO`), apart from the seeding: commands and CPU, one server only.

use std::collections::BTreeMap;

use deadpool_redis::redis;

use super::info::{calls_between, parse_commandstats, parse_cpu_seconds};
use super::{Counters, Redis, Used};

impl Redis {
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
