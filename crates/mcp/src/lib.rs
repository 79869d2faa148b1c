//! The MCP server over the paying client: tools to discover, pay for and call L402 endpoints
//! under a spending policy the agent cannot widen.
//!
//! The server lands here as it is built, on top of `plannt-client`.

pub use plannt_client as client;
