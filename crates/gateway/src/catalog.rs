//! The catalog at `/.well-known/l402.json`: every offered route with its price, built from the
//! same table that prices the 402s, so the two cannot disagree.
//!
//! It follows the compact JSON profile of the L402 discovery proposal (lightninglabs/L402 PR
//! #27): a version, the provider, and services, each with its endpoints, price and the caveats
//! its tokens carry.

use serde_json::{Value, json};

use crate::routes::{RouteTable, Target};

/// The catalog document.
pub fn catalog(routes: &RouteTable, network: &str) -> Value {
    let services: Vec<Value> = routes
        .routes()
        .iter()
        .filter(|r| r.unavailable.is_none())
        .map(|route| {
            let method = route.method.as_ref().map_or("*", |m| m.as_str());
            let mut service = json!({
                "name": route.id,
                "description": route.description,
                "endpoints": [{
                    "method": method,
                    "path": route.path,
                    "match": if route.prefix { "prefix" } else { "exact" },
                }],
            });
            match route.price_sats {
                Some(sats) => {
                    service["pricing"] =
                        json!({ "model": "fixed", "amount_sats": sats, "per": "request" });
                    service["tiers"] = json!([{ "tier": 0, "amount_sats": sats }]);
                    service["caveats"] = json!([
                        format!("services={}:0", route.id),
                        format!("{}_valid_until", route.id),
                    ]);
                    service["token"] = json!({ "single_use": true });
                }
                None => service["pricing"] = json!({ "model": "free" }),
            }
            if let Target::Upstream(_) = route.target {
                service["kind"] = json!("proxy");
            }
            service
        })
        .collect();
    json!({
        "l402_version": "0",
        "provider": { "name": "Plannt gateway", "software": format!("plannt/{}", env!("CARGO_PKG_VERSION")) },
        "payment": {
            "scheme": "L402",
            "network": network,
            "authorization": "L402 <macaroon>:<preimage hex>",
            "challenge": "WWW-Authenticate: L402 macaroon=\"…\", invoice=\"…\"",
        },
        "services": services,
    })
}
