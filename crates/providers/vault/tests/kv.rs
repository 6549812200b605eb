//! KV behaviour against a real OpenBao: versions, properties, metadata, find, push, outages,
//! and no secret value in errors or Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{VaultCheckAndSet, VaultKvVersion};
use strongroom_provider_api::{
    FindQuery, ProviderError, PushRef, RemoteRef, SecretBytes, SecretsClient,
};
use strongroom_testkit::backends::OpenBao;
use strongroom_testkit::{CANARY, assert_no_canary};

fn text(v: &SecretBytes) -> String {
    String::from_utf8(v.expose().to_vec()).unwrap()
}

fn prop(key: &str, property: &str) -> RemoteRef {
    RemoteRef {
        property: Some(property.into()),
        ..RemoteRef::key(key)
    }
}

fn version(key: &str, v: &str) -> RemoteRef {
    RemoteRef {
        version: Some(v.into()),
        ..RemoteRef::key(key)
    }
}

fn push_ref(key: &str, property: Option<&str>) -> PushRef {
    PushRef {
        remote_key: key.into(),
        property: property.map(str::to_string),
        metadata: None,
    }
}

async fn root_client(bao: &OpenBao, env: &Env) -> Box<dyn strongroom_provider_api::SecretsClient> {
    let auth = root_auth(env);
    connect(&store(spec(bao, Some("secret"), auth)), env).await
}

fn bao_json(bao: &OpenBao, args: &[&str]) -> Value {
    // The flag goes after the subcommands, before the path.
    let (path, command) = args.split_last().unwrap();
    let mut all = command.to_vec();
    all.extend(["-format=json", path]);
    serde_json::from_str(&bao.cli(&all)).unwrap()
}

#[tokio::test]
async fn versions_and_deleted_versions() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=one"]);
    bao.cli(&["kv", "put", "secret/app", "v=two"]);
    bao.cli(&["kv", "put", "secret/app", "v=three"]);
    bao.cli(&["kv", "delete", "-versions=2", "secret/app"]);
    bao.cli(&["kv", "destroy", "-versions=1", "secret/app"]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;
    assert_eq!(
        text(&client.get_secret(&prop("app", "v")).await.unwrap()),
        "three"
    );
    assert_eq!(
        text(&client.get_secret(&prop("app", "v").clone()).await.unwrap()),
        "three"
    );
    let v3 = RemoteRef {
        property: Some("v".into()),
        ..version("app", "3")
    };
    assert_eq!(text(&client.get_secret(&v3).await.unwrap()), "three");
    for deleted in ["1", "2"] {
        let e = client
            .get_secret(&version("app", deleted))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "version {deleted}: {e}");
    }
    assert!(
        client
            .get_secret(&version("app", "9"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(matches!(
        client.get_secret(&version("app", "latest")).await,
        Err(ProviderError::InvalidConfig(_))
    ));
    bao.cli(&["kv", "delete", "secret/app"]);
    let e = client.get_secret(&RemoteRef::key("app")).await.unwrap_err();
    assert!(e.is_not_found(), "deleted current version: {e}");
}

#[tokio::test]
async fn properties_exact_key_then_json_path() {
    let bao = OpenBao::start().await;
    let file = std::env::temp_dir().join(format!("bao-nested-{}.json", std::process::id()));
    std::fs::write(
        &file,
        json!({"tls.crt": "CERT", "tls": {"crt": "nested"}, "db": {"hosts": ["a", "b"], "port": 5432}, "n": 7})
            .to_string(),
    )
    .unwrap();
    bao.cli(&[
        "kv",
        "put",
        "secret/nested",
        &format!("@{}", file.display()),
    ]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;
    assert_eq!(
        text(&client.get_secret(&prop("nested", "tls.crt")).await.unwrap()),
        "CERT"
    );
    assert_eq!(
        text(
            &client
                .get_secret(&prop("nested", "db.hosts.1"))
                .await
                .unwrap()
        ),
        "b"
    );
    assert_eq!(
        text(&client.get_secret(&prop("nested", "n")).await.unwrap()),
        "7"
    );
    assert_eq!(
        text(&client.get_secret(&prop("nested", "db")).await.unwrap()),
        r#"{"hosts":["a","b"],"port":5432}"#
    );
    let whole: Value = serde_json::from_slice(
        client
            .get_secret(&RemoteRef::key("nested"))
            .await
            .unwrap()
            .expose(),
    )
    .unwrap();
    assert_eq!(whole["tls"]["crt"], "nested");
    let map = client.get_secret_map(&prop("nested", "db")).await.unwrap();
    assert_eq!(text(&map["port"]), "5432");
    assert!(
        client
            .get_secret(&prop("nested", "db.nope"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn metadata_fetch_returns_custom_metadata() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/tagged", "v=1"]);
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=team=payments",
        "-custom-metadata=env=prod",
        "secret/tagged",
    ]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;
    let meta = RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key("tagged")
    };
    let all: Value =
        serde_json::from_slice(client.get_secret(&meta).await.unwrap().expose()).unwrap();
    assert_eq!(all["team"], "payments");
    assert_eq!(all["current_version"], "1");
    let team = RemoteRef {
        property: Some("env".into()),
        ..meta.clone()
    };
    assert_eq!(text(&client.get_secret(&team).await.unwrap()), "prod");
    let missing = RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key("nope")
    };
    assert!(
        client
            .get_secret(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn find_by_name_path_and_tags() {
    let bao = OpenBao::start().await;
    for key in [
        "team-a/db",
        "team-a/api",
        "team-a/deep/cache",
        "team-b/db",
        "top",
    ] {
        bao.cli(&[
            "kv",
            "put",
            &format!("secret/{key}"),
            &format!("name={key}"),
        ]);
    }
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=env=prod",
        "secret/team-a/db",
    ]);
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=env=prod",
        "secret/team-b/db",
    ]);
    bao.cli(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=env=dev",
        "secret/team-a/api",
    ]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;
    let names = |m: strongroom_provider_api::SecretMap| m.keys().cloned().collect::<Vec<_>>();

    let by_name = client
        .get_all(&FindQuery {
            name_regexp: Some("db$".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(by_name.clone()), ["team-a/db", "team-b/db"]);
    assert_eq!(text(&by_name["team-a/db"]), r#"{"name":"team-a/db"}"#);

    let under = client
        .get_all(&FindQuery {
            path: Some("team-a".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(under),
        ["team-a/api", "team-a/db", "team-a/deep/cache"]
    );

    let tagged = client
        .get_all(&FindQuery {
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(tagged), ["team-a/db", "team-b/db"]);

    let lists = env.calls.count("ListSecrets");
    assert!(lists >= 4, "recursive LIST: {lists}");
}

#[tokio::test]
async fn push_marks_refuses_merges_and_deletes() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/theirs", "owner=someone-else"]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;

    // A new key: written with the mark.
    let whole = push_ref("pushed", None);
    client
        .push(&SecretBytes::from(r#"{"user":"u","pass":"p"}"#), &whole)
        .await
        .unwrap();
    let meta = bao_json(&bao, &["kv", "metadata", "get", "secret/pushed"]);
    assert_eq!(
        meta["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    assert!(client.exists(&whole).await.unwrap());
    assert!(
        client
            .exists(&push_ref("pushed", Some("user")))
            .await
            .unwrap()
    );
    assert!(
        !client
            .exists(&push_ref("pushed", Some("nope")))
            .await
            .unwrap()
    );

    // A property merges into the existing map.
    client
        .push(&SecretBytes::from("p2"), &push_ref("pushed", Some("pass")))
        .await
        .unwrap();
    let got = bao_json(&bao, &["kv", "get", "secret/pushed"]);
    assert_eq!(got["data"]["data"], json!({"user": "u", "pass": "p2"}));
    let writes = env.calls.count("WriteSecretData");
    // Pushing the same value again writes nothing.
    client
        .push(&SecretBytes::from("p2"), &push_ref("pushed", Some("pass")))
        .await
        .unwrap();
    assert_eq!(env.calls.count("WriteSecretData"), writes);

    // An unmanaged key is refused, with a clear message.
    let e = client
        .push(&SecretBytes::from("x"), &push_ref("theirs", Some("owner")))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not managed by external-secrets"),
        "{e}"
    );
    let got = bao_json(&bao, &["kv", "get", "secret/theirs"]);
    assert_eq!(got["data"]["data"]["owner"], "someone-else");
    // ...and never deleted.
    client.delete(&push_ref("theirs", None)).await.unwrap();
    bao.cli(&["kv", "get", "secret/theirs"]);

    // A non-JSON value without a property is refused (upstream).
    assert!(matches!(
        client
            .push(&SecretBytes::from("plain"), &push_ref("p3", None))
            .await,
        Err(ProviderError::InvalidConfig(_))
    ));

    // Deleting a property keeps the rest; deleting the last one removes the key.
    client
        .delete(&push_ref("pushed", Some("pass")))
        .await
        .unwrap();
    let got = bao_json(&bao, &["kv", "get", "secret/pushed"]);
    assert_eq!(got["data"]["data"], json!({"user": "u"}));
    client
        .delete(&push_ref("pushed", Some("user")))
        .await
        .unwrap();
    assert!(!client.exists(&whole).await.unwrap());
    client.delete(&whole).await.unwrap();
}

#[tokio::test]
async fn push_with_check_and_set() {
    let bao = OpenBao::start().await;
    let env = Env::new(Creds::default());
    let mut spec = spec(&bao, Some("secret"), root_auth(&env));
    spec.check_and_set = Some(VaultCheckAndSet {
        required: Some(true),
    });
    bao.cli(&["write", "secret/config", "cas_required=true"]);
    let client = connect(&store(spec), &env).await;
    let target = push_ref("cas", Some("k"));
    client.push(&SecretBytes::from("1"), &target).await.unwrap();
    client.push(&SecretBytes::from("2"), &target).await.unwrap();
    client
        .push(&SecretBytes::from("3"), &push_ref("cas", Some("other")))
        .await
        .unwrap();
    let got = bao_json(&bao, &["kv", "get", "secret/cas"]);
    assert_eq!(got["data"]["data"], json!({"k": "2", "other": "3"}));
    assert_eq!(got["data"]["metadata"]["version"], 3);
    client.delete(&push_ref("cas", Some("k"))).await.unwrap();
    let got = bao_json(&bao, &["kv", "get", "secret/cas"]);
    assert_eq!(got["data"]["data"], json!({"other": "3"}));
}

#[tokio::test]
async fn push_on_kv_v1_embeds_the_mark() {
    let bao = OpenBao::start().await;
    bao.cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    bao.cli(&["kv", "put", "kv1/theirs", "a=b"]);
    let env = Env::new(Creds::default());
    let mut spec = spec(&bao, Some("kv1"), root_auth(&env));
    spec.version = Some(VaultKvVersion::V1);
    let client = connect(&store(spec), &env).await;
    client
        .push(&SecretBytes::from("v"), &push_ref("mine", Some("k")))
        .await
        .unwrap();
    let got = bao_json(&bao, &["read", "kv1/mine"]);
    assert_eq!(
        got["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    assert_eq!(got["data"]["k"], "v");
    assert!(
        client
            .push(&SecretBytes::from("v"), &push_ref("theirs", Some("a")))
            .await
            .is_err()
    );
    client.delete(&push_ref("mine", Some("k"))).await.unwrap();
    assert!(!client.exists(&push_ref("mine", None)).await.unwrap());
}

#[tokio::test]
async fn outage_is_unavailable_within_the_timeout_and_recovers() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/app", "v=1"]);
    let env = Env::new(Creds::default());
    let client = root_client(&bao, &env).await;
    client.get_secret(&RemoteRef::key("app")).await.unwrap();
    bao.process.signal("STOP");
    let started = Instant::now();
    let e = client.get_secret(&RemoteRef::key("app")).await.unwrap_err();
    let took = started.elapsed();
    bao.process.signal("CONT");
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    client.get_secret(&RemoteRef::key("app")).await.unwrap();
}

#[tokio::test]
async fn no_secret_value_in_errors_or_debug() {
    let bao = OpenBao::start().await;
    bao.cli(&["kv", "put", "secret/canary", &format!("v={CANARY}"), "n=1"]);
    // The token is a canary too: it must not show in Debug output or errors.
    bao.cli(&[
        "token",
        "create",
        &format!("-id={CANARY}-token"),
        "-policy=root",
    ]);
    let env = Env::new(Creds::default());
    env.creds
        .put("team", "canary-token", "token", &format!("{CANARY}-token"));
    let auth = strongroom_core::crd::external_secrets::VaultAuth {
        token_secret_ref: Some(selector("canary-token", "token")),
        ..Default::default()
    };
    let client = strongroom_provider_vault::VaultSecretsClient::connect(
        &store(spec(&bao, Some("secret"), auth)),
        env.provider_env(),
    )
    .await
    .unwrap();
    let mut errors = Vec::new();
    for r in [
        prop("canary", "missing"),
        prop("canary", "v.deeper"),
        version("canary", "7"),
    ] {
        errors.push(client.get_secret(&r).await.unwrap_err().to_string());
    }
    errors.push(
        client
            .get_secret_map(&prop("canary", "v"))
            .await
            .unwrap_err()
            .to_string(),
    );
    errors.push(
        client
            .push(&SecretBytes::from(CANARY), &push_ref("canary", Some("v")))
            .await
            .unwrap_err()
            .to_string(),
    );
    errors.push(
        client
            .push(&SecretBytes::from(CANARY), &push_ref("new", None))
            .await
            .unwrap_err()
            .to_string(),
    );
    bao.process.signal("STOP");
    errors.push(
        client
            .get_secret(&RemoteRef::key("canary"))
            .await
            .unwrap_err()
            .to_string(),
    );
    bao.process.signal("CONT");
    let debug = format!("{client:?}");
    let mut texts: Vec<(&str, &str)> = errors.iter().map(|e| ("error", e.as_str())).collect();
    texts.push(("debug", &debug));
    assert_no_canary(&[CANARY], &texts);
}

/// `readYourWrites` on OpenBao's integrated storage (which answers writes with
/// `X-Vault-Index`): every request after the first answer carries the newest index seen,
/// which grows with each write; without `readYourWrites` no request carries one. The
/// header is seen by OpenBao's audit device, told to record it.
#[tokio::test]
async fn read_your_writes_sends_back_the_newest_index() {
    let (bao, log) = OpenBao::start_audited_on_raft().await;
    bao.cli(&[
        "write",
        "sys/config/auditing/request-headers/x-vault-index",
        "hmac=false",
    ]);
    let env = Env::new(Creds::default());
    let client_for = |read_your_writes: bool| {
        let mut s = spec(&bao, Some("secret"), root_auth(&env));
        s.read_your_writes = Some(read_your_writes);
        store(s)
    };
    // The index a request carried: the audited header, decoded; `None` without one.
    let indexes_seen = |path: &str| -> Vec<Option<u64>> {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "request" && v["request"]["path"] == path)
            .map(|v| {
                let header = &v["request"]["headers"]["x-vault-index"];
                let raw = header.get(0)?.as_str()?;
                use base64::Engine as _;
                let state = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap();
                let state: Value = serde_json::from_slice(&state).unwrap();
                Some(state["value"].as_str().unwrap().parse().unwrap())
            })
            .collect()
    };

    let client = connect(&client_for(true), &env).await;
    client
        .push(&SecretBytes::from("v1"), &push_ref("ryw", Some("a")))
        .await
        .unwrap();
    assert_eq!(
        text(&client.get_secret(&prop("ryw", "a")).await.unwrap()),
        "v1"
    );
    client
        .push(&SecretBytes::from("v2"), &push_ref("ryw", Some("a")))
        .await
        .unwrap();
    assert_eq!(
        text(&client.get_secret(&prop("ryw", "a")).await.unwrap()),
        "v2"
    );
    let reads = indexes_seen("secret/data/ryw");
    // push 1: read (no answer yet: no index), write; read; push 2: read, write; read.
    assert_eq!(reads.len(), 6, "{reads:?}");
    assert_eq!(reads[0], None, "{reads:?}");
    let carried: Vec<u64> = reads[1..].iter().map(|r| r.expect("an index")).collect();
    assert!(
        carried.windows(2).all(|w| w[0] <= w[1]),
        "indexes go back: {carried:?}"
    );
    // The read after the second push carries a newer index than the read before it.
    assert!(carried[4] > carried[1], "{carried:?}");

    let before = indexes_seen("secret/data/ryw").len();
    let client = connect(&client_for(false), &env).await;
    client.get_secret(&prop("ryw", "a")).await.unwrap();
    client
        .push(&SecretBytes::from("v3"), &push_ref("ryw", Some("a")))
        .await
        .unwrap();
    client.get_secret(&prop("ryw", "a")).await.unwrap();
    let without = &indexes_seen("secret/data/ryw")[before..];
    assert!(
        !without.is_empty() && without.iter().all(Option::is_none),
        "{without:?}"
    );
}
