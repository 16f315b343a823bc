//! The text of `INFO cpu` and `INFO commandstats` read into numbers: no I/O, so tested on strings.

use std::collections::BTreeMap;

/// `used_cpu_sys` + `used_cpu_user` of `INFO cpu`: seconds of CPU Redis has used since it started.
pub(super) fn parse_cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

/// `cmdstat_<name>:calls=<n>,usec=…` lines; subcommands keep their `|` (`script|load`).
pub(super) fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
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
pub(super) fn calls_between(
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
