//! `server.tls`: the listener speaks HTTPS with the configured certificate, and only HTTPS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use sso_token::config::TlsSettings;
use sso_token::routes::paths::TOKEN_PATH;
use sso_token::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{APP, TestApp, json_request, spawn_app_with, test_settings};

/// A self-signed certificate for `localhost`, written as PEM; returns the settings and the DER.
fn self_signed() -> (TlsSettings, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert file");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key file");
    (TlsSettings { cert, key }, certified.cert.der().clone())
}

/// Sends one HTTP/1.1 request over TLS, trusting only `trusted`; returns the raw response.
async fn https(port: u16, trusted: CertificateDer<'static>, request: &str) -> String {
    let connector = connector_trusting(trusted);
    let exchange = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTPS answered in time")
        .expect("HTTPS exchange")
}

/// A TLS connection to `app`, trusting only `trusted`.
async fn connect(
    app: &TestApp,
    trusted: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port_of(app)))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").expect("server name");
    connector_trusting(trusted)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads from `tls` until what was read is `done`, each read within 5 s; returns it.
async fn read_until(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut read = Vec::new();
    let mut buf = [0u8; 1024];
    while !done(&String::from_utf8_lossy(&read)) {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("answered in time")
            .unwrap();
        assert!(n > 0, "closed before its answer");
        read.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&read).into_owned()
}

/// A TLS client that trusts only `trusted`.
fn connector_trusting(trusted: CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).expect("trust anchor");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[tokio::test]
async fn with_server_tls_the_token_endpoint_answers_over_https_only() {
    let (tls, cert) = self_signed();
    let app = spawn_app_with(|s| s.server.tls = Some(tls)).await;
    let port = port_of(&app);
    let code = app.issue_code(&APP).await;
    let body = json_request(&APP, &code).to_string();
    let request = format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );

    let response = https(port, cert, &request).await;
    let plain = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await;

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
}

#[tokio::test]
async fn a_missing_or_wrong_tls_file_stops_the_start_naming_the_setting() {
    let (tls, _) = self_signed();
    let cases = [
        (
            "server.tls.cert",
            TlsSettings {
                cert: "no/such/cert.pem".into(),
                key: tls.key.clone(),
            },
        ),
        (
            "server.tls.key",
            TlsSettings {
                cert: tls.cert.clone(),
                key: tls.cert.clone(),
            },
        ),
    ];
    for (setting, tls) in cases {
        let mut settings = test_settings();
        settings.server.tls = Some(tls);

        let error = Application::build(settings).err().expect("start refused");

        assert!(error.to_string().starts_with(setting), "{error}");
    }
}

/// Connections that never begin their handshake take no TLS client's turn: actix-tls's 256
/// handshakes under way per worker once made every client wait for their 3 s timeout.
#[tokio::test]
async fn silent_connections_do_not_hold_up_a_tls_handshake() {
    let (tls, cert) = self_signed();
    let app = spawn_app_with(|s| s.server.tls = Some(tls)).await;
    let port = port_of(&app);
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let response = https(port, cert, request).await;

    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let took = started.elapsed();
    assert!(
        // The fault made it wait actix-tls's 3 s handshake timeout; a busy debug build
        // needs well under 2 s.
        took < Duration::from_secs(2),
        "the handshake waited {took:?}"
    );
    drop(silent);
}

/// A renewed certificate (a renewal's deploy hook sends SIGHUP) is served after a reload, to
/// new connections, without a restart; a connection made before goes on. A renewal whose key
/// is another pair's is refused, and the pair served stays.
#[tokio::test]
async fn a_reload_after_the_certificate_files_changed_serves_the_new_pair() {
    let log = crate::log_capture::mark();
    let (tls, first) = self_signed();
    let app = spawn_app_with(|s| s.server.tls = Some(tls.clone())).await;
    let port = port_of(&app);
    let health = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let healthy = |read: &str| read.contains(r#"{"status":"ok"}"#);
    let mut before = connect(&app, first.clone()).await;
    app.reload_with(|_| {}).expect("a reload");

    let (renewed, second) = self_signed();
    for (from, to) in [(&renewed.cert, &tls.cert), (&renewed.key, &tls.key)] {
        std::fs::copy(from, to).expect("renewed file");
    }
    app.reload_with(|_| {}).expect("a reload");

    let close = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let response = https(port, second.clone(), close).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").expect("server name");
    let old = connector_trusting(first).connect(name, tcp).await;
    assert!(old.is_err(), "the certificate of the start is still served");
    before.write_all(health.as_bytes()).await.unwrap();
    read_until(&mut before, healthy).await;
    let lines = log.lines();
    assert!(
        (lines.iter()).any(|l| l.contains("server.tls: the certificate or key file changed")),
        "the renewal went unsaid: {lines:#?}"
    );
    assert!(
        !(lines.iter()).any(|l| l.contains("restart only") && l.contains("server.tls")),
        "a restart was asked for: {lines:#?}"
    );

    let (other, _) = self_signed();
    std::fs::copy(&other.key, &tls.key).expect("another pair's key");
    let refused = app
        .reload_with(|_| {})
        .expect_err("another pair's key taken");
    assert!(refused.to_string().contains("server.tls.key"), "{refused}");
    let response = https(port, second, close).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Over TLS too, the start of a second request head and nothing more closes the connection
/// 5 s after it (see `head_deadline`).
#[tokio::test]
async fn over_tls_a_partial_head_after_an_answer_is_closed_after_5_s() {
    let (tls, cert) = self_signed();
    let app = spawn_app_with(|s| s.server.tls = Some(tls)).await;
    let mut tls = connect(&app, cert).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut tls, |read| read.ends_with(r#"{"status":"ok"}"#)).await;
    let mut buf = [0u8; 1024];
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    tls.write_all(format!("POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .await
        .unwrap();
    tls.flush().await.unwrap();

    let early = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await;
    assert!(early.is_err(), "closed before the head's 5 s: {early:?}");
    let closed = tokio::time::timeout(Duration::from_secs(6), tls.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "still open 9 s after a partial head: {closed:?}"
    );
}

/// Over TLS, an idle connection whose head came slowly is closed `keep_alive_secs` after its
/// answer (see `keep_alive`), and cleanly: a close_notify ends the stream (rustls reports an
/// end without one as an error).
#[tokio::test]
async fn over_tls_an_idle_connection_is_closed_at_keep_alive_with_close_notify() {
    let (tls, cert) = self_signed();
    let app = spawn_app_with(|s| {
        s.server.tls = Some(tls);
        s.server.keep_alive_secs = 6;
    })
    .await;
    let mut tls = connect(&app, cert).await;
    // Two records: the head's 5 s timer is armed while the server waits for the second.
    tls.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls.write_all(b"Host: localhost\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    read_until(&mut tls, |read| read.ends_with(r#"{"status":"ok"}"#)).await;
    let mut buf = [0u8; 1024];
    let answered = std::time::Instant::now();

    let closed = tokio::time::timeout(Duration::from_secs(15), tls.read(&mut buf)).await;

    let after = answered.elapsed();
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} after {after:?}");
    assert!(
        after > Duration::from_secs(5) && after < Duration::from_millis(8500),
        "closed {after:?} after the answer, keep_alive_secs = 6"
    );
}
