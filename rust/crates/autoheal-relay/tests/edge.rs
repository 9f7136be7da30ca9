//! The relay on a real loopback socket, under connections that try to starve it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoheal_relay::config::Config;
use autoheal_relay::executor::DryRun;
use autoheal_relay::server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "edge-token-1234";

fn config(dir: &Path, server: &str) -> Config {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    std::fs::set_permissions(dir.join("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[server]
{server}

[auth]
bearer_token_file = "token"

[journal]
path = "journal.db"

[[rules]]
name = "drain-on-cpu"
match = {{ alertname = "BackendCpuHigh" }}
action = "drain"

[executor]
kind = "dry-run"
"#
        ),
    )
    .unwrap();
    Config::load(&file).unwrap()
}

/// A running relay on 127.0.0.1 and the sender that stops it.
struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(cfg: Config) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve_on(listener, &cfg, Arc::new(DryRun), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running { addr, stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn webhook_request(fingerprint: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&serde_json::json!({
        "version": "4", "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "BackendCpuHigh", "server": "s1", "backend": "be"},
            "startsAt": "2026-11-25T12:00:00Z",
            "fingerprint": fingerprint,
        }],
    }))
    .unwrap();
    let mut req = format!(
        "POST /hooks/alertmanager HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend(body);
    req
}

/// Posts one webhook on a new connection; returns the response's status line (empty when the
/// relay closed the connection unanswered).
async fn post_webhook(addr: SocketAddr, fingerprint: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    if stream
        .write_all(&webhook_request(fingerprint))
        .await
        .is_err()
    {
        return String::new();
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Completes when the peer closes the connection (a read returns end of file or an error).
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = limit.maximum.expect("a finite descriptor limit");
    assert!(
        hard >= 8192,
        "the test needs 8192 descriptors, the hard limit is {hard}"
    );
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_do_not_starve_a_real_webhook() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let header_timeout = Duration::from_millis(3000);
    let relay = start(config(dir.path(), "header_read_timeout_ms = 3000")).await;
    // Let the relay settle (journal thread, first accept) before counting descriptors.
    assert_eq!(post_webhook(relay.addr, "warm").await, "HTTP/1.1 200 OK");
    let baseline = open_fds();

    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..2000 {
        silent.push(TcpStream::connect(relay.addr).await.unwrap());
    }
    let mut trickling = Vec::new();
    for _ in 0..500 {
        trickling.push(TcpStream::connect(relay.addr).await.unwrap());
    }
    // One header byte a second on each trickling connection, for longer than the header timeout.
    let head = b"POST /hooks/alertmanager HTTP/1.1\r\nHost: relay\r\n";
    let trickler = tokio::spawn(async move {
        for byte in head.iter().take(8) {
            for stream in &mut trickling {
                let _ = stream.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        trickling
    });

    let posted = Instant::now();
    let status = post_webhook(relay.addr, "real").await;
    let took = posted.elapsed();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(took < Duration::from_secs(1), "the webhook took {took:?}");

    // The relay closes every connection that sent no complete head within the header timeout.
    for stream in &mut silent {
        closed_by_peer(stream).await;
    }
    let mut trickling = trickler.await.unwrap();
    for stream in &mut trickling {
        closed_by_peer(stream).await;
    }
    let all_closed = opened.elapsed();
    assert!(
        all_closed < header_timeout + Duration::from_secs(7),
        "closed after {all_closed:?}"
    );
    drop(silent);
    drop(trickling);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > baseline {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {baseline} before",
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(config(
        dir.path(),
        "max_connections = 10\nheader_read_timeout_ms = 60000",
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(relay.addr).await.unwrap());
    }
    // Wait until the relay has accepted all ten: a webhook on an eleventh is then closed unanswered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = post_webhook(relay.addr, "over").await;
        if status.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still answered: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A slot comes back as soon as a connection closes.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while post_webhook(relay.addr, "after").await != "HTTP/1.1 200 OK" {
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_not_spoken() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(config(dir.path(), "header_read_timeout_ms = 2000")).await;
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    // The HTTP/2 connection preface: an HTTP/1.1 server refuses it rather than waiting for more.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response))
        .await
        .expect("the connection is closed at once")
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    assert!(
        response.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
        "{text:?}"
    );
    relay.stop().await;
}
