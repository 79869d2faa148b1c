//! The catalog at `/.well-known/l402.json`: every offered route with its price, built from the
//! same table that prices the 402s, so the two cannot disagree. Its types are
//! [`plannt_l402::catalog`]'s, the ones Plannt's client reads it with.

use plannt_l402::catalog::{
    Catalog, Endpoint, Match, PaymentTerms, Pricing, Provider, Service, Tier, TokenTerms,
};

use plannt_gateway::{Route, RouteTable, Target};
use plannt_l402::Dialect;

/// The catalog document. `dialects` says which payment dialects a paid route offers.
pub fn catalog(
    routes: &RouteTable,
    network: &str,
    dialects: impl Fn(&Route) -> Vec<Dialect>,
) -> Catalog {
    let services = routes
        .routes()
        .iter()
        .filter(|r| r.unavailable.is_none())
        .map(|route| {
            let endpoint = Endpoint {
                method: route.method.as_ref().map_or("*", |m| m.as_str()).into(),
                path: route.path.clone(),
                matching: if route.prefix {
                    Match::Prefix
                } else {
                    Match::Exact
                },
            };
            let mut service = Service {
                name: route.id.clone(),
                description: route.description.clone(),
                endpoints: vec![endpoint],
                pricing: Some(Pricing::free()),
                tiers: Vec::new(),
                caveats: Vec::new(),
                token: None,
                kind: matches!(route.target, Target::Upstream(_)).then(|| "proxy".into()),
                dialects: Vec::new(),
            };
            if let Some(sats) = route.price_sats {
                service.pricing = Some(Pricing::per_request(sats));
                service.tiers = vec![Tier {
                    tier: 0,
                    amount_sats: sats,
                }];
                service.caveats = vec![
                    format!("services={}:0", route.id),
                    format!("{}_valid_until", route.id),
                ];
                service.token = Some(TokenTerms { single_use: true });
                service.dialects = dialects(route)
                    .iter()
                    .map(|d| d.as_str().to_string())
                    .collect();
            }
            service
        })
        .collect();
    Catalog {
        l402_version: "0".into(),
        provider: Some(Provider {
            name: "Plannt gateway".into(),
            software: Some(format!("plannt/{}", env!("CARGO_PKG_VERSION"))),
        }),
        payment: Some(PaymentTerms {
            scheme: "L402".into(),
            network: Some(network.into()),
            authorization: Some("L402 <macaroon>:<preimage hex>".into()),
            challenge: Some("WWW-Authenticate: L402 macaroon=\"…\", invoice=\"…\"".into()),
        }),
        services,
    }
}
