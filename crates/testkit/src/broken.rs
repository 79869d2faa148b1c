//! HTTP servers that break on purpose, on a loopback port: one that accepts connections and
//! never answers ([`Broken::silent`]), and one that reads a request and closes the connection
//! without answering ([`Broken::hang_up`]). What a client sent them reached them; no answer comes
//! back. Each stops, and closes every connection it holds, when dropped.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

/// A broken server on a loopback port.
pub struct Broken {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Broken {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a broken server does with a connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Reads whatever comes, answers nothing, keeps the connection open.
    Silent,
    /// Reads the request's head, then closes the connection.
    HangUp,
}

impl Broken {
    /// A server that accepts every connection, reads what comes and never answers.
    pub async fn silent() -> Broken {
        Self::start(Mode::Silent).await
    }

    /// A server that reads a request's head and closes the connection without answering.
    pub async fn hang_up() -> Broken {
        Self::start(Mode::HangUp).await
    }

    async fn start(mode: Mode) -> Broken {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            // Dropped with this task, it aborts the connections' tasks too.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, mode));
            }
        });
        Broken { addr, task }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }
}

async fn serve(mut stream: TcpStream, mode: Mode) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
        if matches!(mode, Mode::HangUp) && seen.windows(4).any(|w| w == b"\r\n\r\n") {
            // Dropping the stream closes the connection, unanswered.
            return;
        }
    }
}
