//! Opening each backend's URI, whatever the build: a backend that is built opens (nothing is
//! contacted yet); one whose feature is off is refused with the feature to enable.

use plannt_lightning::{BackendUri, Context, OpenError};

use crate::support::open_wallet;

#[test]
fn a_backend_opens_when_it_is_built_and_names_its_feature_when_not() {
    let macaroon = "0a".repeat(40);
    let key = "1".repeat(64);
    let cases = [
        (
            "dev+http://127.0.0.1:8402",
            "dev-http",
            cfg!(feature = "dev-http"),
        ),
        (
            "lnbits+http://127.0.0.1:5000?key=k",
            "lnbits",
            cfg!(feature = "lnbits"),
        ),
        (
            &*format!("lnd+https://127.0.0.1:8080?macaroon={macaroon}"),
            "lnd",
            cfg!(feature = "lnd"),
        ),
        (
            "cln+https://127.0.0.1:3010?rune=r",
            "cln",
            cfg!(feature = "cln"),
        ),
        (
            "phoenixd+http://127.0.0.1:9740?password=p",
            "phoenixd",
            cfg!(feature = "phoenixd"),
        ),
        (
            &*format!(
                "nostr+walletconnect://{}?relay=ws://127.0.0.1:7000&secret={key}",
                "b".repeat(64)
            ),
            "nwc",
            cfg!(feature = "nwc"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let context = Context::new(dir.path().to_path_buf());
    for (text, feature, built) in cases {
        let uri: BackendUri = text.parse().expect("the URI parses, whatever the build");
        match open_wallet(&uri, &context) {
            Ok(wallet) => {
                assert!(built, "{feature} is not built, yet {text} opened");
                assert_eq!(wallet.name(), uri.backend());
            }
            Err(OpenError::Unsupported { feature: named, .. }) => {
                assert!(!built, "{feature} is built, yet {text} did not open");
                assert_eq!(named, feature);
            }
            Err(other) => panic!("{text}: {other}"),
        }
    }
    // The embedded dev network is always built.
    let dev: BackendUri = "dev".parse().unwrap();
    assert_eq!(open_wallet(&dev, &context).unwrap().name(), "dev");
}
