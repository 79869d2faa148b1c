//! The OpenAPI 3.1 document at `/openapi.json`: every offered route as operations, built from
//! the same route table that prices the 402s (as the catalog is), so the two cannot disagree.
//!
//! A paid operation carries MPP's discovery extension, `x-payment-info` (the shape `mppx`
//! validates: `offers` of `amount` as a decimal string, `currency`, `intent`, `method`), with
//! the price in sats and the dialects its 402 offers; the security requirements name each
//! dialect's credential (`Authorization: L402`, `Authorization: Payment`, `PAYMENT-SIGNATURE`);
//! its 402 response names the challenge headers and the JSON body. A free operation has no
//! security and no 402. A prefix route is one path with a trailing `{path}` parameter and
//! `x-plannt-match: prefix`; a route for any method is an operation per common method.

use axum::http::Method;
use plannt_gateway::{Route, RouteTable};
use plannt_l402::Dialect;
use serde_json::{Map, Value, json};

/// Where the gateway serves the document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The methods a route for any method is described with.
const ANY_METHOD: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The OpenAPI document for `routes`; `dialects` says which payment dialects a paid route
/// offers, in the order its 402 carries them.
pub fn openapi(
    routes: &RouteTable,
    network: &str,
    dialects: impl Fn(&Route) -> Vec<Dialect>,
) -> Value {
    let mut paths = Map::new();
    for route in routes.routes().iter().filter(|r| r.unavailable.is_none()) {
        let (path, prefix_parameter) = if route.prefix {
            let base = route.path.trim_end_matches('/');
            (
                format!("{base}/{{path}}"),
                Some(json!({
                    "name": "path",
                    "in": "path",
                    "required": true,
                    "description": format!("the rest of the path: any path under {base}/"),
                    "schema": {"type": "string"},
                })),
            )
        } else {
            (route.path.clone(), None)
        };
        let methods: Vec<Method> = match &route.method {
            Some(m) => vec![m.clone()],
            None => ANY_METHOD.to_vec(),
        };
        let offered = if route.is_public() {
            Vec::new()
        } else {
            dialects(route)
        };
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        for method in methods {
            let id = if route.method.is_some() {
                route.id.clone()
            } else {
                format!("{}.{}", route.id, method.as_str().to_ascii_lowercase())
            };
            let mut operation = operation(route, &id, &method, &offered, network);
            if let Some(parameter) = &prefix_parameter {
                operation["parameters"] = json!([parameter]);
                operation["x-plannt-match"] = json!("prefix");
            }
            item[method.as_str().to_ascii_lowercase()] = operation;
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Plannt gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Routes sold per request over Lightning. A paid operation answers a request without a credential with 402 and one invoice, offered in each payment dialect its x-payment-info lists: L402 (WWW-Authenticate: L402), MPP (WWW-Authenticate: Payment, the Lightning charge intent) and x402 (PAYMENT-REQUIRED). One payment buys one answer, whichever dialect presents it.",
        },
        "paths": paths,
        "components": components(),
        "externalDocs": {
            "description": "The catalog of the same routes (the L402 discovery profile)",
            "url": plannt_l402::CATALOG_PATH,
        },
    })
}

/// One operation of `route`.
fn operation(
    route: &Route,
    id: &str,
    method: &Method,
    offered: &[Dialect],
    network: &str,
) -> Value {
    let summary = if route.description.is_empty() {
        route.id.clone()
    } else {
        route.description.clone()
    };
    let mut operation = json!({
        "operationId": id,
        "summary": summary,
        "responses": {
            "200": {"description": "The answer"},
        },
    });
    if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
        operation["requestBody"] = json!({
            "required": false,
            "content": {"*/*": {"schema": {}}},
        });
    }
    // Plannt's extensions: the route's rate limit and free tier, per client address.
    let too_many = route.rate_limit.map(|limit| {
        operation["x-rate-limit"] =
            json!({"requests": limit.requests, "per_secs": limit.per_secs()});
        json!({
            "description": format!("Too Many Requests: more than {} per {} s from one address, paid or not (or, for a paid route, too many payment challenges); Retry-After says when to come back", limit.requests, limit.per_secs()),
        })
    });
    if let Some(too_many) = &too_many {
        operation["responses"]["429"] = too_many.clone();
    }
    let names: Vec<&str> = offered.iter().map(Dialect::as_str).collect();
    // A fixed price, or a rule that prices each request from its body (then the amount is the
    // 402's: null here, and the rule beside it).
    let (amount, price, description, rule) = match (route.price_sats, &route.meter) {
        (Some(price), _) => (
            json!(price.to_string()),
            format!("{price} sats"),
            format!("{price} sats per request, one invoice on {network}, single use"),
            None,
        ),
        (None, Some(rule)) => (
            Value::Null,
            "the price of this request".to_string(),
            format!(
                "priced per request by its tokens (the prompt counted, the output at its max_tokens; at least {} sats), one invoice on {network}, single use, bound to that price",
                rule.min_sats
            ),
            serde_json::to_value(&**rule).ok(),
        ),
        (None, None) => {
            operation["security"] = json!([]);
            return operation;
        }
    };
    if let Some(free) = route.free {
        operation["x-free-tier"] = json!({"requests": free.requests, "per_secs": free.per_secs()});
    }
    operation["x-payment-info"] = json!({
        "offers": [{
            "amount": amount,
            "currency": "sat",
            "intent": "charge",
            "method": "lightning",
            "description": description,
            "dialects": names,
        }],
    });
    if let Some(rule) = rule {
        operation["x-payment-info"]["offers"][0]["x-plannt-price-rule"] = rule;
        operation["requestBody"] = json!({
            "required": true,
            "description": "An OpenAI chat completion request: its model, messages and max_tokens (or max_completion_tokens) set the price",
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array"},
                    "max_tokens": {"type": "integer", "minimum": 0},
                    "max_completion_tokens": {"type": "integer", "minimum": 0},
                    "n": {"type": "integer", "minimum": 1},
                    "stream": {"type": "boolean"},
                },
            }}},
        });
    }
    operation["security"] = Value::Array(
        offered
            .iter()
            .map(|d| json!({ (d.as_str()): [] }))
            .collect(),
    );
    let mut challenge_headers = Map::new();
    if offered.iter().any(|d| *d != Dialect::X402) {
        challenge_headers.insert(
            "WWW-Authenticate".into(),
            json!({"$ref": "#/components/headers/WWW-Authenticate"}),
        );
    }
    if offered.contains(&Dialect::X402) {
        challenge_headers.insert(
            "PAYMENT-REQUIRED".into(),
            json!({"$ref": "#/components/headers/PAYMENT-REQUIRED"}),
        );
    }
    let mut paid_headers = Map::new();
    paid_headers.insert(
        "x-l402".into(),
        json!({"$ref": "#/components/headers/x-l402"}),
    );
    if offered.contains(&Dialect::Mpp) {
        paid_headers.insert(
            "Payment-Receipt".into(),
            json!({"$ref": "#/components/headers/Payment-Receipt"}),
        );
    }
    if offered.contains(&Dialect::X402) {
        paid_headers.insert(
            "PAYMENT-RESPONSE".into(),
            json!({"$ref": "#/components/headers/PAYMENT-RESPONSE"}),
        );
    }
    operation["responses"] = json!({
        "200": {"description": "The paid answer", "headers": paid_headers},
        "401": {"$ref": "#/components/responses/NotGenuine"},
        "402": {
            "description": format!("Payment Required: an invoice for {price}, offered as {}", names.join(", ")),
            "headers": challenge_headers,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PaymentRequired"}},
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
            },
        },
        "429": {"$ref": "#/components/responses/TooManyChallenges"},
        "503": {"$ref": "#/components/responses/Unavailable"},
    });
    if let Some(too_many) = too_many {
        operation["responses"]["429"] = too_many;
    }
    if let Some(free) = route.free {
        operation["responses"]["200"]["description"] = json!(format!(
            "The paid answer, or one of the {} free answers per {} s to one address (x-l402: free)",
            free.requests,
            free.per_secs()
        ));
    }
    operation
}

/// What the operations refer to.
fn components() -> Value {
    let text = json!({"type": "string"});
    json!({
        "securitySchemes": {
            "l402": {
                "type": "http",
                "scheme": "L402",
                "description": "Authorization: L402 <macaroon>:<preimage hex>, from the WWW-Authenticate: L402 challenge",
            },
            "mpp": {
                "type": "http",
                "scheme": "Payment",
                "description": "Authorization: Payment <base64url JSON>: the WWW-Authenticate: Payment challenge echoed, with payload.preimage",
            },
            "x402": {
                "type": "apiKey",
                "in": "header",
                "name": "PAYMENT-SIGNATURE",
                "description": "PAYMENT-SIGNATURE: <base64 JSON>: the PAYMENT-REQUIRED offer accepted, naming the paid invoice; the gateway asks its node whether it settled",
            },
        },
        "headers": {
            "WWW-Authenticate": {
                "description": "The L402 and MPP challenges for one invoice, in the order the route lists its dialects",
                "schema": text,
            },
            "PAYMENT-REQUIRED": {
                "description": "The x402 offer (version 2, scheme exact on Lightning) for the same invoice, base64 JSON",
                "schema": text,
            },
            "x-l402": {
                "description": "spent: the payment bought this answer; released: it was not served and the credential works again",
                "schema": {"type": "string", "enum": ["spent", "released"]},
            },
            "Payment-Receipt": {
                "description": "MPP's receipt, base64url JSON, on an answer paid with Authorization: Payment",
                "schema": text,
            },
            "PAYMENT-RESPONSE": {
                "description": "x402's settlement, base64 JSON, on an answer paid with PAYMENT-SIGNATURE",
                "schema": text,
            },
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
        },
        "schemas": {
            "PaymentRequired": {
                "type": "object",
                "required": ["error", "invoice", "payment_hash", "amount_sats", "expires_at"],
                "properties": {
                    "error": text,
                    "invoice": {"type": "string", "description": "BOLT11"},
                    "payment_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "amount_sats": {"type": "integer", "minimum": 0},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "macaroon": {"type": "string", "description": "when L402 is offered"},
                    "format": text,
                    "reason": text,
                    "message": text,
                },
            },
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details, as MPP refusals are worded",
                "properties": {
                    "type": text,
                    "title": text,
                    "status": {"type": "integer"},
                    "detail": text,
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": text, "reason": text, "message": text},
            },
        },
        "responses": {
            "NotGenuine": {
                "description": "The credential is not genuine: no invoice",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "TooManyChallenges": {
                "description": "Too many challenges from this address",
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unavailable": {
                "description": "The gateway cannot issue an invoice or reach its store now; nothing was charged",
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plannt_gateway::Target;

    fn table() -> RouteTable {
        let mut free = Route::paid("status", Method::GET, "/status", 0, Target::Service);
        free.price_sats = None;
        let mut any = Route::paid("api", Method::GET, "/api/", 5, Target::Service);
        any.method = None;
        any.prefix = true;
        any.dialects = Some(vec![Dialect::L402]);
        RouteTable::new(vec![
            Route::paid("demo", Method::GET, "/v1/demo", 21, Target::Service),
            any,
            free,
        ])
        .unwrap()
    }

    #[test]
    fn every_route_is_described_as_the_route_table_prices_it() {
        let table = table();
        let dialects = |r: &Route| {
            r.dialects
                .clone()
                .unwrap_or(plannt_gateway::DEFAULT_DIALECTS.to_vec())
        };
        let doc = openapi(&table, "regtest", dialects);
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for route in table.routes() {
            let (path, methods): (String, Vec<&str>) = match (&route.method, route.prefix) {
                (Some(m), false) => (route.path.clone(), vec![m.as_str()]),
                (None, true) => (
                    format!("{}{{path}}", route.path),
                    vec!["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
                other => panic!("no such route in the table: {other:?}"),
            };
            for method in methods {
                let op = &paths[&path][method.to_ascii_lowercase()];
                assert!(op.is_object(), "{method} {path}");
                match route.price_sats {
                    Some(price) => {
                        let offer = &op["x-payment-info"]["offers"][0];
                        assert_eq!(offer["amount"], price.to_string(), "{path}");
                        assert_eq!(offer["method"], "lightning");
                        let names: Vec<&str> = dialects(route).iter().map(|d| d.as_str()).collect();
                        assert_eq!(offer["dialects"], json!(names), "{path}");
                        let security: Vec<String> = op["security"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_object().unwrap().keys().next().unwrap().clone())
                            .collect();
                        assert_eq!(security, names, "{path}");
                        assert!(op["responses"]["402"].is_object(), "{path}");
                    }
                    None => {
                        assert!(op.get("x-payment-info").is_none(), "{path}");
                        assert_eq!(op["security"], json!([]));
                        assert!(op["responses"].get("402").is_none());
                    }
                }
            }
        }
        let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            count,
            1 + 5 + 1,
            "one operation per method of each route, nothing more"
        );
        // An L402-only route's 402 has no PAYMENT-REQUIRED; the default one names all three.
        let api = &paths["/api/{path}"]["post"]["responses"]["402"]["headers"];
        assert!(api.get("PAYMENT-REQUIRED").is_none() && api.get("WWW-Authenticate").is_some());
        let demo = &paths["/v1/demo"]["get"]["responses"]["402"]["headers"];
        assert!(demo.get("PAYMENT-REQUIRED").is_some() && demo.get("WWW-Authenticate").is_some());
    }
}
