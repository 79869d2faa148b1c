//! Buying tokens for the paid role: a 402 from the mint gateway, then a payment through its dev
//! network.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::Client;

/// Buys one token: a challenge from the mint gateway, paid through its dev network.
pub async fn buy(client: &mut Client, path: &str) -> Result<String, String> {
    let challenge = client
        .send("GET", path, None, None)
        .await
        .map_err(|e| format!("challenge: {e}"))?;
    if challenge.status != 402 {
        return Err(format!(
            "challenge: expected 402, got {} {}",
            challenge.status,
            String::from_utf8_lossy(&challenge.body)
        ));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&challenge.body).map_err(|e| format!("challenge body: {e}"))?;
    let (Some(macaroon), Some(invoice)) = (body["macaroon"].as_str(), body["invoice"].as_str())
    else {
        return Err(format!("challenge without macaroon or invoice: {body}"));
    };
    let request = serde_json::json!({ "invoice": invoice, "account": "load" }).to_string();
    let paid = client
        .send("POST", "/_plannt/dev/pay", None, Some(&request))
        .await
        .map_err(|e| format!("dev pay: {e}"))?;
    let paid_body: serde_json::Value =
        serde_json::from_slice(&paid.body).map_err(|e| format!("dev pay body: {e}"))?;
    match (paid.status, paid_body["preimage"].as_str()) {
        (200, Some(preimage)) => Ok(format!("L402 {macaroon}:{preimage}")),
        _ => Err(format!("dev pay: {} {paid_body}", paid.status)),
    }
}

/// Buys `count` tokens with `concurrency` connections from `source`.
pub async fn buy_many(
    mint: SocketAddr,
    source: Ipv4Addr,
    path: &str,
    count: usize,
    concurrency: usize,
) -> Result<Vec<String>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(source, mint);
            let mut tokens = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                tokens.push(buy(&mut client, &path).await?);
            }
            Ok::<_, String>(tokens)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}
