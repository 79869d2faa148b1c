//! The catalog at `/.well-known/l402.json`: every offered route with its price, built from the
//! same table that prices the 402s, so the two cannot disagree. Its types are
//! [`plannt_l402::catalog`]'s, the ones Plannt's client reads it with.

use plannt_l402::catalog::{
    Catalog, DialectTerms, Endpoint, Match, PaymentTerms, Pricing, Provider, QuotaTerms, Service,
    SessionTerms, Tier, TokenTerms,
};

use plannt_gateway::{Route, RouteTable, Target};
use plannt_l402::Dialect;

/// What the catalog says about payment beyond the route table.
pub struct PaymentFacts<'a> {
    /// The Lightning network the invoices are on.
    pub network: &'a str,
    /// Whether the backend can look up invoices (x402 needs it).
    pub can_lookup_invoices: bool,
    /// Where the OpenAPI document is served.
    pub openapi: Option<&'a str>,
    /// Whether the backend can refund sessions, so that the routes that configure them offer
    /// them.
    pub sessions: bool,
}

fn terms(quota: plannt_gateway::Quota) -> QuotaTerms {
    QuotaTerms {
        requests: quota.requests,
        per_secs: quota.per_secs(),
    }
}

/// The catalog document. `dialects` says which payment dialects a paid route offers, in order.
pub fn catalog(
    routes: &RouteTable,
    facts: &PaymentFacts<'_>,
    dialects: impl Fn(&Route) -> Vec<Dialect>,
) -> Catalog {
    // Every dialect some paid route offers, in the order they first appear.
    let mut offered: Vec<Dialect> = Vec::new();
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
                free: route.free.map(terms),
                rate_limit: route.rate_limit.map(terms),
                session: None,
            };
            if !route.is_public() {
                let route_dialects = dialects(route);
                match (route.price_sats, &route.meter) {
                    (Some(sats), _) => {
                        service.pricing = Some(Pricing::per_request(sats));
                        service.tiers = vec![Tier {
                            tier: 0,
                            amount_sats: sats,
                        }];
                    }
                    (None, Some(rule)) => {
                        let rule = serde_json::to_value(&**rule).unwrap_or_default();
                        service.pricing = Some(Pricing::metered("openai-tokens", rule));
                        // Offered as the paywall offers them: through MPP, on a backend that
                        // can refund.
                        service.session = route
                            .session
                            .filter(|_| facts.sessions && route_dialects.contains(&Dialect::Mpp))
                            .map(|s| SessionTerms {
                                deposit_sats: s.deposit_sats,
                                idle_secs: s.idle_secs,
                            });
                    }
                    (None, None) => {}
                }
                if route_dialects.contains(&Dialect::L402) {
                    service.caveats = vec![
                        format!("services={}:0", route.id),
                        format!("{}_valid_until", route.id),
                    ];
                    if route.meter.is_some() {
                        service.caveats.push(format!("{}_price_sats", route.id));
                    }
                }
                service.token = Some(TokenTerms { single_use: true });
                for d in &route_dialects {
                    if !offered.contains(d) {
                        offered.push(*d);
                    }
                }
                service.dialects = route_dialects
                    .iter()
                    .map(|d| d.as_str().to_string())
                    .collect();
            }
            service
        })
        .collect();
    let l402 = offered.contains(&Dialect::L402);
    let scheme = match offered.first() {
        _ if l402 => "L402",
        Some(Dialect::Mpp) => "Payment",
        Some(Dialect::X402) => "x402",
        _ => "L402",
    };
    let mut terms: Vec<DialectTerms> = offered.iter().map(|d| dialect_terms(*d, None)).collect();
    for d in plannt_gateway::DEFAULT_DIALECTS {
        if !offered.contains(&d) {
            let why = if d == Dialect::X402 && !facts.can_lookup_invoices {
                "the Lightning backend cannot look up invoices, which x402 needs"
            } else {
                "no paid route offers it (the dialects setting)"
            };
            terms.push(dialect_terms(d, Some(why)));
        }
    }
    Catalog {
        l402_version: "0".into(),
        provider: Some(Provider {
            name: "Plannt gateway".into(),
            software: Some(format!("plannt/{}", env!("CARGO_PKG_VERSION"))),
        }),
        payment: Some(PaymentTerms {
            scheme: scheme.into(),
            network: Some(facts.network.into()),
            authorization: l402.then(|| "L402 <macaroon>:<preimage hex>".into()),
            challenge: l402.then(|| "WWW-Authenticate: L402 macaroon=\"…\", invoice=\"…\"".into()),
            dialects: terms,
        }),
        services,
        openapi: facts.openapi.map(str::to_string),
    }
}

/// A dialect's headers, for people; `why_not` when no route offers it.
fn dialect_terms(dialect: Dialect, why_not: Option<&str>) -> DialectTerms {
    let (challenge, credential, receipt) = match dialect {
        Dialect::L402 => (
            "WWW-Authenticate: L402 macaroon=\"…\", invoice=\"…\"",
            "Authorization: L402 <macaroon>:<preimage hex>",
            "x-l402: spent",
        ),
        Dialect::Mpp => (
            "WWW-Authenticate: Payment id=\"…\", realm=\"…\", method=\"lightning\", intent=\"charge\", request=\"…\", expires=\"…\"",
            "Authorization: Payment <base64url JSON with payload.preimage>",
            "Payment-Receipt: <base64url JSON>",
        ),
        Dialect::X402 => (
            "PAYMENT-REQUIRED: <base64 JSON, scheme exact on Lightning>",
            "PAYMENT-SIGNATURE: <base64 JSON naming the paid invoice>",
            "PAYMENT-RESPONSE: <base64 JSON>",
        ),
    };
    DialectTerms {
        name: dialect.as_str().into(),
        offered: why_not.is_none(),
        why_not: why_not.map(str::to_string),
        challenge: Some(challenge.into()),
        credential: Some(credential.into()),
        receipt: Some(receipt.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use async_trait::async_trait;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use axum::response::Response;
    use plannt_gateway::store::MemoryStore;
    use plannt_gateway::{Paywall, PaywallOptions};
    use plannt_l402::{KeyRing, RootKey};
    use plannt_lightning::dev::{DevNetwork, DevWallet};
    use plannt_lightning::{InvoiceRequest, IssuedInvoice, LightningError, Receiver};
    use tower::{Layer, ServiceExt};

    use super::*;

    /// The dev wallet, but a backend that cannot look up the invoices it issued.
    struct NoLookup(DevWallet);

    #[async_trait]
    impl Receiver for NoLookup {
        async fn create_invoice(
            &self,
            request: &InvoiceRequest,
        ) -> Result<IssuedInvoice, LightningError> {
            self.0.create_invoice(request).await
        }
        async fn health(&self) -> Result<(), LightningError> {
            self.0.health().await
        }
    }

    #[tokio::test]
    async fn a_backend_that_cannot_look_up_invoices_offers_no_x402_and_the_catalog_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let network = DevNetwork::open(dir.path(), 1_000).unwrap();
        let routes = RouteTable::new(vec![Route::paid(
            "demo",
            Method::GET,
            "/v1/demo",
            21,
            Target::Service,
        )])
        .unwrap();
        let paywall = Arc::new(Paywall::new(
            KeyRing::single(RootKey::new([7; 32])),
            Arc::new(NoLookup(network.wallet("gateway"))),
            Arc::new(MemoryStore::new()),
            routes,
            PaywallOptions::default(),
        ));
        assert!(!paywall.can_lookup_invoices());
        let facts = PaymentFacts {
            network: "regtest",
            can_lookup_invoices: paywall.can_lookup_invoices(),
            openapi: Some("/openapi.json"),
            sessions: false,
        };
        let catalog = catalog(&paywall.routes(), &facts, |r| paywall.dialects_of(r));
        assert_eq!(catalog.services[0].dialects, ["mpp", "l402"]);
        let payment = catalog.payment.unwrap();
        assert_eq!(
            payment.scheme, "L402",
            "readers of the L402 profile find L402"
        );
        let terms: Vec<(&str, bool)> = payment
            .dialects
            .iter()
            .map(|d| (d.name.as_str(), d.offered))
            .collect();
        assert_eq!(terms, [("mpp", true), ("l402", true), ("x402", false)]);
        let why = payment.dialects[2].why_not.as_deref().unwrap();
        assert!(why.contains("cannot look up invoices"), "{why}");
        assert_eq!(catalog.openapi.as_deref(), Some("/openapi.json"));

        let doc = crate::openapi::openapi(&paywall.routes(), "regtest", |r| paywall.dialects_of(r));
        let op = &doc["paths"]["/v1/demo"]["get"];
        assert_eq!(
            op["x-payment-info"]["offers"][0]["dialects"],
            serde_json::json!(["mpp", "l402"])
        );
        assert!(
            op["responses"]["402"]["headers"]
                .get("PAYMENT-REQUIRED")
                .is_none()
        );

        // And the 402 itself: two challenges, no PAYMENT-REQUIRED.
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let request = Request::get("/v1/demo").body(Body::empty()).unwrap();
        let answer = paywall.layer().layer(inner).oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED);
        assert!(answer.headers().get("payment-required").is_none());
        let schemes: Vec<&str> = answer
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().split(' ').next().unwrap())
            .collect();
        assert_eq!(schemes, ["Payment", "L402"]);
    }
}
