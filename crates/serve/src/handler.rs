//! The names of the built-in handlers a route may take, as the configuration reads them.

use serde::Deserialize;

/// A built-in handler, as a route's `handler` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// `{"result":"verified"}`: the product page's demo.
    Demo,
    /// A protected payload.
    Data,
    /// A prompt to an OpenAI-compatible model (`openai_base_url`).
    Generate,
    /// Health: backend, store, uptime.
    Status,
}

impl Handler {
    /// Every handler, for messages.
    pub const ALL: [Handler; 4] = [
        Handler::Demo,
        Handler::Data,
        Handler::Generate,
        Handler::Status,
    ];

    /// Its name in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Handler::Demo => "demo",
            Handler::Data => "data",
            Handler::Generate => "generate",
            Handler::Status => "status",
        }
    }
}
