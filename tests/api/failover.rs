//! A Sentinel failover while exchanges stream in: the clients see only 200s and 503s, the
//! service finds the new master by itself within seconds, and no code is exchanged twice.
//! The test runs its own Sentinel set-up, which it fails over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::config::Settings;
use sso_token::oauth::Sensitive;
use tokio::task::JoinSet;

use crate::helpers::{APP, Answer, TestApp, code_record, spawn_app_at_once_with, spawn_app_with};
use crate::topology::{
    MASTER_NAME, SentinelSet, error_replies, query, script_calls, sentinel_master,
    sentinel_masters_entry, wait_until,
};

const STREAMS: usize = 4;
/// Redis trouble must turn into a 503 this fast, so a failover costs few requests.
const TIMEOUT_MS: u64 = 300;
/// The service must be back to 200s this soon after the failover was asked for.
const RECOVERY: Duration = Duration::from_secs(10);
/// How long the streams go on at least after the sentinels report the new master, and at most
/// past [`RECOVERY`] for the exchanges that must succeed after the last 503.
const AFTERMATH: Duration = Duration::from_secs(2);
/// Exchanges that must succeed after the last 503.
const HEALED: usize = 20;

/// One exchange of the stream: its code, when it was answered and with what status.
pub struct Outcome {
    pub code: String,
    pub at: Instant,
    pub status: u16,
    pub text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_mid_stream_costs_only_503s_and_heals_by_itself() {
    let set = Arc::new(blocking(SentinelSet::start_to_fail_over).await);
    let app = Arc::new(
        spawn_app_with(|s| {
            on_set(&set, s);
            s.server.workers = 2;
        })
        .await,
    );
    let old_master = set.current_master().expect("a master");
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut streams = JoinSet::new();
    for _ in 0..STREAMS {
        let (app, stop, outcomes) = (Arc::clone(&app), Arc::clone(&stop), Arc::clone(&outcomes));
        streams.spawn(async move { stream(&app, &stop, &outcomes).await });
    }

    // Mid-stream: the failover begins once the streams are being served (on a loaded machine
    // the first answers may take more than a fixed wait would give them).
    let serving_by = Instant::now() + RECOVERY;
    while !outcomes.lock().unwrap().iter().any(|o| o.status == 200) {
        assert!(
            Instant::now() < serving_by,
            "no exchange served in {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failover_at = Instant::now();
    start_failover(&set).await;
    let sentinels = Arc::clone(&set);
    blocking(move || {
        wait_until("the sentinels report the new master", || {
            sentinels.current_master().is_some_and(|m| m != old_master)
        });
    })
    .await;
    // At least AFTERMATH more; then until HEALED exchanges succeeded after the last 503,
    // however late it came (a slow machine stretches the 503s), or until AFTERMATH past
    // RECOVERY (503s that late fail below).
    let settled = Instant::now() + AFTERMATH;
    let deadline = (failover_at + RECOVERY).max(settled) + AFTERMATH;
    loop {
        let now = Instant::now();
        let healed = healed_since_last_503(&outcomes.lock().unwrap());
        if now >= deadline || (now >= settled && healed >= HEALED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    streams.join_all().await;
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    let unexpected: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status != 200 && o.status != 503)
        .map(|o| format!("{} {}", o.status, o.text))
        .collect();
    assert!(unexpected.is_empty(), "not 200 or 503: {unexpected:?}");
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 503).collect();
    // The failover refuses exchanges for a while (the fence, from `+try-failover` to
    // `+switch-master`, 100 ms and more; then connections cut by the reconfiguration) while
    // four streams keep sending: none refused means the streams never met it, and the checks
    // below would pass on luck. That the fence itself closes is the next tests' (`/readyz`).
    assert!(
        failed.iter().any(|o| o.at >= failover_at),
        "no 503 during the failover: the streams never met it"
    );
    let last_failure = failed.last().map_or(failover_at, |o| o.at);
    assert!(
        last_failure.duration_since(failover_at) < RECOVERY,
        "503s went on for {:?} after the failover",
        last_failure.duration_since(failover_at)
    );
    let healed = healed_since_last_503(&outcomes);
    assert!(
        healed >= HEALED,
        "only {healed} exchanges succeeded after the last 503"
    );
    assert_ne!(set.current_master(), Some(old_master));

    // Now that the new master is settled.
    assert_no_code_twice(&app, &outcomes).await;
    eprintln!(
        "failover: {} exchanges, {} answered 503 over {:?}",
        outcomes.len(),
        failed.len(),
        failed
            .first()
            .map(|first| last_failure.duration_since(first.at))
            .unwrap_or_default()
    );
}

/// A watcher that is reconnecting when its sentinel starts a failover misses the only
/// `+try-failover` of it (the others announce nothing until the switch): on reconnecting it
/// asks the sentinel, and the fence closes all the same. (Before, it stayed open through the
/// failover, and exchanges took codes on the outgoing master: 674 codes exchanged twice in a
/// review's run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_begun_while_a_watcher_reconnects_closes_the_fence() {
    let set = Arc::new(blocking(SentinelSet::start_to_fail_over).await);
    let app = spawn_app_with(|s| on_set(&set, s)).await;
    let leader = set.sentinels[0].port();
    blocking(move || {
        wait_until("the watchers of both stores", || {
            pattern_subscribers(leader) >= 2
        });
    })
    .await;
    assert_eq!(status(&app, "/readyz").await, 200);

    // The leader's watchers are cut, and it starts the failover before they are back.
    let _: Option<u32> = query(
        leader,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"),
    );
    start_failover(&set).await;

    let started = Instant::now();
    while status(&app, "/readyz").await != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the fence stayed open through a failover its watcher missed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A replica started while a failover is under way (a rolling deploy, a restart) subscribed
/// after the `+try-failover` that only the leader announced: it asks every sentinel before it
/// serves, and answers 503 until the switch, running no exchange on the outgoing master.
/// (Before, it ran them there, through a look-up via a sentinel not leading the failover: a
/// review's run exchanged 589 codes twice.) An unknown code shows where the script ran as well
/// as a real one would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_during_a_failover_runs_nothing_on_the_outgoing_master() {
    let set = Arc::new(blocking(SentinelSet::start_to_fail_over).await);
    let old_master = set.current_master().expect("a master");
    let before = blocking(move || script_calls(old_master, None)).await;

    start_failover(&set).await;
    let app = spawn_app_at_once_with(|s| on_set(&set, s));
    let started = Instant::now();
    let mut statuses = Vec::new();
    // Three seconds, and on until an exchange ran somewhere (a 400 for the unknown code): a
    // replica that never served would run nothing on the outgoing master either.
    while started.elapsed() < Duration::from_secs(3) || !statuses.contains(&400) {
        assert!(
            started.elapsed() < RECOVERY,
            "no exchange ran in {RECOVERY:?}: {statuses:?}"
        );
        let answer = app.exchange(&APP, "OC-1-NoSuchCodeDuringAFailover").await;
        statuses.push(answer.status().as_u16());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let after = blocking(move || script_calls(old_master, None)).await;
    assert_eq!(after - before, 0, "exchanges ran on the outgoing master");
    assert!(
        statuses.iter().all(|s| matches!(s, 400 | 503)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "never fenced: {statuses:?}");
}

async fn status(app: &TestApp, path: &str) -> u16 {
    let asked = app
        .http
        .get(app.url(path))
        .timeout(Duration::from_secs(2))
        .send();
    asked.await.map_or(0, |r| r.status().as_u16())
}

/// The fence follows the sentinels from the start, not from the first request: an exchange
/// that is the server's first Redis operation, made while a failover is under way, is a 503.
/// (Watchers started by that first operation subscribed after `+try-failover` and let it
/// through to the outgoing master, where what it took could be lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_before_the_first_request_is_fenced_all_the_same() {
    let set = Arc::new(blocking(SentinelSet::start_to_fail_over).await);
    let app = spawn_app_with(|s| on_set(&set, s)).await;
    let code = app.write_code(&code_record(&APP)).await;
    let old_master = set.current_master().expect("a master");
    // Before anything else: every sentinel has the watchers of both stores (the server's and
    // the test's own, each psubscribed to all its events), started with the app, not by a
    // request; and both replicas have the code, so that the failover cannot lose it.
    let (watched, key) = (Arc::clone(&set), app.store.code_key(&code));
    blocking(move || {
        wait_until("every sentinel has both stores' watchers", || {
            watched
                .sentinels
                .iter()
                .all(|sentinel| pattern_subscribers(sentinel.port()) >= 2)
        });
        wait_until("both replicas have the code", || {
            watched
                .data_nodes
                .iter()
                .filter(|node| node.port() != old_master)
                .all(|node| query::<u32>(node.port(), redis::cmd("EXISTS").arg(&key)) == Some(1))
        });
    })
    .await;

    start_failover(&set).await;
    // Sentinel sends `REPLICAOF NO ONE` 100 ms or more after `+try-failover`, and announces the
    // new master hundreds of milliseconds later: this exchange falls between the two, once the
    // app has heard of the failover (readiness goes through the same fence, and spends nothing).
    let heard = Instant::now();
    while app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 503
    {
        assert!(
            heard.elapsed() < Duration::from_secs(2),
            "no failover heard of"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(during.status, 503, "{}", during.text);

    let sentinels = Arc::clone(&set);
    blocking(move || {
        wait_until("every sentinel reports the new master", || {
            sentinels
                .sentinels
                .iter()
                .all(|s| sentinel_master(s.port()).is_some_and(|m| m != old_master))
        });
    })
    .await;
    // A new master refuses writes until a replica follows it (`min-replicas-to-write`): 503s
    // for a while. Never a second token: the code is exchanged now, or (had an attempt been
    // under way when a sentinel's `+switch-master` moved the fence: a 503 that may have spent
    // it, README) refused.
    let after = exchange_once_served(&app, &code, RECOVERY).await;
    // A lost code would be "invalid, expired or already used": the replicas had it.
    let spent = after.status == 400
        && after.error() == "invalid_grant"
        && after.json["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("the authorization code was already used"));
    assert!(
        after.status == 200 || spent,
        "the code after the failover: {} {}",
        after.status,
        after.text
    );
}

/// How many clients of the sentinel on `port` are subscribed to a pattern (`CLIENT LIST`).
pub fn pattern_subscribers(port: u16) -> usize {
    query::<String>(port, redis::cmd("CLIENT").arg("LIST")).map_or(0, |clients| {
        clients
            .lines()
            .filter(|client| {
                client
                    .split(' ')
                    .any(|field| field.strip_prefix("psub=").is_some_and(|n| n != "0"))
            })
            .count()
    })
}

/// Sentinels announce a switch one by one: the others as soon as the leader's hello reaches
/// them, the leader (asked for the failover here, and first in the service's list) only at
/// the end, a second or more later. Until then its `SENTINEL MASTERS` names the outgoing master,
/// which still takes writes while it keeps a replica. From the first announcement on, the
/// service must connect to the new master, never be sent to the outgoing one. (Looking the
/// master up through the sentinels, it reached the old master here on every run, and took a
/// code there in about one run of the stream test in twenty.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_sentinel_announces_the_new_master_no_request_reaches_the_old_one() {
    no_request_reaches_the_old_master(None).await;
}

/// The same, with data nodes that want a password: the connections made straight to the
/// announced master carry `redis.node_password` as the Sentinel look-up's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_straight_to_the_announced_master_carry_the_node_password() {
    no_request_reaches_the_old_master(Some("s3cret-for-tests")).await;
}

async fn no_request_reaches_the_old_master(password: Option<&'static str>) {
    let set = Arc::new(blocking(SentinelSet::start_to_fail_over).await);
    if let Some(password) = password {
        set.protect(password);
    }
    let app = spawn_app_with(|s| {
        on_set(&set, s);
        s.redis.node_password = password.map(Sensitive::new);
    })
    .await;
    let before = Answer::of(
        app.exchange(&APP, &app.write_code(&code_record(&APP)).await)
            .await,
    );
    assert_eq!(before.await.status, 200);
    let old_master = set.current_master().expect("a master");
    let leader = set.sentinels[0].port();
    let others: Vec<u16> = set.sentinels[1..].iter().map(|s| s.port()).collect();

    start_failover(&set).await;
    let (new_master, before) = blocking(move || {
        let mut announced = None;
        wait_until("another sentinel announces the new master", || {
            announced = others
                .iter()
                .filter_map(|&port| sentinel_masters_entry(port))
                .find(|&port| port != old_master);
            announced.is_some()
        });
        let new_master = announced.expect("a new master");
        let counts = Counts::of(old_master, new_master, password);
        (new_master, counts)
    })
    .await;

    // Until the leader names the new master too: exchanges (of unknown codes; whatever the
    // answer, each one that passes the fence runs the exchange script somewhere).
    let deadline = Instant::now() + RECOVERY;
    let mut in_window = 0;
    while blocking(move || sentinel_masters_entry(leader)).await != Some(new_master) {
        assert!(Instant::now() < deadline, "the leader never switched");
        let answer = Answer::of(app.exchange(&APP, "no-such-code").await).await;
        assert!(
            answer.status == 503 || answer.error() == "invalid_grant",
            "{} {}",
            answer.status,
            answer.text
        );
        in_window += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let after = blocking(move || Counts::of(old_master, new_master, password)).await;
    let reached_old = after.old_master_scripts - before.old_master_scripts;
    let reached_new = after.new_master_scripts - before.new_master_scripts;
    assert_eq!(
        reached_old, 0,
        "{in_window} exchanges sent {reached_old} scripts to the old master"
    );
    assert!(
        reached_new > 0,
        "none of {in_window} exchanges reached the new master while the leader named the old one"
    );
    // Refused for want of a password would count as reached: none may have been.
    assert_eq!(
        after.new_master_noauth, before.new_master_noauth,
        "the new master refused connections for want of a password"
    );
}

/// What the test counts on the two masters (see [`script_calls`], [`error_replies`]).
struct Counts {
    old_master_scripts: u64,
    new_master_scripts: u64,
    new_master_noauth: u64,
}

impl Counts {
    fn of(old_master: u16, new_master: u16, password: Option<&str>) -> Self {
        Self {
            old_master_scripts: script_calls(old_master, password),
            new_master_scripts: script_calls(new_master, password),
            new_master_noauth: error_replies(new_master, password, "NOAUTH"),
        }
    }
}

/// `code` exchanged again every 100 ms while the answer is a 503, for `within` at most: the
/// first other answer, or the last 503.
pub async fn exchange_once_served(app: &TestApp, code: &str, within: Duration) -> Answer {
    let deadline = Instant::now() + within;
    loop {
        let answer = Answer::of(app.exchange(&APP, code).await).await;
        if answer.status != 503 || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs blocking Redis queries off the runtime that serves the app.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// Asks the first sentinel for a failover; `INPROG`/`NOGOODSLAVE` while the sentinels settle:
/// asks again until it is accepted.
/// Settings for a server on `set`, with this file's Redis timeout.
fn on_set(set: &SentinelSet, s: &mut Settings) {
    set.configure(&mut s.redis);
    s.redis.timeout_ms = TIMEOUT_MS;
}

async fn start_failover(set: &Arc<SentinelSet>) {
    let sentinels = Arc::clone(set);
    blocking(move || {
        wait_until("SENTINEL FAILOVER is accepted", || {
            query::<String>(
                sentinels.sentinels[0].port(),
                redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME),
            )
            .is_some()
        });
    })
    .await;
}

/// How many of `outcomes` (in the order answered) are 200s after the last 503.
fn healed_since_last_503(outcomes: &[Outcome]) -> usize {
    let after = outcomes
        .iter()
        .rposition(|o| o.status == 503)
        .map_or(0, |i| i + 1);
    outcomes[after..].iter().filter(|o| o.status == 200).count()
}

/// Exchanges fresh codes one after the other until `stop`, adding each outcome to `outcomes`
/// (timed under its lock: the list stays in the order answered).
async fn stream(app: &TestApp, stop: &AtomicBool, outcomes: &Mutex<Vec<Outcome>>) {
    let mut writer = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(code) = write_code(app, &mut writer).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        exchange_and_record(app, code, outcomes).await;
    }
}

/// No code twice: each code of `outcomes` comes back once more. A code that got its token must
/// be refused; one that got a 503 may get its first token now.
pub async fn assert_no_code_twice(app: &TestApp, outcomes: &[Outcome]) {
    let mut twice = 0;
    for outcome in outcomes {
        let again = Answer::of(app.exchange(&APP, &outcome.code).await).await;
        assert!(
            again.status == 200 || (again.status == 400 && again.error() == "invalid_grant"),
            "second attempt: {} {}",
            again.status,
            again.text
        );
        twice += usize::from(outcome.status == 200 && again.status == 200);
    }
    assert_eq!(twice, 0, "code(s) exchanged twice");
}

/// Exchanges `code` and adds the outcome to `outcomes` (timed under its lock: the list stays
/// in the order answered); after a 503, backs off as a client does (the answer says
/// `Retry-After: 1`; the tests keep it short).
pub async fn exchange_and_record(app: &TestApp, code: String, outcomes: &Mutex<Vec<Outcome>>) {
    let answer = Answer::of(app.exchange(&APP, &code).await).await;
    if answer.status == 503 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut outcomes = outcomes.lock().unwrap();
    outcomes.push(Outcome {
        code,
        at: Instant::now(),
        status: answer.status,
        text: answer.text,
    });
}

/// Writes a code as a careful authorize service does in a Sentinel set-up: on the master, and
/// acknowledged by a replica (`WAIT`), so that a failover cannot lose it. `None` while Redis is
/// switching masters; the connection is then dropped and found again through the sentinels.
async fn write_code(
    app: &TestApp,
    writer: &mut Option<redis::aio::MultiplexedConnection>,
) -> Option<String> {
    if writer.is_none() {
        let mut client = redis::sentinel::SentinelClient::build(
            app.settings.redis.sentinels.clone(),
            MASTER_NAME,
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .ok()?;
        let connecting = client.get_async_connection();
        *writer = tokio::time::timeout(Duration::from_secs(1), connecting)
            .await
            .ok()?
            .ok();
    }
    let conn = writer.as_mut()?;
    let code = sso_token::issue_code::new_code().expect("code");
    let record = serde_json::to_string(&code_record(&APP)).expect("record");
    let mut pipeline = redis::pipe();
    pipeline
        .cmd("SET")
        .arg(app.store.code_key(&code))
        .arg(record)
        .arg("EX")
        .arg(60)
        .arg("NX")
        .cmd("WAIT")
        .arg(1)
        .arg(1000);
    let written = pipeline.query_async::<(Option<String>, u32)>(conn);
    match tokio::time::timeout(Duration::from_secs(2), written).await {
        Ok(Ok((Some(_), acked))) if acked >= 1 => Some(code),
        _ => {
            *writer = None;
            None
        }
    }
}
