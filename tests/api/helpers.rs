//! `spawn_app` and what the tests share: one redis-server and one signing key per test process,
//! helpers to write codes, call the endpoint and check tokens. Test modules import everything
//! from here (the fixtures and `Answer` are re-exported).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use deadpool_redis::redis;
use jsonwebtoken::{Algorithm, DecodingKey, TokenData, Validation};
use serde_json::Value;
use sso_token::config::{RedisMode, RedisSettings, Settings};
use sso_token::issue_code::{self, NewCode};
use sso_token::live::{Live, LoadError};
use sso_token::routes::paths::TOKEN_PATH;
use sso_token::startup::Application;
use sso_token::store::{Conn, Store};
use sso_token::tokens::{KeyKind, SigningKey};
use uuid::Uuid;

pub use crate::answer::Answer;
pub use crate::fixtures::*;
use crate::redis_server::RedisServer;
pub use crate::topology::Topology;
pub use sso_token::clock::unix_now;

/// Process-wide fixtures: the shared redis-server, the signing key and the clients file.
struct Shared {
    redis: RedisServer,
    key_path: PathBuf,
    clients_path: PathBuf,
    key: SigningKey,
    pem: String,
    dir: PathBuf,
}

/// The last resort against a hang that no timeout of its own catches: each wait in the suite
/// (HTTP, test-side Redis, servers starting) is bounded far below this, and the whole suite
/// takes ~75 s on a quiet 2-core machine; a slow one may take several times that.
const WATCHDOG: Duration = Duration::from_secs(900);

/// The tests that have an app up, by the name of their thread (libtest names it after the
/// test), with how many: what the watchdog names when it fires.
static RUNNING: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Counts the current test in [`RUNNING`] while it lives (a `TestApp` holds one).
struct Running(String);

impl Running {
    fn enter() -> Self {
        let name = std::thread::current()
            .name()
            .unwrap_or("(an unnamed thread)")
            .to_owned();
        *running().entry(name.clone()).or_default() += 1;
        Self(name)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = running();
        if let Some(count) = running.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.0);
            }
        }
    }
}

fn running() -> std::sync::MutexGuard<'static, BTreeMap<String, usize>> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        std::thread::spawn(|| {
            std::thread::sleep(WATCHDOG);
            let names: Vec<String> = running().keys().cloned().collect();
            // Straight to stderr: the test harness captures `eprintln!`.
            let message = format!(
                "API tests still running after {WATCHDOG:?}: something hangs; tests with an \
                 app up: {}\n",
                names.join(", ")
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
            std::process::exit(124);
        });
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "api-{}-{}",
            std::process::id(),
            Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pem = SigningKey::generate_pem(KeyKind::Rsa2048).expect("RSA key");
        let key_path = dir.join("signing.pem");
        std::fs::write(&key_path, &pem).expect("key file");
        let clients_path = dir.join("clients.toml");
        std::fs::write(&clients_path, clients_toml()).expect("clients file");
        Shared {
            // The wrapper removes the directory once the test process is gone.
            redis: RedisServer::start_with(&[], Some(&dir)),
            key_path,
            clients_path,
            key: SigningKey::from_pem(&pem).expect("generated key parses"),
            pem,
            dir,
        }
    })
}

/// The shipped `config/default.toml`, pointed at the test fixtures, on port 0, with a fresh key
/// prefix in the shared Redis.
pub fn test_settings() -> Settings {
    let shared = shared();
    let text = include_str!("../../config/default.toml");
    let mut settings: Settings = toml::from_str(text).expect("config/default.toml parses");
    settings.server.listen = "127.0.0.1:0".into();
    settings.server.workers = 1;
    settings.server.shutdown_timeout_secs = 1;
    settings.redis.url = shared.redis.url();
    settings.redis.pool_size = 8;
    settings.redis.timeout_ms = 2000;
    settings.redis.key_prefix = format!("test:{}:", Uuid::new_v4());
    settings.token.signing_key = shared.key_path.clone();
    settings.clients.file = shared.clients_path.clone();
    settings
}

pub struct TestApp {
    pub address: String,
    /// The separate metrics listener's port, when `metrics.listen` is set.
    pub metrics_port: Option<u16>,
    pub settings: Settings,
    pub store: Store,
    pub http: reqwest::Client,
    /// What SIGHUP would reload; `reload_with` edits `source` and reloads.
    pub live: Arc<Live>,
    pub source: Arc<Mutex<Settings>>,
    /// Names this test to the watchdog while the app lives.
    _running: Running,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app on this process's shared instance of `topology` (started on first use).
pub async fn spawn_app_on(topology: Topology) -> TestApp {
    spawn_app_with(|s| topology.configure(&mut s.redis)).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let running = Running::enter();
    let mut settings = test_settings();
    configure(&mut settings);
    spawn_ready(settings, running).await
}

/// Starts a server and, in Sentinel mode, waits until its fence is open.
async fn spawn_ready(settings: Settings, running: Running) -> TestApp {
    let app = spawn_with_settings(settings, running);
    if app.settings.redis.mode == RedisMode::Sentinel {
        sentinels_asked(&app).await;
    }
    app
}

/// [`spawn_app_with`] without waiting for the sentinels: for a test of what the server does
/// in its first moments.
pub fn spawn_app_at_once_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let running = Running::enter();
    let mut settings = test_settings();
    configure(&mut settings);
    spawn_with_settings(settings, running)
}

/// Sentinel mode: waits (5 s at most) until the server and the test's own store have asked
/// every sentinel whether a failover is under way; their fences are closed until then. Fails
/// the test past that: a test that expects 503s would otherwise pass on a set-up never done.
async fn sentinels_asked(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        let ready = app.http.get(app.url("/readyz")).send().await;
        last = ready.as_ref().ok().map(reqwest::Response::status);
        if last == Some(reqwest::StatusCode::OK) && !app.store.failover_under_way() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "Sentinel set-up: 5 s after the start /readyz says {last:?}, the test's store a \
         failover under way: {}",
        app.store.failover_under_way()
    );
}

fn spawn_with_settings(settings: Settings, running: Running) -> TestApp {
    let (app, server) = build_with_settings(settings, running);
    tokio::spawn(server.run_until_stopped());
    // The test's own writes (codes) are fenced in a failover from the start too, as the
    // server's are.
    app.store.watch_failovers();
    app
}

/// An app built but not yet running: the test runs `Application::run_until_stopped` itself.
pub fn build_app() -> (TestApp, Application) {
    build_with_settings(test_settings(), Running::enter())
}

fn build_with_settings(settings: Settings, running: Running) -> (TestApp, Application) {
    let settings = settings.validate().expect("valid test settings");
    let source = Arc::new(Mutex::new(settings.clone()));
    let reads = Arc::clone(&source);
    let app = Application::build_reloadable(
        settings.clone(),
        Box::new(move || Ok(reads.lock().expect("settings lock").clone())),
        sso_token::live::listen_for_sighup().expect("a SIGHUP listener"),
    )
    .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let live = app.live();
    let metrics_port = app.metrics_port();
    // The server's settings but no keepalive: the test's own connections must not pass for
    // the server's in `tcp_keepalive.rs`, which looks for keepalive timers.
    let own_redis = RedisSettings {
        tcp_keepalive_secs: 0,
        ..settings.redis.clone()
    };
    let test_app = TestApp {
        address,
        metrics_port,
        store: Store::new(&own_redis).expect("store"),
        settings,
        http: http_client(),
        live,
        source,
        _running: running,
    };
    (test_app, app)
}

/// The HTTP client of the tests: no redirects followed, bounded in time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

impl TestApp {
    /// Another server instance on the same Redis and key prefix: a second replica, ready as
    /// [`spawn_app_with`]'s are (in Sentinel mode, its fence open: a race begun before that
    /// got 503s from it on a slow machine).
    pub async fn spawn_replica(&self) -> TestApp {
        spawn_ready(self.settings.clone(), Running::enter()).await
    }

    pub fn token_url(&self) -> String {
        self.url(TOKEN_PATH)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Changes the settings a reload reads, then reloads, as an edit of the files and SIGHUP.
    pub fn reload_with(&self, edit: impl FnOnce(&mut Settings)) -> Result<(), LoadError> {
        edit(&mut self.source.lock().expect("settings lock"));
        self.live.reload()
    }

    /// Writes `record` under a fresh code, as the authorize service would; returns the code.
    pub async fn write_code(&self, record: &NewCode) -> String {
        let code = issue_code::new_code().expect("code");
        let written = issue_code::write(&self.store, &code, record, 60).await;
        assert!(
            written.expect("code written to redis"),
            "code already existed"
        );
        code
    }

    /// A fresh code for `client` with the default record.
    pub async fn issue_code(&self, client: &TestClient) -> String {
        self.write_code(&code_record(client)).await
    }

    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.token_url())
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A form body, with `client`'s credentials in HTTP Basic.
    pub async fn post_form_basic(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.token_url())
            .header("Authorization", basic_auth(client.id, client.secret))
            .form(form)
            .send()
            .await
            .expect("request sent")
    }

    /// The seed document's request: JSON, credentials in the body.
    pub async fn exchange(&self, client: &TestClient, code: &str) -> reqwest::Response {
        self.post_json(&json_request(client, code)).await
    }

    /// The same as if from `address`, named in `X-Forwarded-For` (believed by an app that
    /// lists the loopback network in `throttle.trusted_proxies`).
    pub async fn exchange_from(&self, client: &TestClient, code: &str, address: &str) -> Answer {
        let request = self.http.post(self.token_url());
        let request = request.header("X-Forwarded-For", address);
        let answer = request.json(&json_request(client, code)).send().await;
        Answer::of(answer.expect("request sent")).await
    }

    /// A connection of the test's own to the app's Redis, whatever its topology (through the
    /// sentinels to the current master; a cluster connection that routes by key).
    pub async fn redis(&self) -> Conn {
        let settings = &self.settings.redis;
        // The redis crate cuts each call at 500 ms and a connection at 1 s by default: a call
        // that straddles a test's CLIENT PAUSE on a busy machine failed so. [`REDIS_CALL_TIMEOUT`]
        // alone bounds them.
        let patient = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(None);
        let connecting = async {
            match settings.mode {
                RedisMode::Standalone => {
                    let client = redis::Client::open(settings.url.as_str())?;
                    client
                        .get_multiplexed_async_connection_with_config(&patient)
                        .await
                        .map(Conn::Node)
                }
                RedisMode::Sentinel => {
                    let node = settings.node_password.as_ref().map(|password| {
                        redis::sentinel::SentinelNodeConnectionInfo::default()
                            .set_redis_connection_info(
                                redis::RedisConnectionInfo::default()
                                    .set_password(password.expose()),
                            )
                    });
                    let mut client = redis::sentinel::SentinelClient::build(
                        settings.sentinels.clone(),
                        settings.master_name.clone(),
                        node,
                        redis::sentinel::SentinelServerType::Master,
                    )?;
                    (client.get_async_connection_with_config(&patient).await).map(Conn::Node)
                }
                RedisMode::Cluster => {
                    let client = redis::cluster::ClusterClient::builder(settings.nodes.clone())
                        .connection_timeout(REDIS_CALL_TIMEOUT)
                        .response_timeout(REDIS_CALL_TIMEOUT)
                        .build()?;
                    client.get_async_connection().await.map(Conn::Cluster)
                }
            }
        };
        bounded("connect", connecting).await
    }

    /// Runs `command` on a fresh [`TestApp::redis`] connection; panics, naming the command, on
    /// an error or when Redis does not answer within [`REDIS_CALL_TIMEOUT`].
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let name = match command.args_iter().next() {
            Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
            _ => "a command".to_owned(),
        };
        let mut conn = self.redis().await;
        bounded(&name, command.query_async(&mut conn)).await
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.query::<u32>(redis::cmd("EXISTS").arg(key)).await == 1
    }

    pub async fn code_exists(&self, code: &str) -> bool {
        self.exists(&self.store.code_key(code)).await
    }

    /// Keys under this app's prefix that match `pattern` (for example `token:*`).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let pattern = format!("{}{pattern}", self.settings.redis.key_prefix);
        self.query(redis::cmd("KEYS").arg(pattern)).await
    }
}

/// Bound of each test-side Redis call, connecting included: a Redis that stops answering fails
/// the test that waits on it, with the call named, instead of hanging the suite.
pub const REDIS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

async fn bounded<T>(what: &str, call: impl Future<Output = redis::RedisResult<T>>) -> T {
    match tokio::time::timeout(REDIS_CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("test-side redis {what}: {e}"),
        Err(_) => panic!("test-side redis {what}: no answer within {REDIS_CALL_TIMEOUT:?}"),
    }
}

/// The public key of the signing key, taken from its JWK as a resource server would.
pub fn decoding_key() -> DecodingKey {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public_jwk()).expect("a standard JWK");
    DecodingKey::from_jwk(&jwk).expect("RSA public key")
}

/// A new key file of `kind` in the test directory; returns its path and kid.
pub fn new_key_file(kind: KeyKind) -> (PathBuf, String) {
    let pem = SigningKey::generate_pem(kind).expect("key");
    let kid = SigningKey::from_pem(&pem)
        .expect("key parses")
        .kid()
        .to_owned();
    let path = shared().dir.join(format!("{}.pem", Uuid::new_v4()));
    std::fs::write(&path, pem).expect("key file");
    (path, kid)
}

/// The public half of the key file `private`, written beside it as a `PUBLIC KEY` PEM file. The
/// SubjectPublicKeyInfo is rcgen's, which encodes it itself: the service reads what another
/// tool writes, not only its own `pubkey` output.
pub fn public_key_file(private: &Path) -> PathBuf {
    use rcgen::PublicKeyData;

    let pem = std::fs::read_to_string(private).expect("private key file");
    let spki = rcgen::KeyPair::from_pem(&pem)
        .expect("rcgen reads the key")
        .subject_public_key_info();
    let path = private.with_extension("pub.pem");
    std::fs::write(&path, pem::encode(&pem::Pem::new("PUBLIC KEY", spki))).expect("public file");
    path
}

/// The shared signing key, parsed anew (a key is not `Clone`).
pub fn signing_key() -> SigningKey {
    SigningKey::from_pem(&shared().pem).expect("shared key parses")
}

/// The directory of this test process's fixture files.
pub fn test_dir() -> PathBuf {
    shared().dir.clone()
}

/// The public JWK of the signing key as JSON.
pub fn public_jwk() -> Value {
    serde_json::to_value(shared().key.public_jwk()).expect("JWK serializes")
}

/// Verifies signature, `exp`, `iss` and `aud`; returns header and claims.
pub fn verify_token(token: &str, audience: &str, issuer: &str) -> TokenData<Value> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &decoding_key(), &validation)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
}
