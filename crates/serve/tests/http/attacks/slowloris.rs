//! Slowloris: connections that never finish a request, or sit idle, must not crowd out a paying
//! client. Every loop here is bounded, and every wait ends by itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{TestGateway, client, config, start};

/// A gateway with small bounds, so that tests reach them quickly.
async fn bounded(per_address: usize, total: usize, header_secs: u64) -> TestGateway {
    let mut config = config("memory");
    config.max_connections_per_address = per_address;
    config.max_connections = Some(total);
    config.header_read_timeout_secs = header_secs;
    start(config).await
}

/// A connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the server sends before it closes, within 15 s: `None` if it sent nothing and closed
/// (or reset) the connection.
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept the connection open for 15 s");
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

/// Half a request: the start of a header block that never ends.
const HALF: &[u8] = b"GET /v1/demo HTTP/1.1\r\nHost: plannt\r\nX-Slow: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_from_one_address_do_not_crowd_out_a_paying_client() {
    let gateway = bounded(20, 60, 30).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    let mut turned_away = 0;
    for _ in 0..200 {
        let mut stream = connect_from(attacker, gateway.addr).await;
        let _ = stream.write_all(HALF).await;
        held.push(stream);
    }
    // Those over the per-address cap are answered 429 and closed at once; the rest wait.
    for stream in &mut held {
        let mut first = [0u8; 12];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut first)).await {
            // Answered 429 and closed, or reset for the unread half request.
            Ok(Ok(n)) if n == 0 || first[..n].starts_with(b"HTTP/1.1 429") => turned_away += 1,
            Ok(Err(_)) => turned_away += 1,
            _ => {}
        }
    }
    assert!(
        turned_away >= 180,
        "of 200 connections from one address over a cap of 20, {turned_away} were turned away"
    );
    // Another client is served while the 20 still hold their places.
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client().get(gateway.url("/v1/demo")).send(),
    )
    .await
    .expect("a paying client is answered")
    .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let gateway = bounded(256, 1000, 1).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(HALF).await.unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(
        answer
            .as_deref()
            .is_none_or(|a| a.starts_with("HTTP/1.1 408")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let gateway = bounded(256, 1000, 1).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: plannt\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, the connection stays open for a next request, then is closed idle.
    let answer = until_closed(&mut stream).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_global_cap_are_turned_away() {
    let gateway = bounded(256, 10, 30).await;
    let mut held = Vec::new();
    for i in 0..10u8 {
        // Ten addresses, so that only the global cap applies.
        held.push(connect_from(Ipv4Addr::new(127, 0, 1, i + 1), gateway.addr).await);
    }
    // The server counts a connection once it has accepted it: let it catch up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect_from(Ipv4Addr::new(127, 0, 2, 1), gateway.addr).await;
    let answer = until_closed(&mut extra).await;
    assert!(
        answer
            .as_deref()
            .is_none_or(|a| a.starts_with("HTTP/1.1 503")),
        "{answer:?}"
    );
    // Places free up as connections close.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = client().get(gateway.url("/status")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}
