//! The few lines of HTTP/1.1 client the harness needs: keep-alive, `Content-Length` or chunked
//! bodies, a bound on what it reads, and a source address of its own for each client.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::{MAX_RESPONSE, REQUEST_TIMEOUT};

/// One HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// `x-l402-reason`, when present.
    pub reason: Option<String>,
    /// `x-l402`, when present.
    pub l402: Option<String>,
    /// The body, dechunked.
    pub body: Vec<u8>,
}

impl Answer {
    /// The status and the reason, as counted: `200`, `402 spent`, `401 malformed`, `429`.
    pub fn label(&self) -> String {
        match &self.reason {
            Some(r) => format!("{} {r}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// A keep-alive HTTP/1.1 connection from a chosen loopback source address, opened again after the
/// server closes it or an error.
pub struct Client {
    source: Ipv4Addr,
    server: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened.
    pub connects: u64,
}

impl Client {
    /// A client that connects from `source` to `server` when it first sends.
    pub fn new(source: Ipv4Addr, server: SocketAddr) -> Self {
        Client {
            source,
            server,
            stream: None,
            buf: Vec::with_capacity(4096),
            connects: 0,
        }
    }

    async fn connect(&mut self) -> io::Result<()> {
        if self.stream.is_none() {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((self.source, 0)))?;
            let stream = socket.connect(self.server).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
            self.connects += 1;
        }
        Ok(())
    }

    /// Sends one request and reads its answer, within [`REQUEST_TIMEOUT`]. After an error the
    /// connection is dropped (the next request opens a new one).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        json_body: Option<&str>,
    ) -> io::Result<Answer> {
        let result = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange(method, path, authorization, json_body),
        )
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in 10 s")));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        json_body: Option<&str>,
    ) -> io::Result<Answer> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.server);
        if let Some(a) = authorization {
            let _ = write!(request, "authorization: {a}\r\n");
        }
        if let Some(b) = json_body {
            let _ = write!(
                request,
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            );
        } else {
            request.push_str("\r\n");
        }
        self.connect().await?;
        let stream = self.stream.as_mut().expect("just connected");
        stream.write_all(request.as_bytes()).await?;
        let (answer, close) = read_answer(stream, &mut self.buf).await?;
        if close {
            self.stream = None;
        }
        Ok(answer)
    }
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; an end of stream is an error (a whole answer was expected).
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.len() > MAX_RESPONSE {
        return Err(bad("answer over 1 MiB"));
    }
    let mut chunk = [0u8; 16384];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Reads one answer; says whether the server will close the connection after it.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(Answer, bool)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    let (mut reason, mut l402) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad content-length"))?,
                )
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "x-l402-reason" => reason = Some(value.to_string()),
            "x-l402" => l402 = Some(value.to_string()),
            _ => {}
        }
    }
    buf.drain(..head_end);
    let body = if chunked {
        loop {
            if let Some((body, used)) = dechunk(buf)? {
                buf.drain(..used);
                break body;
            }
            fill(stream, buf).await?;
        }
    } else {
        let length = length.unwrap_or(0);
        if length > MAX_RESPONSE {
            return Err(bad("body over 1 MiB"));
        }
        while buf.len() < length {
            fill(stream, buf).await?;
        }
        buf.drain(..length).collect()
    };
    let answer = Answer {
        status,
        reason,
        l402,
        body,
    };
    Ok((answer, close))
}

/// A whole chunked body at the start of `buf`, and how many bytes it took; `None` if more are needed.
pub(crate) fn dechunk(buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[at..at + eol]).map_err(|_| bad("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        at += eol + 2;
        if size == 0 {
            // No trailers from our gateway: the final CRLF.
            if buf.len() < at + 2 {
                return Ok(None);
            }
            return Ok(Some((body, at + 2)));
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}
