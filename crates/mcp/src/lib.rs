//! The MCP server over the paying client: tools to discover, pay for and call L402 endpoints
//! under a spending policy the agent cannot widen.
//!
//! ```text
//! MCP client (Claude Code, Cursor, the Python SDK…)
//!   │  stdio, or streamable HTTP at /mcp
//!   ▼
//! PlanntMcp: fetch · discover · balance · spending
//!   │  confirm above the threshold (elicitation, or an InputRequiredResult on 2026-07-28)
//!   ▼
//! plannt-client: checks, budgets, ledger.sqlite (shared with the CLI), the wallet
//! ```
//!
//! The policy (per-request cap, budgets, allowed hosts, confirmation threshold) comes from the
//! operator's settings file and environment; see [`server`] for the server and [`tools`] for
//! the tools, one file each.

mod answer;
mod ask;
mod catalog;
pub mod confirm;
mod pay;
pub mod server;
pub mod tools;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use plannt_client as client;
pub use server::{Config, DEFAULT_MAX_BODY_BYTES, PlanntMcp};
pub use tools::{discover::DiscoverArgs, fetch::FetchArgs, spending::SpendingArgs};

/// The path the streamable HTTP transport serves.
pub const HTTP_PATH: &str = "/mcp";

/// Why serving MCP stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The session on stdio did not start (the client's first messages were not an MCP
    /// initialization).
    #[error("the MCP session on stdio did not start: {0}")]
    Start(#[source] Box<rmcp::service::ServerInitializeError>),
    /// Standard input closed before an MCP client initialised the session: nothing was asked.
    #[error(
        "standard input closed before an MCP client initialised the session, so nothing was asked and nothing was paid. plannt mcp speaks MCP on standard input and output: an MCP client (Claude Code, Cursor, …) starts it, e.g. `claude mcp add plannt -- plannt mcp`; see docs/mcp.md"
    )]
    ClosedBeforeInitialize,
    /// The session on stdio ended with an error.
    #[error("the MCP session on stdio ended with an error: {0}")]
    Session(#[source] tokio::task::JoinError),
    /// The listener of the HTTP transport has no local address.
    #[error("the listener has no address: {0}")]
    Address(#[source] std::io::Error),
    /// The HTTP server failed.
    #[error("the MCP HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// Serves MCP on standard input and output until the client closes it.
pub async fn serve_stdio(server: PlanntMcp) -> Result<(), ServeError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| match e {
            rmcp::service::ServerInitializeError::ConnectionClosed(_) => {
                ServeError::ClosedBeforeInitialize
            }
            other => ServeError::Start(Box::new(other)),
        })?;
    running.waiting().await.map_err(ServeError::Session)?;
    Ok(())
}

/// Serves MCP over streamable HTTP at [`HTTP_PATH`] on `listener` until `shutdown` resolves.
///
/// Requests must name the listener's host (or a loopback name) in `Host`, which keeps a
/// browser page from reaching a local server through DNS rebinding.
pub async fn serve_http(
    server: PlanntMcp,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local: SocketAddr = listener.local_addr().map_err(ServeError::Address)?;
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !local.ip().is_loopback() && !local.ip().is_unspecified() {
        hosts.push(local.ip().to_string());
    }
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let stop = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service(HTTP_PATH, service);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await
        .map_err(ServeError::Http)
}
