//! Root key rotation across restarts of one `plannt serve` on one SQLite data directory, driven
//! by `--config` files: `root_keys = [k1]`, then `[k1, k2]` (k2 mints, both verify), then `[k2]`.
//! The key that minted a token travels in it as the macaroon's location (`plannt decode`).

use std::path::Path;

use crate::cluster::{Serve, client, decode, get, pay, token};

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2f2e2d2c2b2a292827262524232221201f1e1d1c1b1a19181716151413121110";

/// Starts `plannt serve --config` on `data_dir` with `root_keys = keys` (oldest first) and the
/// SQLite store under the data directory.
fn serve(data_dir: &Path, name: &str, keys: &[(&str, &str)]) -> Serve {
    let entries: Vec<String> = keys
        .iter()
        .map(|(id, key)| format!("{{ id = \"{id}\", key = \"{key}\" }}"))
        .collect();
    let config = data_dir.parent().unwrap().join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("store = \"sqlite\"\nroot_keys = [{}]\n", entries.join(", ")),
    )
    .unwrap();
    Serve::start(data_dir, &["--config", config.to_str().unwrap()], &[])
}

/// The macaroon of an `Authorization: L402 <macaroon>:<preimage>` value.
fn macaroon(credential: &str) -> &str {
    let token = credential.strip_prefix("L402 ").unwrap();
    token.split_once(':').unwrap().0
}

/// The key id `plannt decode` reads in a macaroon: its location.
fn key_id(dir: &Path, macaroon: &str) -> String {
    let decoded = decode(dir, macaroon);
    assert_eq!(decoded["kind"], "macaroon", "{decoded}");
    decoded["location"]
        .as_str()
        .expect("a location")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_retired_key_verify_until_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let http = client();

    // k1 alone: two paid tokens, one used later under [k1, k2], one kept unused until k1 is gone.
    let mut gateway = serve(&data_dir, "k1", &[("k1", K1)]);
    let used_later = token(&http, &gateway, "/v1/demo").await;
    let kept = token(&http, &gateway, "/v1/demo").await;
    assert_eq!(key_id(&tools, macaroon(&used_later)), "k1");
    assert_eq!(key_id(&tools, macaroon(&kept)), "k1");
    gateway.stop();

    // k2 added last: it mints, and k1 still verifies.
    let mut gateway = serve(&data_dir, "k1k2", &[("k1", K1), ("k2", K2)]);
    let served = get(&http, &gateway.url("/v1/demo"), Some(&used_later)).await;
    assert_eq!(served.status, 200, "{served:?}\n{}", gateway.log());
    assert_eq!(served.x_l402.as_deref(), Some("spent"), "{served:?}");
    // The same request gets its kept answer again; another one is refused as spent.
    let kept_answer = get(&http, &gateway.url("/v1/demo"), Some(&used_later)).await;
    assert_eq!(
        kept_answer.x_l402.as_deref(),
        Some("replayed"),
        "{kept_answer:?}"
    );
    let again = get(&http, &gateway.url("/v1/demo?again=1"), Some(&used_later)).await;
    assert_eq!(again.reason(), Some("spent"), "{again:?}");
    let (fresh, _) = again.challenge();
    assert_eq!(key_id(&tools, &fresh), "k2", "the refusal's challenge");

    let k2_used = token(&http, &gateway, "/v1/demo").await;
    let k2_kept = token(&http, &gateway, "/v1/demo").await;
    assert_eq!(key_id(&tools, macaroon(&k2_used)), "k2");
    assert_eq!(key_id(&tools, macaroon(&k2_kept)), "k2");
    let served = get(&http, &gateway.url("/v1/demo"), Some(&k2_used)).await;
    assert_eq!(served.status, 200, "{served:?}");
    gateway.stop();

    // k1 removed: its unused, paid token is refused as unknown_key with a fresh k2 challenge.
    let gateway = serve(&data_dir, "k2", &[("k2", K2)]);
    let refused = get(&http, &gateway.url("/v1/demo"), Some(&kept)).await;
    assert_eq!(refused.status, 402, "{refused:?}\n{}", gateway.log());
    assert_eq!(refused.reason(), Some("unknown_key"), "{refused:?}");
    assert_eq!(refused.reason_header.as_deref(), Some("unknown_key"));
    let (fresh, invoice) = refused.challenge();
    assert_eq!(key_id(&tools, &fresh), "k2");

    // The fresh challenge is a working k2 token.
    let preimage = pay(&http, &gateway, &invoice).await;
    let credential = format!("L402 {fresh}:{preimage}");
    let served = get(&http, &gateway.url("/v1/demo"), Some(&credential)).await;
    assert_eq!(served.status, 200, "{served:?}");

    // k2 tokens minted before the restart: the spent one stays spent (SQLite), the other works.
    let spent = get(&http, &gateway.url("/v1/demo?again=1"), Some(&k2_used)).await;
    assert_eq!(spent.status, 402, "{spent:?}");
    assert_eq!(spent.reason(), Some("spent"), "{spent:?}");
    let served = get(&http, &gateway.url("/v1/demo"), Some(&k2_kept)).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.x_l402.as_deref(), Some("spent"));
}
