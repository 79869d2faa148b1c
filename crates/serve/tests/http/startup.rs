//! What the gateway refuses before it serves: the demo service sold through a real backend
//! that nobody asked to sell it, and a start that fails leaving a generated root key behind.

use plannt_serve::{Config, Gateway, StartError};
use reqwest::StatusCode;

use crate::support::{dead_port, start_in, upstream_route};

/// A gateway whose Lightning backend is LNbits (nothing answers it: only the start matters
/// here), no root key configured, the memory store.
fn lnbits_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: plannt_serve::config::Store::Memory,
        lightning: format!("lnbits+http://127.0.0.1:{}?key=x", dead_port())
            .parse()
            .unwrap(),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_real_backend_sells_the_demo_service_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();

    let refused = Gateway::build(lnbits_config(), dir.path().to_path_buf())
        .await
        .err()
        .expect("no routes and a real backend: the gateway must not start");
    assert!(
        matches!(refused, StartError::Setting { key: "routes", .. }),
        "{refused}"
    );
    let message = refused.to_string();
    for says in [
        "/v1/demo",
        "lnbits",
        "[[routes]]",
        "--demo-routes",
        "PLANNT_DEMO_ROUTES",
    ] {
        assert!(message.contains(says), "{says:?} missing: {message}");
    }
    assert!(
        !dir.path().join("root.key").exists(),
        "a refused start writes no root key"
    );

    // Asked for by PLANNT_DEMO_ROUTES: the demo service is served, /v1/demo priced (the
    // backend is down, so its challenge is a 503 before any invoice).
    let uri = format!("lnbits+http://127.0.0.1:{}?key=x", dead_port());
    let env = |k: &str| match k {
        "PLANNT_LIGHTNING" => Some(uri.clone()),
        "PLANNT_DEMO_ROUTES" => Some("true".to_string()),
        "PLANNT_STORE" => Some("memory".to_string()),
        "PLANNT_LISTEN" => Some("127.0.0.1:0".to_string()),
        _ => None,
    };
    let config = Config::load(None, env).unwrap();
    assert!(config.demo_routes);
    let gateway = start_in(config, dir.path()).await;
    let demo = gateway.get("/v1/demo", None).await;
    assert_eq!(demo.status, StatusCode::SERVICE_UNAVAILABLE, "{demo:?}");
    assert_eq!(demo.reason(), Some("lightning_unavailable"));

    // With routes of its own, a real backend needs no opt-in, and sells no demo route.
    let other = tempfile::tempdir().unwrap();
    let config = Config {
        routes: vec![upstream_route(
            "api",
            "/api/",
            5,
            &format!("http://127.0.0.1:{}", dead_port()),
        )],
        ..lnbits_config()
    };
    let gateway = start_in(config, other.path()).await;
    let demo = gateway.get("/v1/demo", None).await;
    assert_eq!(demo.status, StatusCode::NOT_FOUND, "{demo:?}");
}

#[tokio::test]
async fn a_start_that_fails_leaves_no_root_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("http://127.0.0.1:{}", dead_port());
    // Two prefix routes on one path, any method: not a table.
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: plannt_serve::config::Store::Memory,
        routes: vec![
            upstream_route("a", "/api/", 5, &upstream),
            upstream_route("b", "/api/", 7, &upstream),
        ],
        ..Config::default()
    };
    let refused = Gateway::build(config.clone(), dir.path().to_path_buf())
        .await
        .err()
        .expect("an ambiguous route table must not start");
    assert!(matches!(refused, StartError::Routes(_)), "{refused}");
    assert!(!dir.path().join("root.key").exists());

    // The same data directory and a table that works: the key is generated then.
    let config = Config {
        routes: vec![upstream_route("a", "/api/", 5, &upstream)],
        ..config
    };
    let _gateway = start_in(config, dir.path()).await;
    assert!(dir.path().join("root.key").exists());
}
