//! The standard `process_*` series: prometheus' own collector, with
//! `process_cpu_seconds_total` to the clock tick. Its collector counts whole seconds
//! (tikv/rust-prometheus#451), so `rate()` of a lightly loaded replica reads 0, then a step.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::{Counter, MetricFamily};

const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// Resident memory, open and most file descriptors, CPU seconds, threads, start time: read
/// from /proc at each scrape.
pub(super) struct ProcessSeries(ProcessCollector);

impl ProcessSeries {
    pub(super) fn for_self() -> Self {
        Self(ProcessCollector::for_self())
    }
}

impl Collector for ProcessSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.0.collect();
        let Some(seconds) = cpu_seconds() else {
            return families;
        };
        for family in families.iter_mut().filter(|f| f.name() == CPU_SECONDS) {
            for metric in family.mut_metric() {
                let mut counter = Counter::default();
                counter.set_value(seconds);
                metric.set_counter(counter);
            }
        }
        families
    }
}

/// User and system CPU time of the process so far, in seconds, to the clock tick.
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = stat.utime.saturating_add(stat.stime);
    Some(ticks as f64 / procfs::ticks_per_second() as f64)
}
