//! Redirects: the host that asks for payment is the host checked and paid, not the one first
//! asked; and the credential goes straight to the host that challenged.

use std::sync::Arc;

use crate::support::{Hostile, Scenario, open_policy};
use axum::http::{StatusCode, header};
use plannt_client::{Client, ClientError, Ledger, Options, Outcome, Refusal, Request};

/// A server on `localhost` that redirects every request to `target`.
async fn redirector(target: url::Url) -> url::Url {
    let router = axum::Router::new().fallback(move || {
        let target = target.to_string();
        async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://localhost:{port}/start").parse().unwrap()
}

fn following(server: &Hostile, ledger: Ledger, allowed: &[&str]) -> Client {
    let mut policy = open_policy(1_000);
    policy.allowed_hosts = allowed.iter().map(|h| h.to_string()).collect();
    Client::builder(Arc::new(server.network().wallet("payer")), ledger, policy)
        .follow_redirects(5)
        .build()
}

#[tokio::test]
async fn a_redirect_to_a_host_not_allowed_is_refused_and_nothing_is_paid() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let start = redirector(server.url("/paid")).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    // Only the host first asked is allowed; the redirect leads to 127.0.0.1.
    let client = following(&server, ledger.clone(), &["localhost"]);
    let outcome = client.send(&Request::get(start), &Options::default()).await;
    match outcome {
        Err(ClientError::Refused(Refusal::HostNotAllowed(host))) => assert_eq!(host, "127.0.0.1"),
        Err(e) => panic!("expected a host refusal, got {e}"),
        Ok(_) => panic!("expected a host refusal, got an answer"),
    }
    assert_eq!(server.network().paid_count(), 0);
    assert_eq!(ledger.refusals(5).unwrap()[0].check, "host_not_allowed");
}

#[tokio::test]
async fn a_redirect_to_an_allowed_host_is_paid_and_the_credential_reaches_it() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let start = redirector(server.url("/paid")).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = following(&server, ledger, &["localhost", "127.0.0.1"]);
    let Ok(Outcome::Response(mut response)) =
        client.send(&Request::get(start), &Options::default()).await
    else {
        panic!("expected an answer");
    };
    assert_eq!(response.status, 200);
    assert_eq!(
        &response.bytes(1024).await.unwrap()[..],
        b"{\"result\":\"paid\"}"
    );
    assert_eq!(server.network().paid_count(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ledger.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the ledger holds unused paid tokens");
    }
}
