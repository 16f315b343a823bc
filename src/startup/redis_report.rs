//! What the start says of Redis once it answers: its version, and what would make exchanges
//! fail or guarantees lapse there; said again after an outage that Redis came back from as
//! another process. Apart from building the server, which it does not touch.

use std::time::Duration;

use crate::store::{Doubt, Fitness, Store};

/// How often the start's checks try a Redis that did not answer.
const RECHECK_REDIS: Duration = Duration::from_secs(2);

/// The server starts without Redis and recovers by itself; says so at once, not only at the
/// first 503. Once Redis answers (at start, or later) names it (its version) and what would
/// make exchanges fail there: too few replicas for `redis.replica_acks`, commands its user may
/// not run, a version before 7.0, or that it could not tell; and the settings the guarantees
/// need that it lacks. Then, for as long as the process runs, the same after each outage
/// that Redis came back from as another process.
pub(super) async fn report_redis_at_start(store: Store, target: String) {
    store.failovers_checked().await;
    // A Redis down at start is checked once it answers: it may be unfit all the same. Its
    // refusal of the credentials is said once, also after a Redis that did not answer at first
    // (started later, or back, without the service's user); that it does not answer, once and
    // not after such a refusal, which says what to mend.
    let (mut said_down, mut said_refused) = (false, false);
    while let Err(e) = store.ping().await {
        if e.is_refused_credentials() {
            if !said_refused {
                log::error!(
                    "Redis {target} refuses the service's credentials ({e}): exchanges get 503 \
                     and /readyz is 503 until redis.* gives a user and password it accepts"
                );
            }
            said_refused = true;
        } else if !said_down && !said_refused {
            log::warn!(
                "Redis {target} does not answer ({e}): exchanges get 503 and /readyz is 503 \
                 until it does; if this lasts, check redis.* (address, password, TLS, mode)"
            );
            said_down = true;
        }
        tokio::time::sleep(RECHECK_REDIS).await;
    }
    report_answering(&store, &target).await;
    let known = store.run_id().await;
    store.close_this_threads_lane();
    if let Ok(Some(known)) = known {
        report_after_outages(&store, &target, known).await;
    }
}

/// After each outage, says so when Redis came back as another process (its `run_id` changed:
/// restarted, or another master after a failover), and reports it as the start did: it may have
/// lost what it held, or run with other settings. Stops at the first `INFO` that Redis
/// refuses (an ACL, `rename-command`): each refusal could make another outage to end, and
/// another look; one it did not answer waits for the end of that outage.
async fn report_after_outages(store: &Store, target: &str, mut known: String) {
    loop {
        store.outage_ended().await;
        match store.run_id().await {
            Ok(Some(id)) if id != known => {
                log::warn!(
                    "Redis {target} is another process than before the outage (a restart, or \
                     another master after a failover): it holds what it loaded from disk or \
                     its master sent, and codes spent or tokens issued before may be back or \
                     gone; its report follows"
                );
                report_answering(store, target).await;
                known = id;
            }
            Ok(_) => {}
            Err(e) if e.is_unanswered() => {}
            Err(e) => {
                log::debug!("Redis {target}: INFO server refused ({e}); no more reports");
                return;
            }
        }
        store.close_this_threads_lane();
    }
}

/// What the start says of a Redis that answers: its version, or why it cannot run the
/// exchange; a shortfall of replicas; the settings the guarantees need that it lacks.
async fn report_answering(store: &Store, target: &str) {
    // First: the fitness check fails with an error reply on an unfit Redis, which counts as
    // a failed call, and a call that succeeds after it would say Redis answers again.
    report_durability(store, target).await;
    // Both asked before either is said: once the version is logged, so is a shortfall of
    // replicas.
    let (fitness, replicas_short) = (store.fitness().await, store.replicas_short().await);
    if let Some((connected, asked)) = replicas_short {
        log::error!(
            "Redis {target}: redis.replica_acks is {asked}, but the master has \
             {connected} replica(s) connected: until {asked} are, every exchange \
             spends its code and answers 503 (lower redis.replica_acks, or 0 \
             without replicas)"
        );
    }
    match fitness {
        Ok(Fitness::Runs { version }) => {
            log::info!("Redis {target}: version {version}")
        }
        Ok(Fitness::Refused { version, commands }) => log::error!(
            "Redis {target}: version {version}, but its user may not run {} on the \
             service's keys: what needs them gets 503 (exchanges EVALSHA, and EVAL \
             where Redis lacks the script, GETDEL, SET, GET; revocations, replays and \
             codes of another Redis type DEL; the throttle EVAL, INCR, PEXPIRE, PTTL; \
             redis.replica_acks WAIT); grant them (ACL SETUSER)",
            commands.join(", ")
        ),
        Ok(Fitness::Cannot(problem)) => log::error!("Redis {target}: {problem}"),
        // It answered PING, so not an outage: e.g. a command the exchange needs renamed
        // away (`rename-command`), which the check's `acl_check_cmd` refuses to name.
        Err(e) => log::warn!(
            "Redis {target}: could not check that it can run the exchange ({e}); if \
             exchanges get 503, check its rename-command and ACL settings"
        ),
    }
}

/// Says which of the Redis settings that the guarantees need it lacks (`store::durability`):
/// nothing else would tell until codes are lost or come back.
async fn report_durability(store: &Store, target: &str) {
    let doubts = match store.durability().await {
        Ok(doubts) => doubts,
        // A user refused `INFO` (managed Redis, a tight ACL): nothing is known.
        Err(e) => {
            log::debug!("Redis {target}: its settings could not be read with INFO: {e}");
            return;
        }
    };
    for doubt in doubts {
        match doubt {
            Doubt::Evicts { policy } => log::warn!(
                "Redis {target}: maxmemory-policy is {policy} with maxmemory set: short of \
                 memory it evicts codes (a user's fresh code answered invalid_grant) and live \
                 token records (their tokens turn inactive, and a replay of their code goes \
                 unseen); set maxmemory-policy noeviction, under which a full Redis refuses \
                 exchanges with 503 and spends no code"
            ),
            Doubt::NoAppendOnly => log::warn!(
                "Redis {target}: appendonly is off: after a crash it restarts from its last \
                 snapshot, if any, where a code spent since can be exchanged again (a second \
                 token for one code) and later tokens are gone; set appendonly yes (replicas \
                 with redis.replica_acks do not replace it: a master restarted before a \
                 failover resyncs them to what it lost)"
            ),
        }
    }
}
