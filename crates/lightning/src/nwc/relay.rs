//! The requests of Nostr Wallet Connect over its relays: connecting, reading the wallet's info
//! event for the encryption it takes, one request signed, encrypted and sent, and its reply
//! awaited, checked to be the wallet's own and decrypted; a wallet's error codes as
//! [`LightningError`]s.

use std::time::Duration;

use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{
    Client, ClientMessage, Event, EventBuilder, EventId, Filter, Kind, RelayOptions,
    RelayPoolNotification, RelayUrl, SubscriptionId, Tag, TagKind, Timestamp,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use url::Url;

use super::Nwc;
use crate::LightningError;
use crate::backend::CONNECT_TIMEOUT;

/// How requests to the wallet are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NwcEncryption {
    /// NIP-44 v2, when the wallet's info event offers `nip44_v2`.
    Nip44V2,
    /// NIP-04, the legacy scheme, otherwise.
    Nip04,
}

impl NwcEncryption {
    /// The scheme a wallet's info event asks for.
    fn of_info(event: &Event) -> Self {
        let offered = event.tags.iter().any(|tag| {
            let parts = tag.as_slice();
            parts.first().map(String::as_str) == Some("encryption")
                && parts[1..]
                    .iter()
                    .flat_map(|value| value.split_whitespace())
                    .any(|scheme| scheme == "nip44_v2")
        });
        if offered {
            NwcEncryption::Nip44V2
        } else {
            NwcEncryption::Nip04
        }
    }
}

/// The relays, connected, and what the wallet's info event says.
pub(super) struct Connection {
    client: Client,
    relays: Vec<RelayUrl>,
    pub(super) encryption: NwcEncryption,
    /// The methods the info event lists (`None`: the wallet published none).
    pub(super) methods: Option<Vec<String>>,
}

/// A decrypted reply.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    result_type: Option<String>,
    #[serde(default)]
    error: Option<ReplyError>,
    #[serde(default)]
    result: Option<Value>,
}

/// A reply's `error`.
#[derive(Deserialize)]
struct ReplyError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Why a request got no result.
pub(super) enum Failure {
    /// It never left: nothing reached the wallet.
    NotSent(LightningError),
    /// No reply came in time. A payment may still complete.
    NoReply,
    /// The wallet answered an error.
    Wallet { code: String, message: String },
    /// A reply came that cannot be read.
    Unreadable(String),
}

impl Failure {
    pub(super) fn into_error(self) -> LightningError {
        match self {
            Failure::NotSent(error) => error,
            Failure::NoReply => LightningError::Timeout,
            Failure::Wallet { code, message } => wallet_error(&code, &message, false),
            Failure::Unreadable(why) => LightningError::Backend(format!("nwc: {why}")),
        }
    }
}

/// A NIP-47 error code as a [`LightningError`]. `paying`: the request was `pay_invoice`, so an
/// error that refuses the request says nothing was paid.
pub(super) fn wallet_error(code: &str, message: &str, paying: bool) -> LightningError {
    let text = if message.is_empty() {
        format!("nwc: {code}")
    } else {
        format!("nwc: {code}: {message}")
    };
    let lower = message.to_ascii_lowercase();
    match code {
        "INSUFFICIENT_BALANCE" => LightningError::InsufficientBalance(text),
        "QUOTA_EXCEEDED" => {
            LightningError::InsufficientBalance(format!("{text} (the connection's budget)"))
        }
        "PAYMENT_FAILED"
            if lower.contains("already paid") || lower.contains("already been paid") =>
        {
            LightningError::AlreadyPaid
        }
        "PAYMENT_FAILED" if lower.contains("expired") => LightningError::InvoiceExpired,
        "PAYMENT_FAILED" if lower.contains("no route") || lower.contains("unable to route") => {
            LightningError::NoRoute(text)
        }
        "PAYMENT_FAILED" => LightningError::PaymentFailed(text),
        "UNAUTHORIZED" | "RESTRICTED" => LightningError::Unauthorized(text),
        "RATE_LIMITED" | "NOT_IMPLEMENTED" | "UNSUPPORTED_ENCRYPTION" if paying => {
            LightningError::PaymentFailed(format!("{text} (nothing was paid)"))
        }
        "RATE_LIMITED" => LightningError::Unreachable(format!("{text} (try again later)")),
        _ => LightningError::Backend(text),
    }
}

fn unreachable(relays: &[Url], why: impl std::fmt::Display) -> LightningError {
    let names: Vec<&str> = relays.iter().map(Url::as_str).collect();
    LightningError::Unreachable(format!(
        "nwc relays {}: {why}; nothing was sent",
        names.join(", ")
    ))
}

/// Whether an event refers to `request` with an `e` tag.
fn replies_to(event: &Event, request: &EventId) -> bool {
    let hex = request.to_hex();
    event.tags.iter().any(|tag| {
        let parts = tag.as_slice();
        parts.first().map(String::as_str) == Some("e") && parts.get(1) == Some(&hex)
    })
}

impl Nwc {
    pub(super) async fn connection(&self) -> Result<&Connection, LightningError> {
        self.connection.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Connection, LightningError> {
        let client = Client::builder().build();
        let mut relays = Vec::with_capacity(self.relays.len());
        for url in &self.relays {
            let relay = RelayUrl::parse(url.as_str())
                .map_err(|e| unreachable(&self.relays, format!("{url}: {e}")))?;
            client
                .pool()
                .add_relay(
                    relay.clone(),
                    RelayOptions::new().verify_subscriptions(true),
                )
                .await
                .map_err(|e| unreachable(&self.relays, e))?;
            relays.push(relay);
        }
        let output = client.try_connect(CONNECT_TIMEOUT).await;
        if output.success.is_empty() {
            let why: Vec<String> = output
                .failed
                .iter()
                .map(|(url, e)| format!("{url}: {e}"))
                .collect();
            client.shutdown().await;
            return Err(unreachable(&self.relays, why.join("; ")));
        }
        let relays: Vec<RelayUrl> = relays
            .into_iter()
            .filter(|url| output.success.contains(url))
            .collect();
        let info = Filter::new()
            .author(self.wallet)
            .kind(Kind::WalletConnectInfo)
            .limit(1);
        let events = client
            .fetch_events(info, self.request_timeout)
            .await
            .map_err(|e| unreachable(&self.relays, e))?;
        let encryption = match events.first() {
            Some(event) => NwcEncryption::of_info(event),
            None => {
                tracing::warn!(
                    wallet = %self.wallet.to_hex(),
                    "nwc: the wallet published no info event; using NIP-04"
                );
                NwcEncryption::Nip04
            }
        };
        // NIP-47: the info event's content is the space-separated list of methods it serves.
        let methods = events
            .first()
            .map(|event| event.content.split_whitespace().map(String::from).collect());
        tracing::debug!(?encryption, ?methods, "nwc: connected");
        Ok(Connection {
            client,
            relays,
            encryption,
            methods,
        })
    }

    /// Sends one request and waits up to `timeout` for the wallet's reply to it.
    pub(super) async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let connection = self.connection().await.map_err(Failure::NotSent)?;
        let content = json!({ "method": method, "params": params }).to_string();
        let secret = self.keys.secret_key();
        let mut tags = vec![
            Tag::public_key(self.wallet),
            Tag::expiration(Timestamp::now() + timeout.as_secs().max(1)),
        ];
        let encrypted = match connection.encryption {
            NwcEncryption::Nip44V2 => {
                tags.push(Tag::custom(TagKind::custom("encryption"), ["nip44_v2"]));
                nip44::encrypt(secret, &self.wallet, content, nip44::Version::V2)
                    .map_err(|e| e.to_string())
            }
            NwcEncryption::Nip04 => {
                nip04::encrypt(secret, &self.wallet, content).map_err(|e| e.to_string())
            }
        }
        .map_err(|e| Failure::NotSent(LightningError::Backend(format!("nwc: encrypting: {e}"))))?;
        let request = EventBuilder::new(Kind::WalletConnectRequest, encrypted)
            .tags(tags)
            .sign_with_keys(&self.keys)
            .map_err(|e| Failure::NotSent(LightningError::Backend(format!("nwc: signing: {e}"))))?;

        let client = &connection.client;
        let mut notifications = client.notifications();
        let id = SubscriptionId::generate();
        let filter = Filter::new()
            .author(self.wallet)
            .kind(Kind::WalletConnectResponse)
            .event(request.id);
        let subscribed = client
            .subscribe_with_id_to(connection.relays.clone(), id.clone(), filter, None)
            .await
            .map_err(|e| Failure::NotSent(unreachable(&self.relays, e)))?;
        if subscribed.success.is_empty() {
            return Err(Failure::NotSent(unreachable(
                &self.relays,
                "no relay took the subscription",
            )));
        }
        // No `OK` is awaited: the reply is.
        let sent = client
            .send_msg_to(
                connection.relays.clone(),
                ClientMessage::event(request.clone()),
            )
            .await;
        match sent {
            Ok(output) if !output.success.is_empty() => {}
            Ok(_) => {
                client.unsubscribe(&id).await;
                return Err(Failure::NotSent(unreachable(
                    &self.relays,
                    "no relay took the request",
                )));
            }
            Err(e) => {
                client.unsubscribe(&id).await;
                return Err(Failure::NotSent(unreachable(&self.relays, e)));
            }
        }
        let wallet = self.wallet;
        let reply = tokio::time::timeout(timeout, async {
            loop {
                match notifications.recv().await {
                    Ok(RelayPoolNotification::Event {
                        subscription_id,
                        event,
                        ..
                    }) if subscription_id == id => {
                        if event.pubkey != wallet
                            || event.kind != Kind::WalletConnectResponse
                            || !replies_to(&event, &request.id)
                        {
                            tracing::debug!(author = %event.pubkey, "nwc: ignored a reply");
                            continue;
                        }
                        return Some(*event);
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        })
        .await;
        client.unsubscribe(&id).await;
        let Ok(Some(reply)) = reply else {
            return Err(Failure::NoReply);
        };
        self.read_reply(&reply, method)
    }

    fn read_reply(&self, event: &Event, method: &str) -> Result<Value, Failure> {
        let secret = self.keys.secret_key();
        let text = if event.content.contains("?iv=") {
            nip04::decrypt(secret, &self.wallet, &event.content).map_err(|e| e.to_string())
        } else {
            nip44::decrypt(secret, &self.wallet, &event.content).map_err(|e| e.to_string())
        }
        .map_err(|e| Failure::Unreadable(format!("cannot decrypt the reply: {e}")))?;
        let reply: Reply = serde_json::from_str(&text)
            .map_err(|e| Failure::Unreadable(format!("unreadable reply: {e}")))?;
        if let Some(error) = reply.error {
            return Err(Failure::Wallet {
                code: error.code,
                message: error.message.chars().take(200).collect(),
            });
        }
        if let Some(kind) = &reply.result_type
            && kind != method
        {
            return Err(Failure::Unreadable(format!(
                "a {kind} reply to a {method} request"
            )));
        }
        reply
            .result
            .ok_or_else(|| Failure::Unreadable(format!("a {method} reply with no result")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_error_codes() {
        let cases = [
            ("INSUFFICIENT_BALANCE", "", false, "insufficient_balance"),
            ("QUOTA_EXCEEDED", "", false, "insufficient_balance"),
            ("PAYMENT_FAILED", "boom", true, "payment_failed"),
            ("PAYMENT_FAILED", "invoice expired", true, "invoice_expired"),
            (
                "PAYMENT_FAILED",
                "invoice already paid",
                true,
                "already_paid",
            ),
            ("PAYMENT_FAILED", "no route found", true, "no_route"),
            ("UNAUTHORIZED", "", false, "unauthorized"),
            ("RESTRICTED", "", true, "unauthorized"),
            ("RATE_LIMITED", "", true, "payment_failed"),
            ("RATE_LIMITED", "", false, "unreachable"),
            ("NOT_IMPLEMENTED", "", true, "payment_failed"),
            ("NOT_IMPLEMENTED", "", false, "backend"),
            ("UNSUPPORTED_ENCRYPTION", "", true, "payment_failed"),
            ("INTERNAL", "", true, "backend"),
            ("OTHER", "", true, "backend"),
            ("SOMETHING_NEW", "", true, "backend"),
        ];
        for (code, message, paying, expected) in cases {
            assert_eq!(
                wallet_error(code, message, paying).code(),
                expected,
                "{code} {message} {paying}"
            );
        }
        // A payment answered INTERNAL or OTHER may have happened: look it up.
        assert!(wallet_error("INTERNAL", "", true).outcome_unknown());
        assert!(!wallet_error("PAYMENT_FAILED", "", true).outcome_unknown());
    }
}
