//! A hung request is dropped (and its socket closed) once the client goes
//! away. Counts this process's open file descriptors, so it lives in its own
//! test binary with a single test.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_connections_are_released_when_clients_leave() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        return;
    }
    let mock = start(r#"{"regions":{"a":{"hang":true}}}"#).await;
    let addr = mock.region_addr("a").unwrap();
    let baseline = open_fds();
    let body = user_body("hi", false);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        clients.push(s);
    }
    // Wait until the server has taken all of them in.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
        if stats["regions"]["a"]["requests"] == json!(40) {
            break;
        }
        assert!(Instant::now() < deadline, "requests never arrived: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        open_fds() >= baseline + 80,
        "client and server sockets open"
    );
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_fds() > baseline + 5 {
        assert!(
            Instant::now() < deadline,
            "server kept hung sockets: {} open vs baseline {baseline}",
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.shutdown().await;
}
