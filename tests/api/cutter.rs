//! [`Cutter`]: a TCP proxy in front of one Redis node that, once armed, cuts the first
//! connection on which a given command arrives, either before passing it on or after Redis
//! ran it (its answer lost on the way back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// How long a [`Cut::AfterRunning`] cut waits for Redis's answer before it cuts all the same
/// (then [`Cutter::ran`] says no).
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// What a [`Cutter`] does to the node before it cuts the connection.
pub type Hook = Box<dyn FnOnce() + Send>;

/// Where the cut falls.
#[derive(Clone, Copy)]
pub enum Cut {
    /// The command never reaches Redis.
    Before,
    /// Redis runs the command; its answer never reaches the service.
    AfterRunning,
}

pub struct Cutter {
    pub port: u16,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    ran: Arc<AtomicBool>,
    hook: Arc<Mutex<Option<Hook>>>,
}

/// What each proxied connection shares with the [`Cutter`].
#[derive(Clone)]
struct Trigger {
    command: &'static [u8],
    at: Cut,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    ran: Arc<AtomicBool>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Cutter {
    /// `command` as RESP sends its name, e.g. `b"$4\r\nWAIT\r\n"`.
    pub async fn start(upstream: u16, command: &'static [u8], at: Cut) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let trigger = Trigger {
            command,
            at,
            armed: Arc::default(),
            cut: Arc::default(),
            ran: Arc::default(),
            hook: Arc::default(),
        };
        let cutter = Self {
            port,
            armed: Arc::clone(&trigger.armed),
            cut: Arc::clone(&trigger.cut),
            ran: Arc::clone(&trigger.ran),
            hook: Arc::clone(&trigger.hook),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy(client, upstream, trigger.clone()));
            }
        });
        cutter
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Arms the proxy to run `hook` (blocking, against the node itself) before the cut.
    pub fn arm_with(&self, hook: Hook) {
        *self.hook.lock().unwrap() = Some(hook);
        self.arm();
    }

    pub fn has_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Armed, and the command has not arrived yet.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// [`Cut::AfterRunning`]: Redis answered the command before the cut (the answer dropped),
    /// so it ran; without this the cut may fall before Redis runs it, a [`Cut::Before`].
    pub fn ran(&self) -> bool {
        self.ran.load(Ordering::SeqCst)
    }
}

async fn proxy(client: tokio::net::TcpStream, upstream: u16, trigger: Trigger) {
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set once the command that ends the connection is on its way: nothing more goes back.
    let silenced = AtomicBool::new(false);
    // Redis's answer to it came (and was dropped).
    let answered = Notify::new();
    let upward = async {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            let seen = buf[..n]
                .windows(trigger.command.len())
                .any(|w| w == trigger.command);
            if seen && trigger.armed.swap(false, Ordering::SeqCst) {
                let hook = trigger.hook.lock().unwrap().take();
                if let Some(hook) = hook {
                    tokio::task::spawn_blocking(hook).await.unwrap();
                }
                trigger.cut.store(true, Ordering::SeqCst);
                if let Cut::AfterRunning = trigger.at {
                    silenced.store(true, Ordering::SeqCst);
                    if to_server.write_all(&buf[..n]).await.is_ok() {
                        // Cut once Redis has answered (it ran the command), not before.
                        let _ = tokio::time::timeout(ANSWER_WAIT, answered.notified()).await;
                    }
                }
                return;
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downward = async {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            if silenced.load(Ordering::SeqCst) {
                trigger.ran.store(true, Ordering::SeqCst);
                answered.notify_one();
                continue;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upward => {}
        () = downward => {}
    }
}
