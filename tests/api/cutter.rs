//! [`Cutter`]: a TCP proxy in front of one Redis node that, once armed, cuts the first
//! connection on which a given command arrives, either before passing it on or after Redis
//! ran it (its answer lost on the way back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    hook: Arc<Mutex<Option<Hook>>>,
}

/// What each proxied connection shares with the [`Cutter`].
#[derive(Clone)]
struct Trigger {
    command: &'static [u8],
    at: Cut,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
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
            hook: Arc::default(),
        };
        let cutter = Self {
            port,
            armed: Arc::clone(&trigger.armed),
            cut: Arc::clone(&trigger.cut),
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
}

async fn proxy(client: tokio::net::TcpStream, upstream: u16, trigger: Trigger) {
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set once the command that ends the connection is on its way: nothing more goes back.
    let silenced = AtomicBool::new(false);
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
                        // Ample time for Redis to run it; its answer is dropped below.
                        tokio::time::sleep(Duration::from_millis(100)).await;
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
