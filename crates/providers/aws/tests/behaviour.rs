//! Upstream's AWS behaviour against moto: versions, properties, binary values, metadata,
//! `find` and its call counts, PushSecret ownership rules, web identity and role chains,
//! outages, and no secret value in any error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use common::*;
use serde_json::json;
use strongroom_provider_api::{
    FindQuery, Provider, ProviderError, PushRef, RemoteRef, SecretsClient, Validation,
};
use strongroom_provider_aws::AwsProvider;
use strongroom_testkit::backends::Moto;
use strongroom_testkit::{CANARY, assert_no_canary};

fn meta(spec: serde_json::Value) -> Option<serde_json::Value> {
    Some(json!({
        "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
        "kind": "PushSecretMetadata",
        "spec": spec,
    }))
}

fn remote(key: &str, property: Option<&str>, version: Option<&str>) -> RemoteRef {
    RemoteRef {
        key: key.into(),
        property: property.map(Into::into),
        version: version.map(Into::into),
        fetch_metadata: false,
    }
}

fn metadata_ref(key: &str) -> RemoteRef {
    RemoteRef {
        fetch_metadata: true,
        ..RemoteRef::key(key)
    }
}

async fn static_client(
    moto: &Moto,
    service: &str,
) -> (std::sync::Arc<Calls>, Box<dyn SecretsClient>) {
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(moto, &store(static_spec(service)), env).await;
    (calls, client)
}

#[tokio::test]
async fn secrets_manager_reads() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    put_secret(&sm, "team/v", "one").await;
    let first = sm
        .describe_secret()
        .secret_id("team/v")
        .send()
        .await
        .unwrap()
        .version_ids_to_stages()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    sm.put_secret_value()
        .secret_id("team/v")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    put_secret(&sm, "team/json", r#"{"tls.crt":"A","a":{"b":"c"},"n":5}"#).await;
    sm.create_secret()
        .name("team/bin")
        .secret_binary(Blob::new(vec![0u8, 159, 146, 150, 255]))
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("a")
                .build(),
        )
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("cfg")
                .value(r#"{"x":"y"}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let mut spec = static_spec("SecretsManager");
    spec.prefix = Some("team/".into());
    let client = connect(&moto, &store(spec), env).await;
    let get = |r: RemoteRef| {
        let client = &client;
        async move { client.get_secret(&r).await }
    };
    // Versions: AWSCURRENT by default, stages, uuid/<VersionId>.
    assert_eq!(text(&get(remote("v", None, None)).await.unwrap()), "two");
    assert_eq!(
        text(&get(remote("v", None, Some("AWSPREVIOUS"))).await.unwrap()),
        "one"
    );
    let by_id = format!("uuid/{first}");
    assert_eq!(
        text(&get(remote("v", None, Some(&by_id))).await.unwrap()),
        "one"
    );
    let err = get(remote("v", None, Some("NOSUCHSTAGE")))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // Properties: an exact member with dots wins, else a gjson path.
    assert_eq!(
        text(&get(remote("json", Some("tls.crt"), None)).await.unwrap()),
        "A"
    );
    assert_eq!(
        text(&get(remote("json", Some("a.b"), None)).await.unwrap()),
        "c"
    );
    assert_eq!(
        text(&get(remote("json", Some("n"), None)).await.unwrap()),
        "5"
    );
    assert!(
        get(remote("json", Some("a.z"), None))
            .await
            .unwrap_err()
            .is_not_found()
    );
    // SecretBinary, byte for byte.
    assert_eq!(
        get(remote("bin", None, None)).await.unwrap().expose(),
        &[0u8, 159, 146, 150, 255]
    );
    // metadataPolicy: Fetch returns the tags.
    let tags = metadata_ref("bin");
    assert_eq!(
        text(&client.get_secret(&tags).await.unwrap()),
        r#"{"cfg":"{\"x\":\"y\"}","team":"a"}"#
    );
    let one = RemoteRef {
        property: Some("team".into()),
        ..tags.clone()
    };
    assert_eq!(text(&client.get_secret(&one).await.unwrap()), "a");
    let m = client.get_secret_map(&tags).await.unwrap();
    assert_eq!(text(&m["cfg"]), r#"{"x":"y"}"#);
    let missing = metadata_ref("none");
    assert!(
        client
            .get_secret(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // NotFound names the prefixed key.
    match get(remote("none", None, None)).await {
        Err(ProviderError::NotFound { key, .. }) => assert_eq!(key, "team/none"),
        other => panic!("{other:?}"),
    }
    assert!(calls.count("DescribeSecret") >= 2);
    assert_eq!(client.validate().await.unwrap(), Validation::Ready);
}

#[tokio::test]
async fn parameter_store_reads() {
    let moto = Moto::start().await;
    let ssm = ssm(&moto).await;
    put_param(&ssm, "/p/v", "one").await;
    put_param(&ssm, "/p/v", "two").await;
    put_param(&ssm, "/p/json", r#"{"tls.crt":"A","a":{"b":"c"}}"#).await;
    tag_param(&ssm, "/p/json", "team", "a").await;
    let (_, client) = static_client(&moto, "ParameterStore").await;
    let get = |r: RemoteRef| {
        let client = &client;
        async move { client.get_secret(&r).await }
    };
    assert_eq!(text(&get(remote("/p/v", None, None)).await.unwrap()), "two");
    assert_eq!(
        text(&get(remote("/p/v", None, Some("1"))).await.unwrap()),
        "one"
    );
    assert!(
        get(remote("/p/v", None, Some("9")))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        text(&get(remote("/p/json", Some("tls.crt"), None)).await.unwrap()),
        "A"
    );
    assert_eq!(
        text(&get(remote("/p/json", Some("a.b"), None)).await.unwrap()),
        "c"
    );
    let tags = metadata_ref("/p/json");
    assert_eq!(
        text(&client.get_secret(&tags).await.unwrap()),
        r#"{"team":"a"}"#
    );
    let missing = metadata_ref("/p/none");
    assert!(
        client
            .get_secret(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn secrets_manager_find_batches_twenty_names_a_call() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    for i in 0..45 {
        put_secret(&sm, &format!("bulk/s{i:02}"), &format!("v{i}")).await;
    }
    let tag = |k: &str, v: &str| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    for (name, tags) in [
        ("tagged/a", vec![tag("team", "a")]),
        ("tagged/b", vec![tag("team", "a"), tag("env", "prod")]),
        // tag-key and tag-value filters match this one; the exact check does not.
        ("decoy", vec![tag("team", "b"), tag("owner", "a")]),
    ] {
        sm.create_secret()
            .name(name)
            .secret_string(name)
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }
    let (calls, client) = static_client(&moto, "SecretsManager").await;

    // Name regexp: one ListSecrets page, then one BatchGetSecretValue per 20 matches.
    let before = moto.requests().len();
    let found = client
        .get_all(&FindQuery {
            name_regexp: Some("^bulk/".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 45);
    assert_eq!(text(&found["bulk/s07"]), "v7");
    assert_eq!(calls.count("ListSecrets"), 1);
    assert_eq!(calls.count("BatchGetSecretValue"), 3);
    assert_eq!(calls.count("GetSecretValue"), 0);
    assert_eq!(
        moto.requests().len() - before,
        4,
        "moto saw exactly the counted calls"
    );

    // Path: BatchGetSecretValue with a name filter, 20 a page.
    calls.clear();
    let found = client
        .get_all(&FindQuery {
            path: Some("bulk/".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 45);
    assert_eq!(calls.count("BatchGetSecretValue"), 3);
    assert_eq!(calls.count("ListSecrets"), 0);

    // Tags: exact.
    calls.clear();
    let by_tag = FindQuery {
        tags: BTreeMap::from([("team".into(), "a".into())]),
        ..FindQuery::default()
    };
    let found = client.get_all(&by_tag).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["tagged/a", "tagged/b"]);
    assert_eq!(calls.count("BatchGetSecretValue"), 1);
    let both = FindQuery {
        name_regexp: Some("b$".into()),
        ..by_tag.clone()
    };
    assert_eq!(
        client
            .get_all(&both)
            .await
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["tagged/b"]
    );
    let err = client.get_all(&FindQuery::default()).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidConfig(_)), "{err}");
}

#[tokio::test]
async fn parameter_store_find_by_path_and_tags() {
    let moto = Moto::start().await;
    let ssm = ssm(&moto).await;
    for i in 0..25 {
        put_param(&ssm, &format!("/bulk/p{i:02}"), &format!("v{i}")).await;
    }
    put_param(&ssm, "/other/x", "x").await;
    for name in ["/bulk/p01", "/other/x"] {
        tag_param(&ssm, name, "team", "a").await;
    }
    let (calls, client) = static_client(&moto, "ParameterStore").await;
    let found = client
        .get_all(&FindQuery {
            name_regexp: Some("p0[0-4]$".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 5);
    assert_eq!(text(&found["/bulk/p03"]), "v3");
    let found = client
        .get_all(&FindQuery {
            path: Some("/bulk".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 25);
    assert!(calls.count("GetParametersByPath") >= 2);
    calls.clear();
    let found = client
        .get_all(&FindQuery {
            tags: BTreeMap::from([("team".into(), "a".into())]),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["/bulk/p01", "/other/x"]);
    assert_eq!(calls.count("DescribeParameter"), 1);
    assert_eq!(calls.count("GetParameters"), 1);
    let found = client
        .get_all(&FindQuery {
            tags: BTreeMap::from([("team".into(), "a".into())]),
            path: Some("/other".into()),
            ..FindQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["/other/x"]);
}

#[tokio::test]
async fn secrets_manager_push_rules() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    put_secret(&sm, "not-ours", "theirs").await;
    let (calls, client) = static_client(&moto, "SecretsManager").await;
    let target = PushRef {
        remote_key: "pushed".into(),
        property: Some("user".into()),
        metadata: meta(
            json!({"tags": {"team": "a"}, "secretPushFormat": "string", "description": "d"}),
        ),
    };
    // Create: tagged managed-by, with the metadata's tags and description.
    client.push(&"alice".into(), &target).await.unwrap();
    let described = sm
        .describe_secret()
        .secret_id("pushed")
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(tags["managed-by"], "external-secrets");
    assert_eq!(tags["team"], "a");
    assert_eq!(described.description(), Some("d"));
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("pushed")).await.unwrap()),
        r#"{"user":"alice"}"#
    );
    // Merge another property.
    let other = PushRef {
        property: Some("pass".into()),
        ..target.clone()
    };
    client.push(&"pw".into(), &other).await.unwrap();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("pushed")).await.unwrap()),
        r#"{"pass":"pw","user":"alice"}"#
    );
    // Unchanged: no PutSecretValue, no tag calls.
    let puts = calls.count("PutSecretValue");
    client.push(&"pw".into(), &other).await.unwrap();
    assert_eq!(
        calls.count("PutSecretValue"),
        puts,
        "an unchanged push writes nothing"
    );
    assert_eq!(calls.count("TagResource"), 0);
    // Changed tags are reconciled.
    let retag = PushRef {
        metadata: meta(json!({"tags": {"team": "b"}, "secretPushFormat": "string"})),
        ..other.clone()
    };
    client.push(&"pw".into(), &retag).await.unwrap();
    assert_eq!(calls.count("TagResource"), 1);
    // Binary by default.
    let bin = PushRef {
        remote_key: "pushed-bin".into(),
        ..PushRef::default()
    };
    client.push(&"raw".into(), &bin).await.unwrap();
    let out = sm
        .get_secret_value()
        .secret_id("pushed-bin")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_binary().unwrap().as_ref(), b"raw");
    assert!(out.secret_string().is_none());
    // Not ours: refused, untouched, and not deleted.
    let theirs = PushRef {
        remote_key: "not-ours".into(),
        ..PushRef::default()
    };
    let err = client.push(&"mine".into(), &theirs).await.unwrap_err();
    assert!(
        err.to_string().contains("not managed by external-secrets"),
        "{err}"
    );
    client.delete(&theirs).await.unwrap();
    let out = sm
        .get_secret_value()
        .secret_id("not-ours")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_string(), Some("theirs"));
    // Managed: deleted (recovery window by default, so the name reads as missing).
    client.delete(&bin).await.unwrap();
    assert!(!client.exists(&bin).await.unwrap());
    client.delete(&bin).await.unwrap();
    // A user managed-by tag and unknown fields are refused.
    let bad = PushRef {
        metadata: meta(json!({"tags": {"managed-by": "me"}})),
        ..bin.clone()
    };
    assert!(matches!(
        client.push(&"x".into(), &bad).await,
        Err(ProviderError::InvalidConfig(_))
    ));

    // forceDeleteWithoutRecovery frees the name at once.
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let mut spec = static_spec("SecretsManager");
    spec.secrets_manager = Some(
        strongroom_core::crd::external_secrets::AwsSecretsManagerOptions {
            force_delete_without_recovery: Some(true),
            recovery_window_in_days: None,
        },
    );
    let force = connect(&moto, &store(spec), env).await;
    force.delete(&target).await.unwrap();
    force.push(&"again".into(), &target).await.unwrap();
    assert_eq!(
        text(&force.get_secret(&RemoteRef::key("pushed")).await.unwrap()),
        r#"{"user":"again"}"#
    );
}

/// The regions secret `name` is replicated to, as moto reports them.
async fn replica_regions(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
) -> std::collections::BTreeSet<String> {
    let described = sm.describe_secret().secret_id(name).send().await.unwrap();
    described
        .replication_status()
        .iter()
        .map(|s| s.region().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn secrets_manager_push_replication() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    let (calls, client) = static_client(&moto, "SecretsManager").await;
    let push = |regions: Option<Vec<&str>>| PushRef {
        remote_key: "replicated".into(),
        property: None,
        metadata: meta(match regions {
            Some(r) => json!({"replicationLocations": r}),
            None => json!({}),
        }),
    };
    let set = |r: &[&str]| {
        r.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };

    // Created with its replicas in one CreateSecret.
    client
        .push(&"v".into(), &push(Some(vec!["eu-west-1"])))
        .await
        .unwrap();
    assert_eq!(
        replica_regions(&sm, "replicated").await,
        set(&["eu-west-1"])
    );
    assert_eq!(calls.count("ReplicateSecretToRegions"), 0);

    // A region added: one ReplicateSecretToRegions, the unchanged value not rewritten.
    client
        .push(&"v".into(), &push(Some(vec!["ap-south-1", "eu-west-1"])))
        .await
        .unwrap();
    assert_eq!(
        replica_regions(&sm, "replicated").await,
        set(&["ap-south-1", "eu-west-1"])
    );
    assert_eq!(calls.count("ReplicateSecretToRegions"), 1);
    assert_eq!(calls.count("PutSecretValue"), 0);

    // A region dropped: RemoveRegionsFromReplication only.
    client
        .push(&"v".into(), &push(Some(vec!["ap-south-1"])))
        .await
        .unwrap();
    assert_eq!(
        replica_regions(&sm, "replicated").await,
        set(&["ap-south-1"])
    );
    assert_eq!(calls.count("RemoveRegionsFromReplication"), 1);
    assert_eq!(calls.count("ReplicateSecretToRegions"), 1);

    // No replicationLocations: replicas left alone, as upstream.
    client.push(&"v2".into(), &push(None)).await.unwrap();
    assert_eq!(
        replica_regions(&sm, "replicated").await,
        set(&["ap-south-1"])
    );
    assert_eq!(calls.count("RemoveRegionsFromReplication"), 1);
    assert_eq!(calls.count("PutSecretValue"), 1);

    // Delete: the replicas go first (AWS refuses to delete a replicated secret).
    client.delete(&push(None)).await.unwrap();
    assert_eq!(calls.count("RemoveRegionsFromReplication"), 2);
    let described = sm
        .describe_secret()
        .secret_id("replicated")
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_some(), "scheduled for deletion");
    assert!(described.replication_status().is_empty());
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;

async fn policy_of(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Option<serde_json::Value> {
    let out = sm
        .get_resource_policy()
        .secret_id(name)
        .send()
        .await
        .unwrap();
    out.resource_policy()
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p).unwrap())
}

#[tokio::test]
async fn secrets_manager_push_resource_policy() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    let mut resolver = Resolver::with_keys("test", "test");
    resolver.config_maps.insert(
        ("creds".into(), "policies".into(), "policy.json".into()),
        POLICY.into(),
    );
    let other = POLICY.replace("GetSecretValue", "DescribeSecret");
    resolver.put("policy", "doc", &other);
    resolver.put("bad-policy", "doc", &format!("not json {CANARY}"));
    let (calls, env) = provider_env(resolver);
    let client = connect(&moto, &store(static_spec("SecretsManager")), env).await;
    let push = |key: &str, policy: serde_json::Value| PushRef {
        remote_key: key.into(),
        property: None,
        metadata: meta(if policy.is_null() {
            json!({})
        } else {
            json!({ "resourcePolicy": policy })
        }),
    };
    let from = |kind: &str, name: &str, key: &str| {
        json!({"blockPublicPolicy": true,
            "policySourceRef": {"kind": kind, "name": name, "key": key}})
    };
    let json_of = |p: &str| serde_json::from_str::<serde_json::Value>(p).unwrap();

    // Created, then the policy from the ConfigMap put.
    let cm = push("guarded", from("ConfigMap", "policies", "policy.json"));
    client.push(&"v".into(), &cm).await.unwrap();
    assert_eq!(policy_of(&sm, "guarded").await, Some(json_of(POLICY)));
    assert_eq!(calls.count("PutResourcePolicy"), 1);
    // Unchanged: read, not rewritten.
    client.push(&"v".into(), &cm).await.unwrap();
    assert_eq!(calls.count("GetResourcePolicy"), 1);
    assert_eq!(calls.count("PutResourcePolicy"), 1);
    // From a Secret, different: put.
    client
        .push(
            &"v".into(),
            &push("guarded", from("Secret", "policy", "doc")),
        )
        .await
        .unwrap();
    assert_eq!(policy_of(&sm, "guarded").await, Some(json_of(&other)));
    assert_eq!(calls.count("PutResourcePolicy"), 2);
    // Without the field: left alone, no policy call.
    let before = calls.all().len();
    client
        .push(&"v".into(), &push("guarded", serde_json::Value::Null))
        .await
        .unwrap();
    assert_eq!(policy_of(&sm, "guarded").await, Some(json_of(&other)));
    assert_eq!(
        calls.all().len() - before,
        2,
        "DescribeSecret, GetSecretValue"
    );
    // resourcePolicy without a source: removed.
    client
        .push(&"v".into(), &push("guarded", json!({})))
        .await
        .unwrap();
    assert_eq!(policy_of(&sm, "guarded").await, None);
    assert_eq!(calls.count("DeleteResourcePolicy"), 1);

    // Unreadable sources: clear errors naming the source, nothing created, no policy text.
    let mut errors = Vec::new();
    for (source, says) in [
        (
            from("ConfigMap", "nope", "policy.json"),
            "ConfigMap creds/nope",
        ),
        (from("Secret", "bad-policy", "doc"), "is not JSON"),
        (from("Namespace", "x", "y"), "not ConfigMap or Secret"),
    ] {
        let err = client
            .push(&"v".into(), &push("never", source))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        errors.push(format!("{err} {err:?}"));
    }
    assert!(
        sm.describe_secret()
            .secret_id("never")
            .send()
            .await
            .is_err(),
        "nothing is created when the policy cannot be read"
    );
    let texts: Vec<(&str, &str)> = errors.iter().map(|e| ("an error", e.as_str())).collect();
    assert_no_canary(&[], &texts);
}

#[tokio::test]
async fn parameter_store_push_rules() {
    let moto = Moto::start().await;
    let ssm = ssm(&moto).await;
    put_param(&ssm, "/not-ours", "theirs").await;
    let (calls, client) = static_client(&moto, "ParameterStore").await;
    let target = PushRef {
        remote_key: "/pushed".into(),
        property: None,
        metadata: meta(json!({"secretType": "SecureString", "tags": {"team": "a"}})),
    };
    client.push(&"v1".into(), &target).await.unwrap();
    let p = ssm
        .get_parameter()
        .name("/pushed")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = p.parameter().unwrap();
    assert_eq!(
        p.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    assert_eq!(p.value(), Some("v1"));
    let tags = client.get_secret(&metadata_ref("/pushed")).await.unwrap();
    assert_eq!(
        text(&tags),
        r#"{"managed-by":"external-secrets","team":"a"}"#
    );
    let puts = calls.count("PutParameter");
    client.push(&"v1".into(), &target).await.unwrap();
    assert_eq!(
        calls.count("PutParameter"),
        puts,
        "an unchanged push writes nothing"
    );
    client.push(&"v2".into(), &target).await.unwrap();
    assert_eq!(calls.count("PutParameter"), puts + 1);
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("/pushed")).await.unwrap()),
        "v2"
    );
    let theirs = PushRef {
        remote_key: "/not-ours".into(),
        ..PushRef::default()
    };
    let err = client.push(&"mine".into(), &theirs).await.unwrap_err();
    assert!(
        err.to_string().contains("not managed by external-secrets"),
        "{err}"
    );
    client.delete(&theirs).await.unwrap();
    assert!(client.exists(&theirs).await.unwrap());
    client.delete(&target).await.unwrap();
    assert!(!client.exists(&target).await.unwrap());
}

#[tokio::test]
async fn web_identity_and_role_chain() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    put_secret(&sm, "k", "v").await;

    // Web identity: the ServiceAccount's role and audience annotations, a fresh token.
    let resolver = Resolver {
        annotations: BTreeMap::from([
            (
                "eks.amazonaws.com/role-arn".into(),
                format!("arn:aws:iam::{ACCOUNT}:role/reader"),
            ),
            ("eks.amazonaws.com/audience".into(), "my-aud".into()),
        ]),
        ..Resolver::default()
    };
    let resolver = std::sync::Arc::new(resolver);
    let env = strongroom_provider_api::ProviderEnv {
        credentials: resolver.clone(),
        calls: std::sync::Arc::new(Calls::default()),
    };
    let client = connect(&moto, &store(jwt_spec("SecretsManager")), env).await;
    let before = moto.requests().len();
    assert_eq!(client.validate().await.unwrap(), Validation::Ready);
    assert_eq!(
        moto.requests().len() - before,
        1,
        "validate: one AssumeRoleWithWebIdentity"
    );
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    assert_eq!(moto.requests().len() - before, 3, "credentials are cached");
    let tokens = resolver.tokens.lock().unwrap().clone();
    assert_eq!(
        tokens,
        [(
            "creds/reader".to_string(),
            vec!["my-aud".to_string(), "extra-aud".to_string()]
        )]
    );

    // Without the annotation: an authentication failure naming it.
    let (_, env) = env_plain();
    let err = AwsProvider::with_endpoint(&moto.endpoint)
        .connect(&store(jwt_spec("SecretsManager")), env)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ProviderError::Authentication(m) if m.contains("eks.amazonaws.com/role-arn")),
        "{err}"
    );

    // Static keys, then additionalRoles, then role with an external id and session tags.
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let mut spec = static_spec("SecretsManager");
    spec.additional_roles = Some(vec![format!("arn:aws:iam::{ACCOUNT}:role/hop")]);
    spec.role = Some(format!("arn:aws:iam::{ACCOUNT}:role/final"));
    spec.external_id = Some("ext".into());
    spec.session_tags_policy = Some("Simple".into());
    let chained = connect(&moto, &store(spec), env).await;
    let before = moto.requests().len();
    assert_eq!(
        text(&chained.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    assert_eq!(
        moto.requests().len() - before,
        3,
        "two AssumeRole calls, one read"
    );
    assert_eq!(chained.validate().await.unwrap(), Validation::Ready);
    assert_eq!(
        text(&chained.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    assert_eq!(moto.requests().len() - before, 4, "the chain is cached");
}

fn env_plain() -> (std::sync::Arc<Calls>, strongroom_provider_api::ProviderEnv) {
    provider_env(Resolver::default())
}

#[tokio::test]
async fn outage_is_unavailable_and_recovers() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    put_secret(&sm, "k", "v").await;
    let (calls, client) = static_client(&moto, "SecretsManager").await;
    client.get_secret(&RemoteRef::key("k")).await.unwrap();
    moto.process.signal("STOP");
    let started = Instant::now();
    let err = client.get_secret(&RemoteRef::key("k")).await.unwrap_err();
    let took = started.elapsed();
    moto.process.signal("CONT");
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    assert!(err.is_retryable());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        calls
            .all()
            .iter()
            .any(|(_, c, ok)| c == "GetSecretValue" && !ok)
    );
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );

    // Nothing listens at all.
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let closed = AwsProvider::with_endpoint(format!(
        "http://127.0.0.1:{}",
        strongroom_testkit::free_port()
    ))
    .connect(&store(static_spec("ParameterStore")), env)
    .await
    .unwrap();
    let err = closed.get_secret(&RemoteRef::key("/k")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn no_secret_value_in_errors() {
    let moto = Moto::start().await;
    let sm = sm(&moto).await;
    let ssm = ssm(&moto).await;
    put_secret(&sm, "canary", &format!("plain {CANARY}")).await;
    put_secret(&sm, "canary-json", &format!(r#"{{"a":"{CANARY}"}}"#)).await;
    put_param(&ssm, "/canary", &format!("plain {CANARY}")).await;
    let mut errors: Vec<String> = Vec::new();
    let mut record = |e: ProviderError| {
        errors.push(e.to_string());
        errors.push(format!("{e:?}"));
    };
    for service in ["SecretsManager", "ParameterStore"] {
        let (_, client) = static_client(&moto, service).await;
        let key = if service == "SecretsManager" {
            "canary"
        } else {
            "/canary"
        };
        for property in ["nope", "a.b"] {
            record(
                client
                    .get_secret(&remote(key, Some(property), None))
                    .await
                    .unwrap_err(),
            );
        }
        record(
            client
                .get_secret_map(&RemoteRef::key(key))
                .await
                .unwrap_err(),
        );
        // An unmanaged target, a property into a non-JSON value, bad metadata.
        record(
            client
                .push(
                    &CANARY.into(),
                    &PushRef {
                        remote_key: key.into(),
                        property: Some("p".into()),
                        metadata: None,
                    },
                )
                .await
                .unwrap_err(),
        );
        record(
            client
                .push(
                    &CANARY.into(),
                    &PushRef {
                        remote_key: format!("{key}-new"),
                        property: None,
                        metadata: meta(json!({"bogus": CANARY, "tags": {"x": CANARY}})),
                    },
                )
                .await
                .unwrap_err(),
        );
        record(
            client
                .push(
                    &CANARY.into(),
                    &PushRef {
                        remote_key: format!("{key}-new"),
                        property: None,
                        metadata: meta(json!({"description": 5, "tags": CANARY})),
                    },
                )
                .await
                .unwrap_err(),
        );
    }
    let (_, client) = static_client(&moto, "SecretsManager").await;
    record(
        client
            .get_secret_map(&remote("canary-json", Some("a"), None))
            .await
            .unwrap_err(),
    );
    // Keys that AWS rejects: the keys themselves must not show either.
    let (_, env) = provider_env(Resolver::with_keys(CANARY, CANARY));
    let mut spec = static_spec("SecretsManager");
    spec.role = Some("not-an-arn".into());
    let client = connect(&moto, &store(spec), env).await;
    if let Err(e) = client.validate().await {
        record(e);
    }
    if let Err(e) = client.get_secret(&RemoteRef::key("canary")).await {
        record(e);
    }
    moto.process.signal("STOP");
    let (_, client) = static_client(&moto, "SecretsManager").await;
    record(
        client
            .push(
                &CANARY.into(),
                &PushRef {
                    remote_key: "x".into(),
                    ..PushRef::default()
                },
            )
            .await
            .unwrap_err(),
    );
    moto.process.signal("CONT");
    assert!(errors.len() >= 20, "{errors:#?}");
    let texts: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| ("a provider error", e.as_str()))
        .collect();
    assert_no_canary(&[], &texts);
}

#[tokio::test]
async fn store_validation_and_referent_auth() {
    let provider = AwsProvider::default();
    let mut spec = static_spec("SecretsManager");
    spec.region = String::new();
    assert!(provider.validate_store(&store(spec)).is_err());
    let mut cluster = store(static_spec("SecretsManager"));
    cluster.kind = strongroom_core::crd::external_secrets::StoreKind::ClusterSecretStore;
    cluster.namespace = None;
    assert!(provider.validate_store(&cluster).is_ok());
    // Referent: no reader yet, so Unknown, and reads say why they cannot work.
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = AwsProvider::with_endpoint("http://127.0.0.1:9")
        .connect(&cluster, env)
        .await
        .unwrap();
    assert_eq!(client.validate().await.unwrap(), Validation::Unknown);
    let err = client.get_secret(&RemoteRef::key("k")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("referent")),
        "{err}"
    );
    // Read from an ExternalSecret in `creds`: keys resolve there.
    let moto = Moto::start().await;
    put_secret(&sm(&moto).await, "k", "v").await;
    cluster.referent_namespace = Some("creds".into());
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &cluster, env).await;
    assert_eq!(client.validate().await.unwrap(), Validation::Unknown);
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
}

/// STS session length as upstream's SDK asks for it: `AssumeRole` 15 minutes (aws-sdk-go-v2's
/// `stscreds` default), `AssumeRoleWithWebIdentity` none (STS's default), as seen at STS.
#[tokio::test]
async fn assume_role_asks_for_upstreams_session_length() {
    let moto = Moto::start().await;
    put_secret(&sm(&moto).await, "k", "v").await;
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let resolver = Resolver {
        annotations: BTreeMap::from([(
            "eks.amazonaws.com/role-arn".into(),
            format!("arn:aws:iam::{ACCOUNT}:role/reader"),
        )]),
        ..Resolver::default()
    };
    let (_, env) = provider_env(resolver);
    let mut spec = jwt_spec("SecretsManager");
    spec.role = Some(format!("arn:aws:iam::{ACCOUNT}:role/final"));
    let store = store(spec);
    let provider = AwsProvider::with_endpoint(proxy.url.clone());
    provider.validate_store(&store).unwrap();
    let client = provider.connect(&store, env).await.unwrap();
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key("k")).await.unwrap()),
        "v"
    );
    let sts: Vec<(String, Option<String>)> = proxy
        .recorded()
        .iter()
        .filter_map(|r| {
            let op = r.operation()?;
            op.starts_with("AssumeRole")
                .then(|| (op, r.field("DurationSeconds")))
        })
        .collect();
    assert_eq!(
        sts,
        [
            ("AssumeRoleWithWebIdentity".to_string(), None),
            ("AssumeRole".to_string(), Some("900".to_string())),
        ]
    );
}
