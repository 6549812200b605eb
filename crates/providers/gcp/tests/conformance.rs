//! The gcp provider against the Secret Manager stand-in (no GCP emulator installs here; the
//! stand-in follows the published REST reference): the provider-api conformance suite, global
//! and regional, with a service-account key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strongroom_provider_api::conformance::{Fixture, run};
use strongroom_testkit::standins::gcp::GcpStandIn;

fn seed(standin: &GcpStandIn, location: Option<&str>) {
    standin.put(location, "app-plain", b"plain-value");
    standin.put(location, "app-db", br#"{"user":"admin","port":5432}"#);
    standin.put(location, "other", b"x");
}

fn fixture() -> Fixture {
    Fixture {
        plain_key: "app-plain".into(),
        plain_value: "plain-value".into(),
        json_key: "app-db".into(),
        json_user: "admin".into(),
        missing_key: "app-nope".into(),
        find_regexp: Some("^app-(plain|db)$".into()),
        push_key: Some("app-pushed".into()),
    }
}

#[tokio::test]
async fn conforms_with_a_service_account_key() {
    let standin = GcpStandIn::start();
    standin.set_max_page_size(2);
    seed(&standin, None);
    let env = Env::new(Creds::default());
    let client = connect(&standin, &store(key_spec(&standin, &env)), &env).await;
    let failures = run(client.as_ref(), &fixture()).await;
    assert!(failures.is_empty(), "{failures:#?}");
    for call in [
        "AccessSecretVersion",
        "ListSecrets",
        "GetSecret",
        "CreateSecret",
        "AddSecretVersion",
        "DeleteSecret",
    ] {
        assert!(env.calls.count(call) > 0, "{call} not counted");
    }
    assert_eq!(
        env.calls.providers(),
        ["GCP/SecretManager".to_string()].into()
    );
    // One token for the whole run; the list was paged (page size 2, four secrets).
    assert_eq!(standin.count("Token"), 1);
    assert_eq!(env.calls.count("OAuth2Token"), 1);
    assert!(standin.count("ListSecrets") >= 2, "{:?}", standin.counts());
}

#[tokio::test]
async fn conforms_on_regional_secrets() {
    let standin = GcpStandIn::start();
    seed(&standin, Some("europe-west1"));
    // A global secret of the same name must not be read.
    standin.put(None, "app-plain", b"global-value");
    let env = Env::new(Creds::default());
    let mut spec = key_spec(&standin, &env);
    spec.location = Some("europe-west1".into());
    let client = connect(&standin, &store(spec), &env).await;
    let failures = run(client.as_ref(), &fixture()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}
