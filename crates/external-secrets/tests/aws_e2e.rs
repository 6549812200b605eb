//! End to end with the aws provider: the `external-secrets-controller` binary against
//! devcluster and moto, the endpoints given by upstream's `AWS_SECRETSMANAGER_ENDPOINT` and
//! `AWS_SSM_ENDPOINT`. Secrets Manager: a sync, a remote change picked up within the refresh
//! interval, an outage that keeps the Secret and says so, recovery, and the call metric.
//! Parameter Store: a PushSecret creates, updates and (deletionPolicy Delete) removes a
//! managed parameter; a PushSecret to Secrets Manager with replica regions and a resource policy
//! from a ConfigMap. Generators: ECRAuthorizationToken (private, and public against a stand-in)
//! and STSSessionToken, directly and through a ClusterGenerator, and a broken one as a clear
//! condition and event; STSAssumeRoleToken, and CodeArtifactAuthorizationToken (against a
//! stand-in: moto has no CodeArtifact) with its role assumed at moto first. Credentials: a role chain with external ID and session tags seen at
//! STS, the SDK default chain from the controller's environment (keys, IRSA token file), web
//! identity from a minted token, and expiring role credentials renewed without a failed sync.
//! Certificate Manager: a PushSecret imports a TLS Secret (re-imported when it changes, refused
//! once the certificate is no longer managed), an ExternalSecret exports an exportable
//! certificate, and reading an imported one is a clear condition that keeps the Secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use common::{put_secret, wait_ready};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use strongroom_core::crd::external_secrets::{ExternalSecret, SecretStore};
use strongroom_testkit::backends::Moto;
use strongroom_testkit::{
    CANARY, Process, assert_no_canary, http_get, start_cluster_with_rbac, wait_for,
};

const CRDS: [&str; 4] = [
    "deploy/crds/external-secrets.io_externalsecrets.yaml",
    "deploy/crds/external-secrets.io_secretstores.yaml",
    "deploy/crds/external-secrets.io_clustersecretstores.yaml",
    "deploy/crds/external-secrets.io_pushsecrets.yaml",
];

/// An SDK configuration that seeds and inspects moto directly.
async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(&moto.endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .load()
        .await
}

/// SecretStore `default/aws` for `service` with the keys of Secret `aws-creds`.
async fn aws_store(client: &Client, service: &str, prefix: &str) {
    put_secret(client, "aws-creds", json!({"id": "test", "secret": "test"})).await;
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "default"},
        "spec": {"provider": {"aws": {"service": service, "region": "us-east-1",
            "prefix": prefix,
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}
    }))
    .unwrap();
    Api::<SecretStore>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
}

/// The controller with every AWS endpoint at moto; returns it and its metrics URL.
async fn start_controller(
    dir: &std::path::Path,
    cluster: &strongroom_testkit::DevCluster,
    moto: &Moto,
) -> (Process, String) {
    let endpoints = [
        "AWS_SECRETSMANAGER_ENDPOINT",
        "AWS_SSM_ENDPOINT",
        "AWS_STS_ENDPOINT",
        "AWS_ECR_ENDPOINT",
        "AWS_ACM_ENDPOINT",
        "AWS_RESOURCE_GROUPS_TAGGING_API_ENDPOINT",
    ]
    .map(|k| (k, moto.endpoint.clone()));
    let c = common::start_controller_with_env(dir, cluster, &[], &endpoints).await;
    (c.process, c.metrics)
}

async fn password(client: &Client) -> Option<(String, String)> {
    let s = Api::<Secret>::namespaced(client.clone(), "default")
        .get_opt("db")
        .await
        .unwrap()?;
    let value = s.data.as_ref()?.get("password")?.0.clone();
    Some((
        String::from_utf8_lossy(&value).into_owned(),
        s.resource_version().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_secrets_manager_and_survives_an_outage() {
    let started = Instant::now();
    let moto = Moto::start().await;
    let sdk = sdk(&moto).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": format!("one-{CANARY}")}).to_string())
        .send()
        .await
        .unwrap();

    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    aws_store(&client, "SecretsManager", "app/").await;
    let dir = tempfile::tempdir().unwrap();
    let (controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;

    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1s",
            "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}}]},
    });
    Api::<ExternalSecret>::namespaced(client.clone(), "default")
        .patch(
            "db",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&es),
        )
        .await
        .unwrap();
    wait_ready(&client, "db", "True", "SecretSynced").await;
    assert_eq!(password(&client).await.unwrap().0, format!("one-{CANARY}"));

    // A new remote value reaches the Secret within a few refresh intervals.
    sm.put_secret_value()
        .secret_id("app/db")
        .secret_string(json!({"password": format!("two-{CANARY}")}).to_string())
        .send()
        .await
        .unwrap();
    let changed = Instant::now();
    wait_for(
        || async {
            password(&client)
                .await
                .is_some_and(|(p, _)| p == format!("two-{CANARY}"))
        },
        "the new remote value in the Secret",
    )
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(10),
        "{:?}",
        changed.elapsed()
    );
    let (_, version) = password(&client).await.unwrap();

    // moto stops answering: the ExternalSecret says so, the Secret stays as it was.
    moto.process.signal("STOP");
    let message = wait_ready(&client, "db", "False", "SecretSyncedError").await;
    assert!(
        message.contains("unavailable") && message.contains("GetSecretValue"),
        "{message}"
    );
    assert_eq!(
        password(&client).await.unwrap(),
        (format!("two-{CANARY}"), version.clone()),
        "an outage never touches the Secret"
    );
    moto.process.signal("CONT");
    wait_ready(&client, "db", "True", "SecretSynced").await;

    let (_, metrics) = http_get(&metrics_url).await;
    for status in ["success", "error"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"GetSecretValue\",provider=\"AWS/SecretsManager\",status=\"{status}\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    assert_no_canary(&[CANARY], &[("log", &controller.log_text())]);
    eprintln!("aws e2e took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_manages_a_parameter() {
    use kube::api::DeleteParams;
    use strongroom_core::crd::external_secrets::PushSecret;
    let moto = Moto::start().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk(&moto).await);
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    aws_store(&client, "ParameterStore", "/team/").await;
    put_secret(&client, "source", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let (_controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "aws", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "password", "remoteRef": {"remoteKey": "password"}},
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                    "kind": "PushSecretMetadata", "spec": {"secretType": "SecureString"}}}]
        }
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "default");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let remote = || async {
        ssm.get_parameter()
            .name("/team/password")
            .with_decryption(true)
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter().and_then(|p| p.value().map(str::to_string)))
    };
    wait_for(
        || async { remote().await.as_deref() == Some("v1") },
        "pushed",
    )
    .await;
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/team/password")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_list()
            .iter()
            .any(|t| t.key() == "managed-by" && t.value() == "external-secrets")
    );
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(
            "source",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "v2"}})),
        )
        .await
        .unwrap();
    wait_for(
        || async { remote().await.as_deref() == Some("v2") },
        "source change pushed",
    )
    .await;
    pss.delete("push", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { remote().await.is_none() && pss.get_opt("push").await.unwrap().is_none() },
        "parameter removed with the PushSecret",
    )
    .await;
    let (_, metrics) = http_get(&metrics_url).await;
    for call in ["PutParameter", "DeleteParameter"] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"AWS/ParameterStore\",status=\"success\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
}

/// Creates a generators.external-secrets.io object (namespaced in `default`, or a
/// ClusterGenerator) from its manifest.
async fn apply_generator(client: &Client, obj: serde_json::Value) {
    use kube::api::{ApiResource, DynamicObject};
    let kind = obj["kind"].as_str().unwrap().to_string();
    let ar = ApiResource {
        group: "generators.external-secrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "generators.external-secrets.io/v1alpha1".into(),
        kind: kind.clone(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<DynamicObject> = if kind == "ClusterGenerator" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), "default", &ar)
    };
    api.patch(&name, &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_and_sts_generators() {
    use common::{apply_es, es, secret_data};
    let moto = Moto::start().await;
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_ecrauthorizationtokens.yaml",
        "deploy/crds/generators.external-secrets.io_stssessiontokens.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    // The secret key and session token are canaries: they sign requests and must show nowhere.
    put_secret(
        &client,
        "aws-creds",
        json!({"id": "test", "secret": CANARY, "token": format!("tok-{CANARY}")}),
    )
    .await;
    let auth = |secret: &str| {
        json!({"secretRef": {
            "accessKeyIDSecretRef": {"name": secret, "key": "id"},
            "secretAccessKeySecretRef": {"name": secret, "key": "secret"},
            "sessionTokenSecretRef": {"name": secret, "key": "token"}}})
    };
    let g = "generators.external-secrets.io/v1alpha1";
    apply_generator(
        &client,
        json!({"apiVersion": g, "kind": "ECRAuthorizationToken",
        "metadata": {"name": "ecr", "namespace": "default"},
        "spec": {"region": "us-east-1", "auth": auth("aws-creds"),
            "role": "arn:aws:iam::111111111111:role/ecr-pull"}}),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": g, "kind": "STSSessionToken",
        "metadata": {"name": "sts", "namespace": "default"},
        "spec": {"region": "us-east-1", "auth": auth("aws-creds"),
            "requestParameters": {"sessionDuration": 900}}}),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": g, "kind": "ClusterGenerator",
        "metadata": {"name": "ecr-eu"},
        "spec": {"kind": "ECRAuthorizationToken", "generator": {"ecrAuthorizationTokenSpec":
            {"region": "eu-west-1", "auth": auth("aws-creds")}}}}),
    )
    .await;
    // ECR Public: moto does not serve it, so a stand-in written from the API reference does
    // (`strongroom_testkit::standins::ecr_public`).
    apply_generator(
        &client,
        json!({"apiVersion": g, "kind": "STSSessionToken",
        "metadata": {"name": "no-creds", "namespace": "default"},
        "spec": {"region": "us-east-1", "auth": auth("missing-creds")}}),
    )
    .await;
    apply_generator(
        &client,
        json!({"apiVersion": g, "kind": "ECRAuthorizationToken",
        "metadata": {"name": "public", "namespace": "default"},
        "spec": {"region": "us-east-1", "scope": "public", "auth": auth("aws-creds")}}),
    )
    .await;

    let ecr_public = strongroom_testkit::standins::ecr_public::EcrPublicStandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        ("AWS_SECRETSMANAGER_ENDPOINT", moto.endpoint.clone()),
        ("AWS_STS_ENDPOINT", moto.endpoint.clone()),
        ("AWS_ECR_ENDPOINT", moto.endpoint.clone()),
        ("AWS_ECR_PUBLIC_ENDPOINT", ecr_public.url.clone()),
    ];
    let controller = common::start_controller_with_env(dir.path(), &cluster, &[], &endpoints)
        .await
        .process;
    let from = |kind: &str, name: &str| {
        json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": kind, "name": name}}}]})
    };
    for (es_name, kind, name) in [
        ("registry", "ECRAuthorizationToken", "ecr"),
        ("session", "STSSessionToken", "sts"),
        ("registry-eu", "ClusterGenerator", "ecr-eu"),
        ("no-creds", "STSSessionToken", "no-creds"),
        ("public", "ECRAuthorizationToken", "public"),
    ] {
        apply_es(&client, es(es_name, from(kind, name))).await;
    }

    wait_ready(&client, "registry", "True", "SecretSynced").await;
    let registry = secret_data(&client, "registry").await.unwrap();
    // moto answers in the assumed role's account: the role was used.
    assert_eq!(registry["username"], "AWS");
    assert_eq!(registry["password"], "111111111111-auth-token");
    assert_eq!(
        registry["proxy_endpoint"],
        "https://111111111111.dkr.ecr.us-east-1.amazonaws.com"
    );
    assert_eq!(registry["expires_at"], "1420070400");

    wait_ready(&client, "session", "True", "SecretSynced").await;
    let session = secret_data(&client, "session").await.unwrap();
    assert_eq!(
        session.keys().collect::<Vec<_>>(),
        [
            "access_key_id",
            "expiration",
            "secret_access_key",
            "session_token"
        ]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = session["expiration"].parse::<u64>().unwrap() - now;
    assert!((800..=960).contains(&left), "expires in {left}s");

    wait_ready(&client, "registry-eu", "True", "SecretSynced").await;
    let eu = secret_data(&client, "registry-eu").await.unwrap();
    assert_eq!(
        eu["proxy_endpoint"],
        "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    );

    let message = wait_ready(&client, "no-creds", "False", "SecretSyncedError").await;
    assert!(
        message.contains("STSSessionToken") && message.contains("missing-creds"),
        "{message}"
    );
    // ECR Public: upstream's keys (no registry URL), from a signed request
    wait_ready(&client, "public", "True", "SecretSynced").await;
    let public = secret_data(&client, "public").await.unwrap();
    use strongroom_testkit::standins::ecr_public::{EXPIRES_AT, TOKEN};
    assert_eq!(
        public.keys().collect::<Vec<_>>(),
        ["expires_at", "password", "username"]
    );
    assert_eq!(
        (
            public["username"].as_str(),
            public["password"].as_str(),
            public["expires_at"].as_str()
        ),
        ("AWS", TOKEN, EXPIRES_AT.to_string().as_str())
    );
    let signed = ecr_public.authorizations();
    assert!(!signed.is_empty());
    for a in &signed {
        let a = a.as_deref().unwrap_or_default();
        assert!(
            a.starts_with("AWS4-HMAC-SHA256 Credential=test/")
                && a.contains("/us-east-1/ecr-public/aws4_request")
                && a.contains("Signature="),
            "SigV4 for ecr-public with the generator's key: {a}"
        );
    }
    assert!(
        secret_data(&client, "no-creds").await.is_none(),
        "a failed generator writes no Secret"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let warning = events.items.iter().find(|e| {
        e.regarding
            .as_ref()
            .is_some_and(|r| r.name.as_deref() == Some("no-creds"))
            && e.type_.as_deref() == Some("Warning")
    });
    assert!(
        warning
            .and_then(|e| e.note.as_deref())
            .is_some_and(|m| m.contains("missing-creds")),
        "a Warning event names the missing Secret: {warning:?}"
    );
    let events_text = serde_json::to_string(&events.items).unwrap();
    let statuses = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[
            CANARY,
            registry["password"].as_str(),
            public["password"].as_str(),
            session["secret_access_key"].as_str(),
            session["session_token"].as_str(),
        ],
        &[
            ("log", &controller.log_text()),
            ("events", &events_text),
            ("status", &statuses),
        ],
    );
}

/// STSAssumeRoleToken and CodeArtifactAuthorizationToken through the controller. STS is moto;
/// CodeArtifact is a stand-in written from the API reference
/// (`strongroom_testkit::standins::codeartifact`), since moto does not serve it. The assumed
/// role's credentials are what AWS (moto) hands out for the role, with the external ID at STS;
/// the CodeArtifact call is signed with the key of the role the generator assumed first; a
/// ClusterGenerator of CodeArtifactAuthorizationToken works too; bad generators are conditions
/// naming the object; no secret shows in the log, events or status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_assume_role_and_codeartifact_generators() {
    use common::{apply_es, es, secret_data};
    use strongroom_testkit::standins::codeartifact::{CodeArtifactStandIn, DOMAIN, EXPIRATION};
    let moto = Moto::start().await;
    let mut crds = CRDS.to_vec();
    crds.extend([
        "deploy/crds/generators.external-secrets.io_stsassumeroletokens.yaml",
        "deploy/crds/generators.external-secrets.io_codeartifactauthorizationtokens.yaml",
        "deploy/crds/generators.external-secrets.io_clustergenerators.yaml",
    ]);
    let (cluster, client) = start_cluster_with_rbac(&crds, &[]).await;
    // The secret key is a canary: it signs requests and must show nowhere.
    put_secret(
        &client,
        "aws-creds",
        json!({"id": "test", "secret": CANARY}),
    )
    .await;
    let auth = |secret: &str| {
        json!({"secretRef": {
            "accessKeyIDSecretRef": {"name": secret, "key": "id"},
            "secretAccessKeySecretRef": {"name": secret, "key": "secret"}}})
    };
    let deployer = "arn:aws:iam::111111111111:role/deployer";
    let reader = "arn:aws:iam::333333333333:role/ca-reader";
    let g = "generators.external-secrets.io/v1alpha1";
    let ca_token = format!("ca-{CANARY}");
    let standin = CodeArtifactStandIn::start_with_token(&ca_token);
    for obj in [
        json!({"apiVersion": g, "kind": "STSAssumeRoleToken",
            "metadata": {"name": "deployer", "namespace": "default"},
            "spec": {"region": "us-east-1", "role": deployer, "auth": auth("aws-creds"),
                "requestParameters": {"sessionDuration": 1800, "externalID": "ext-7"}}}),
        json!({"apiVersion": g, "kind": "STSAssumeRoleToken",
            "metadata": {"name": "no-creds", "namespace": "default"},
            "spec": {"region": "us-east-1", "role": deployer, "auth": auth("missing-creds")}}),
        json!({"apiVersion": g, "kind": "CodeArtifactAuthorizationToken",
            "metadata": {"name": "packages", "namespace": "default"},
            "spec": {"region": "eu-west-1", "domain": DOMAIN, "domainOwner": "333333333333",
                "role": reader, "durationSeconds": 3600, "auth": auth("aws-creds")}}),
        json!({"apiVersion": g, "kind": "CodeArtifactAuthorizationToken",
            "metadata": {"name": "short", "namespace": "default"},
            "spec": {"region": "eu-west-1", "domain": DOMAIN, "domainOwner": "333333333333",
                "durationSeconds": 60, "auth": auth("aws-creds")}}),
        json!({"apiVersion": g, "kind": "ClusterGenerator",
            "metadata": {"name": "packages-cluster"},
            "spec": {"kind": "CodeArtifactAuthorizationToken", "generator": {
                "codeArtifactAuthorizationTokenSpec": {"region": "eu-west-1", "domain": DOMAIN,
                    "domainOwner": "333333333333", "auth": auth("aws-creds")}}}}),
    ] {
        apply_generator(&client, obj).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        ("AWS_STS_ENDPOINT", moto.endpoint.clone()),
        ("AWS_CODEARTIFACT_ENDPOINT", standin.url.clone()),
    ];
    let controller = common::start_controller_with_env(dir.path(), &cluster, &[], &endpoints)
        .await
        .process;
    let from = |kind: &str, name: &str| {
        json!({"refreshInterval": "1h", "dataFrom": [{"sourceRef": {"generatorRef": {
            "apiVersion": g, "kind": kind, "name": name}}}]})
    };
    for (es_name, kind, name) in [
        ("deployer", "STSAssumeRoleToken", "deployer"),
        ("no-creds", "STSAssumeRoleToken", "no-creds"),
        ("packages", "CodeArtifactAuthorizationToken", "packages"),
        ("short", "CodeArtifactAuthorizationToken", "short"),
        ("packages-cluster", "ClusterGenerator", "packages-cluster"),
    ] {
        apply_es(&client, es(es_name, from(kind, name))).await;
    }

    // STSAssumeRoleToken: upstream's keys, the session moto handed out for the role with the
    // external ID, and its duration.
    wait_ready(&client, "deployer", "True", "SecretSynced").await;
    let creds = secret_data(&client, "deployer").await.unwrap();
    assert_eq!(
        creds.keys().collect::<Vec<_>>(),
        [
            "access_key_id",
            "expiration",
            "secret_access_key",
            "session_token"
        ]
    );
    let sessions = role_sessions(&moto).await;
    let of_deployer: Vec<_> = sessions
        .iter()
        .filter(|s| s["role_arn"] == deployer)
        .collect();
    assert_eq!(of_deployer.len(), 1, "{sessions:?}");
    assert_eq!(of_deployer[0]["external_id"], "ext-7");
    assert_eq!(
        of_deployer[0]["access_key_id"],
        creds["access_key_id"].as_str()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = creds["expiration"].parse::<u64>().unwrap() - now;
    assert!((1_700..=1_860).contains(&left), "expires in {left}s");

    // CodeArtifact: upstream's keys; the call signed with the key of the role assumed first.
    wait_ready(&client, "packages", "True", "SecretSynced").await;
    let packages = secret_data(&client, "packages").await.unwrap();
    assert_eq!(
        packages,
        std::collections::BTreeMap::from([
            ("authorizationToken".to_string(), ca_token.clone()),
            ("expiration".to_string(), EXPIRATION.to_string()),
        ])
    );
    let reader_key = key_of(&role_sessions(&moto).await, reader);
    wait_ready(&client, "packages-cluster", "True", "SecretSynced").await;
    let requests = standin.requests();
    let signed_by = |key: &str| {
        requests
            .iter()
            .filter(|r| {
                r.authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key}/")))
            })
            .collect::<Vec<_>>()
    };
    let by_role = signed_by(&reader_key);
    assert_eq!(by_role.len(), 1, "{requests:?}");
    assert_eq!(
        (
            by_role[0].param("domain-owner"),
            by_role[0].param("duration")
        ),
        (Some("333333333333"), Some("3600"))
    );
    // the ClusterGenerator's spec has no role: signed with the Secret's key
    assert_eq!(signed_by("test").len(), 1, "{requests:?}");
    assert_eq!(
        secret_data(&client, "packages-cluster").await.unwrap()["authorizationToken"],
        ca_token
    );

    // Bad generators: conditions naming the generator object and what is wrong; no Secret.
    let message = wait_ready(&client, "no-creds", "False", "SecretSyncedError").await;
    assert!(
        message.contains("STSAssumeRoleToken \"no-creds\"") && message.contains("missing-creds"),
        "{message}"
    );
    let message = wait_ready(&client, "short", "False", "SecretSyncedError").await;
    assert!(
        message.contains("CodeArtifactAuthorizationToken \"short\"")
            && message.contains("durationSeconds must be 0 or between 900 and 43200"),
        "{message}"
    );
    for name in ["no-creds", "short"] {
        assert!(secret_data(&client, name).await.is_none());
    }
    assert_eq!(standin.requests().len(), 2, "the bad spec made no call");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap();
    let events_text = serde_json::to_string(&events.items).unwrap();
    let statuses = serde_json::to_string(
        &Api::<ExternalSecret>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.status.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_no_canary(
        &[
            CANARY,
            creds["secret_access_key"].as_str(),
            creds["session_token"].as_str(),
        ],
        &[
            ("log", &controller.log_text()),
            ("events", &events_text),
            ("status", &statuses),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_secret_replicates_with_a_resource_policy() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use strongroom_core::crd::external_secrets::PushSecret;
    let moto = Moto::start().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    aws_store(&client, "SecretsManager", "").await;
    put_secret(&client, "source", json!({"token": CANARY})).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "policies", "namespace": "default"},
        "data": {"policy.json": policy}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (controller, _) = start_controller(dir.path(), &cluster, &moto).await;
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "push", "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRefs": [{"name": "aws", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "source"}},
            "data": [{"match": {"secretKey": "token", "remoteRef": {"remoteKey": "app/token"}},
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                    "kind": "PushSecretMetadata", "spec": {
                        "replicationLocations": ["eu-west-1"],
                        "resourcePolicy": {"policySourceRef":
                            {"kind": "ConfigMap", "name": "policies", "key": "policy.json"}}}}}]
        }
    }))
    .unwrap();
    Api::<PushSecret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &ps)
        .await
        .unwrap();
    wait_for(
        || async {
            sm.get_resource_policy()
                .secret_id("app/token")
                .send()
                .await
                .ok()
                .and_then(|o| o.resource_policy().map(str::to_string))
                .is_some_and(|p| {
                    serde_json::from_str::<serde_json::Value>(&p).ok()
                        == serde_json::from_str::<serde_json::Value>(policy).ok()
                })
        },
        "the pushed secret carries the ConfigMap's policy",
    )
    .await;
    let described = sm
        .describe_secret()
        .secret_id("app/token")
        .send()
        .await
        .unwrap();
    let regions: Vec<_> = described
        .replication_status()
        .iter()
        .filter_map(|s| s.region())
        .collect();
    assert_eq!(regions, ["eu-west-1"]);
    assert_no_canary(&[CANARY], &[("log", &controller.log_text())]);
}

/// A store's `retrySettings` reach the AWS SDK through the controller: behind a proxy that
/// answers 503 three times, a store allowing five attempts syncs with no failed call (four
/// requests reached the proxy), while a store allowing one attempt fails its first read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_retry_settings_reach_the_sdk() {
    let moto = Moto::start().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": "p"}).to_string())
        .send()
        .await
        .unwrap();
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    put_secret(
        &client,
        "aws-creds",
        json!({"id": "test", "secret": "test"}),
    )
    .await;
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    for (name, max) in [("retried", 5), ("once", 1)] {
        let store: SecretStore = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "retrySettings": {"maxRetries": max, "retryInterval": "200ms"},
                "provider": {"aws": {"service": "SecretsManager", "region": "us-east-1",
                "auth": {"secretRef": {
                    "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                    "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}
        }))
        .unwrap();
        stores.create(&PostParams::default(), &store).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        "AWS_SECRETSMANAGER_ENDPOINT",
        "AWS_SSM_ENDPOINT",
        "AWS_STS_ENDPOINT",
    ]
    .map(|k| (k, proxy.url.clone()));
    let controller = common::start_controller_with_env(dir.path(), &cluster, &[], &endpoints).await;
    let ready = |name: &'static str| {
        let stores = stores.clone();
        async move {
            stores
                .get(name)
                .await
                .ok()
                .and_then(|s| s.status)
                .is_some_and(|s| {
                    s.conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        }
    };
    wait_for(|| ready("retried"), "store retried Ready").await;
    wait_for(|| ready("once"), "store once Ready").await;
    let failed_reads = || async {
        common::metric_sum(
            &controller.metrics,
            "externalsecret_provider_api_calls_count{call=\"GetSecretValue\",provider=\"AWS/SecretsManager\",status=\"error\"",
        )
        .await
    };
    let es = |name: &str, store: &str| {
        json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"refreshInterval": "1h",
                     "secretStoreRef": {"name": store, "kind": "SecretStore"},
                     "data": [{"secretKey": "password",
                               "remoteRef": {"key": "app/db", "property": "password"}}]}
        })
    };
    let apply = |obj: serde_json::Value| {
        let client = client.clone();
        async move {
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            Api::<ExternalSecret>::namespaced(client, "default")
                .patch(
                    &name,
                    &PatchParams::apply("test").force(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap();
        }
    };

    proxy.fail_next(3, 503);
    let before = proxy.requests();
    apply(es("r", "retried")).await;
    wait_ready(&client, "r", "True", "SecretSynced").await;
    assert_eq!(proxy.requests() - before, 4, "three 503s and the answer");
    assert_eq!(failed_reads().await, 0.0, "the retries hid the 503s");

    proxy.fail_next(1, 503);
    apply(es("o", "once")).await;
    wait_for(
        || async { failed_reads().await >= 1.0 },
        "the single attempt failed",
    )
    .await;
    // The controller's own backoff then reads it.
    wait_ready(&client, "o", "True", "SecretSynced").await;
}

/// Calls whose arrival at the proxy falls in `[from, to)`.
fn arrived_between(
    arrivals: &[(Instant, bool)],
    from: Instant,
    to: Instant,
) -> Vec<(Instant, bool)> {
    arrivals
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .copied()
        .collect()
}

/// The most calls in any one-second window.
fn busiest_second(arrivals: &[(Instant, bool)]) -> usize {
    arrivals
        .iter()
        .map(|(t, _)| {
            arrivals
                .iter()
                .filter(|(u, _)| *u >= *t && *u < *t + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// `--provider-rate-limit` end to end: the controller (8 workers, no read cache) against moto
/// behind a counting proxy. 40 ExternalSecrets over 40 distinct keys, created at once, are
/// read at no more than the limit (5/s, plus one second's worth at first); then the proxy
/// answers the first call of a forced refresh with Secrets Manager's `ThrottlingException`: no
/// call reaches it during the pause that follows (5 s: AWS gives no Retry-After), then calls
/// come at about half the limit, and every Secret still gets its new value. The waits and the
/// calls refused during the pause are counted in `/metrics`, labelled by store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_rate_limit_spreads_a_burst_and_backs_off_on_throttling() {
    const LIMIT: f64 = 5.0;
    const N: usize = 40;
    let moto = Moto::start().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    for i in 0..N {
        sm.create_secret()
            .name(format!("rl/k{i}"))
            .secret_string(format!("one-{i}"))
            .send()
            .await
            .unwrap();
    }
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    put_secret(
        &client,
        "aws-creds",
        json!({"id": "test", "secret": "test"}),
    )
    .await;
    // one attempt per read: every provider call is one request at the proxy
    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "default"},
        "spec": {
            "retrySettings": {"maxRetries": 1, "retryInterval": "100ms"},
            "provider": {"aws": {"service": "SecretsManager", "region": "us-east-1",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}
    }))
    .unwrap();
    let stores = Api::<SecretStore>::namespaced(client.clone(), "default");
    stores.create(&PostParams::default(), &store).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        ("AWS_SECRETSMANAGER_ENDPOINT", proxy.url.clone()),
        ("AWS_STS_ENDPOINT", moto.endpoint.clone()),
    ];
    let controller = common::start_controller_with_env(
        dir.path(),
        &cluster,
        &[
            "--concurrent=8",
            "--provider-read-cache-ttl=0s",
            &format!("--provider-rate-limit={LIMIT}"),
        ],
        &endpoints,
    )
    .await;
    wait_for(
        || async {
            stores
                .get("aws")
                .await
                .ok()
                .and_then(|s| s.status)
                .is_some_and(|s| {
                    s.conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        },
        "store Ready",
    )
    .await;
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let holding = |prefix: &'static str| {
        let secrets = secrets.clone();
        async move {
            let mut n = 0;
            for i in 0..N {
                let value = secrets
                    .get_opt(&format!("rl-{i}"))
                    .await
                    .unwrap()
                    .and_then(|s| s.data?.get("value").map(|v| v.0.clone()));
                if value.is_some_and(|v| v == format!("{prefix}-{i}").into_bytes()) {
                    n += 1;
                }
            }
            n
        }
    };
    let all_hold = |prefix: &'static str, what: &str| {
        let what = what.to_string();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let n = holding(prefix).await;
                if n == N {
                    return Instant::now();
                }
                assert!(Instant::now() < deadline, "{what}: {n} of {N} Secrets");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let es_api = Api::<ExternalSecret>::namespaced(client.clone(), "default");

    // The burst: every ExternalSecret at once, each reading its own key.
    let burst = Instant::now();
    for i in 0..N {
        let es = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": format!("rl-{i}"), "namespace": "default"},
            "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "aws"},
                     "data": [{"secretKey": "value", "remoteRef": {"key": format!("rl/k{i}")}}]}
        });
        es_api
            .patch(
                &format!("rl-{i}"),
                &PatchParams::apply("test").force(),
                &Patch::Apply(&es),
            )
            .await
            .unwrap();
    }
    let synced = all_hold("one", "the burst").await;
    let calls = arrived_between(&proxy.arrivals(), burst, synced);
    assert!(calls.len() >= N, "every key read: {} calls", calls.len());
    let span = (calls[calls.len() - 1].0 - calls[0].0).as_secs_f64();
    // a token bucket of one second's worth: n calls need (n - LIMIT) / LIMIT seconds
    let sustained = (calls.len() as f64 - LIMIT) / span;
    let busiest = busiest_second(&calls);
    eprintln!(
        "burst: {} calls over {span:.2} s, {:.2} calls/s overall, {sustained:.2}/s beyond the \
         first second's burst, busiest second {busiest} (limit {LIMIT}/s)",
        calls.len(),
        calls.len() as f64 / span
    );
    assert!(
        sustained <= LIMIT * 1.05,
        "{sustained:.2} calls/s beyond the burst"
    );
    assert!(
        busiest <= 2 * LIMIT as usize + 1,
        "busiest second {busiest}"
    );
    let store = r#"{kind="SecretStore",name="aws",namespace="default"}"#;
    let metric = |text: &str, name: &str| -> f64 {
        let series = format!("{name}{store} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    let text = http_get(&controller.metrics).await.1;
    let waits = metric(&text, "strongroom_provider_rate_limit_waits_total");
    let waited = metric(&text, "strongroom_provider_rate_limit_wait_seconds_total");
    eprintln!("burst: {waits} calls waited for their turn, {waited:.2} s in all");
    // beyond the first second's worth, every call waits its turn
    assert!(
        waits >= (N as f64 - 2.0 * LIMIT),
        "{waits} calls counted as waiting"
    );
    assert!(waited >= waits * 0.05, "{waited} s waited by {waits} calls");

    // Throttling: new values, a forced refresh, its first call answered with ThrottlingException.
    for i in 0..N {
        sm.put_secret_value()
            .secret_id(format!("rl/k{i}"))
            .secret_string(format!("two-{i}"))
            .send()
            .await
            .unwrap();
    }
    proxy.fail_next_with(
        1,
        400,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", "ThrottlingException"),
        ],
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    );
    let forced = Instant::now();
    for i in 0..N {
        es_api
            .patch(
                &format!("rl-{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": "1"}}})),
            )
            .await
            .unwrap();
    }
    let synced = all_hold("two", "after throttling").await;
    let calls = arrived_between(&proxy.arrivals(), forced, synced);
    let throttled: Vec<Instant> = calls.iter().filter(|c| c.1).map(|c| c.0).collect();
    assert_eq!(throttled.len(), 1, "the injected throttle was used");
    let last_throttle = throttled[0];
    let paused = arrived_between(
        &calls,
        last_throttle + Duration::from_millis(500),
        last_throttle + Duration::from_secs(5),
    );
    let after = arrived_between(
        &calls,
        last_throttle + Duration::from_secs(5),
        last_throttle + Duration::from_secs(9),
    );
    let total = calls.len();
    let whole = (synced - forced).as_secs_f64();
    eprintln!(
        "throttling: {total} calls in {whole:.2} s until every Secret had its new value; \
         throttled at +{:.2} s; {} calls in the 4.5 s pause; {} calls in the 4 s after it \
         ({:.2}/s; {} at the full limit with its burst)",
        (last_throttle - forced).as_secs_f64(),
        paused.len(),
        after.len(),
        after.len() as f64 / 4.0,
        LIMIT as usize * 5,
    );
    assert!(paused.is_empty(), "calls during the pause: {paused:?}");
    // half the limit (2.5/s) growing back by 1/6 per second: about 11.3 calls in 4 s
    assert!(
        after.len() <= 13,
        "{} calls in the 4 s after the pause: the rate was not lowered",
        after.len()
    );
    assert!(after.len() >= 6, "calls resumed after the pause: {after:?}");
    // the reconciles that came during the pause were refused a call, and counted
    let text = http_get(&controller.metrics).await.1;
    let refused = metric(&text, "strongroom_provider_rate_limit_refused_total");
    assert!(refused >= 1.0, "{refused} calls counted as refused");
}

/// The role sessions moto's STS handed out so far for `role_arn` (AssumeRole and
/// AssumeRoleWithWebIdentity both record one), from its model dump.
async fn assumed_roles(moto: &Moto, role_arn: &str) -> usize {
    let (code, body) = http_get(&format!("{}/moto-api/data.json", moto.endpoint)).await;
    assert_eq!(code, 200, "{body}");
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    data["sts"]["AssumedRole"].as_array().map_or(0, |roles| {
        roles.iter().filter(|r| r["role_arn"] == role_arn).count()
    })
}

/// `auth.jwt` (IRSA-style) through the controller under the chart's RBAC: the store's
/// ServiceAccount names its role in `eks.amazonaws.com/role-arn`, the controller mints a token
/// for it with TokenRequest and exchanges it at STS (`AWS_STS_ENDPOINT`) with
/// AssumeRoleWithWebIdentity, then reads Secrets Manager with the role's credentials. Several
/// ExternalSecrets, one of them refreshing every second, cost one TokenRequest and one
/// AssumeRoleWithWebIdentity in all. A ServiceAccount without the annotation leaves its store
/// not Ready, naming the annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_from_a_minted_service_account_token() {
    use common::{
        apply_es, create_service_account, create_store, es, metric_sum, secret_data,
        token_requests, wait_store_ready,
    };
    const ROLE: &str = "arn:aws:iam::123456789012:role/eso-reader";
    let moto = Moto::start().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": CANARY}).to_string())
        .send()
        .await
        .unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    create_service_account(
        &client,
        "eso-irsa",
        json!({"eks.amazonaws.com/role-arn": ROLE}),
    )
    .await;
    create_service_account(&client, "no-role", json!({})).await;
    for (store, sa) in [("aws", "eso-irsa"), ("unannotated", "no-role")] {
        create_store(
            &client,
            store,
            json!({"aws": {"service": "SecretsManager", "region": "us-east-1",
                "auth": {"jwt": {"serviceAccountRef": {"name": sa}}}}}),
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;
    const N: usize = 4;
    for i in 0..N {
        let refresh = if i == 0 { "1s" } else { "1h" };
        apply_es(
            &client,
            es(
                &format!("db-{i}"),
                json!({"refreshInterval": refresh, "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "password",
                        "remoteRef": {"key": "app/db", "property": "password"}}]}),
            ),
        )
        .await;
    }
    wait_store_ready(&client, "aws", "True").await;
    for i in 0..N {
        wait_ready(&client, &format!("db-{i}"), "True", "SecretSynced").await;
        assert_eq!(
            secret_data(&client, &format!("db-{i}")).await.unwrap()["password"],
            CANARY
        );
    }
    // a few refreshes of db-0 on the same credentials
    wait_for(
        || async {
            metric_sum(
                &metrics_url,
                "externalsecret_sync_calls_total{name=\"db-0\"",
            )
            .await
                >= 4.0
        },
        "db-0 refreshed",
    )
    .await;
    let exchanges = assumed_roles(&moto, ROLE).await;
    let minted = token_requests(&cluster);
    eprintln!(
        "{N} ExternalSecrets: {exchanges} AssumeRoleWithWebIdentity, {minted} TokenRequest(s)"
    );
    assert_eq!(exchanges, 1, "one web identity exchange for the store");
    assert_eq!(minted, 1, "one ServiceAccount token minted");

    let message = wait_store_ready(&client, "unannotated", "False").await;
    assert!(
        message.contains("default/no-role") && message.contains("eks.amazonaws.com/role-arn"),
        "{message}"
    );
    assert_no_canary(&[CANARY], &[("log", &controller.log_text())]);
}

/// moto's record of every role session its STS handed out (AssumeRole and
/// AssumeRoleWithWebIdentity): role ARN, session name, external ID, access key id.
async fn role_sessions(moto: &Moto) -> Vec<serde_json::Value> {
    let (code, body) = http_get(&format!("{}/moto-api/data.json", moto.endpoint)).await;
    assert_eq!(code, 200, "{body}");
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    data["sts"]["AssumedRole"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The access key id moto issued for the (single) session of `role_arn`.
fn key_of(sessions: &[serde_json::Value], role_arn: &str) -> String {
    let matching: Vec<_> = sessions
        .iter()
        .filter(|s| s["role_arn"] == role_arn)
        .collect();
    assert_eq!(matching.len(), 1, "one session of {role_arn}: {matching:?}");
    matching[0]["access_key_id"].as_str().unwrap().to_string()
}

/// The requests for `operation` that reached the proxy, in order.
fn calls(
    proxy: &strongroom_testkit::flaky::FlakyProxy,
    operation: &str,
) -> Vec<strongroom_testkit::flaky::RecordedRequest> {
    proxy
        .recorded()
        .into_iter()
        .filter(|r| r.operation().as_deref() == Some(operation))
        .collect()
}

/// The session tags (`Tags.member.N.Key/Value`) of an STS form, and its transitive tag keys.
fn session_tags(
    r: &strongroom_testkit::flaky::RecordedRequest,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let form = r.form();
    let field = |name: String| {
        form.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let mut tags = std::collections::BTreeMap::new();
    for n in 1.. {
        let Some(key) = field(format!("Tags.member.{n}.Key")) else {
            break;
        };
        tags.insert(
            key,
            field(format!("Tags.member.{n}.Value")).unwrap_or_default(),
        );
    }
    let transitive = (1..)
        .map_while(|n| field(format!("TransitiveTagKeys.member.{n}")))
        .collect();
    (tags, transitive)
}

/// A store's role chain through the controller: static keys, then `additionalRoles` and
/// `role` with `externalID`, `sessionTags`, `transitiveTagKeys` and `sessionTagsPolicy:
/// Simple`. STS and Secrets Manager are reached through a recording proxy in front of moto:
/// moto keeps each role session (role ARN, session name, external ID, issued access key) in
/// `/moto-api/data.json` but ignores session tags and who signed the call, so the proxy shows
/// the signing key of each request (SigV4 `Credential=`) and the form body STS received.
/// The chain is followed in order, each hop signed with the previous hop's key, the reads with
/// the last role's key; the external ID and tags go with `role` only, as upstream; and three
/// ExternalSecrets (one refreshing every second, no read cache) cost one AssumeRole per hop
/// in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_chain_is_assumed_in_order_once_per_store() {
    use common::{apply_es, create_store, es, secret_data, wait_store_ready};
    const BASE_KEY: &str = "AKIDSTATICBASE";
    const HOPS: [&str; 3] = [
        "arn:aws:iam::111111111111:role/hop-1",
        "arn:aws:iam::222222222222:role/hop-2",
        "arn:aws:iam::123456789012:role/reader",
    ];
    const EXTERNAL_ID: &str = "ext-7f3a";
    let moto = Moto::start().await;
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": CANARY}).to_string())
        .send()
        .await
        .unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    // the secret key is a canary: it signs requests and must show nowhere
    put_secret(
        &client,
        "aws-creds",
        json!({"id": BASE_KEY, "secret": format!("sk-{CANARY}")}),
    )
    .await;
    create_store(
        &client,
        "aws",
        json!({"aws": {"service": "SecretsManager", "region": "us-east-1",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}},
            "additionalRoles": [HOPS[0], HOPS[1]],
            "role": HOPS[2],
            "externalID": EXTERNAL_ID,
            "sessionTags": [{"key": "team", "value": "payments"}, {"key": "env", "value": "dev"}],
            "transitiveTagKeys": ["team"],
            "sessionTagsPolicy": "Simple"}}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints =
        ["AWS_SECRETSMANAGER_ENDPOINT", "AWS_STS_ENDPOINT"].map(|k| (k, proxy.url.clone()));
    let controller = common::start_controller_with_env(
        dir.path(),
        &cluster,
        &["--provider-read-cache-ttl=0s"],
        &endpoints,
    )
    .await;
    const N: usize = 3;
    for i in 0..N {
        let refresh = if i == 0 { "1s" } else { "1h" };
        apply_es(
            &client,
            es(
                &format!("db-{i}"),
                json!({"refreshInterval": refresh, "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "password",
                        "remoteRef": {"key": "app/db", "property": "password"}}]}),
            ),
        )
        .await;
    }
    wait_store_ready(&client, "aws", "True").await;
    for i in 0..N {
        wait_ready(&client, &format!("db-{i}"), "True", "SecretSynced").await;
        assert_eq!(
            secret_data(&client, &format!("db-{i}")).await.unwrap()["password"],
            CANARY
        );
    }
    wait_for(
        || async { calls(&proxy, "GetSecretValue").len() >= N + 3 },
        "db-0 refreshed",
    )
    .await;

    let assumed = calls(&proxy, "AssumeRole");
    let reads = calls(&proxy, "GetSecretValue");
    eprintln!(
        "{N} ExternalSecrets, {} reads: {} AssumeRole calls",
        reads.len(),
        assumed.len()
    );
    assert!(
        reads.len() >= N + 3,
        "{} reads reached Secrets Manager",
        reads.len()
    );
    assert_eq!(
        assumed
            .iter()
            .map(|r| r.field("RoleArn").unwrap())
            .collect::<Vec<_>>(),
        HOPS,
        "each hop assumed once, in order"
    );
    let sessions = role_sessions(&moto).await;
    let keys: Vec<String> = HOPS.iter().map(|h| key_of(&sessions, h)).collect();
    // each hop is signed with the credentials of the hop before it
    let signers: Vec<_> = assumed.iter().map(|r| r.access_key_id().unwrap()).collect();
    assert_eq!(signers, [BASE_KEY, keys[0].as_str(), keys[1].as_str()]);
    // every read with the last role's credentials
    assert!(
        reads
            .iter()
            .all(|r| r.access_key_id() == Some(keys[2].as_str())),
        "reads signed with {:?}",
        reads.iter().map(|r| r.access_key_id()).collect::<Vec<_>>()
    );
    // moto's own record: session names, and the external ID on `role` only
    for (hop, external) in HOPS.iter().zip([None, None, Some(EXTERNAL_ID)]) {
        let s = sessions.iter().find(|s| s["role_arn"] == *hop).unwrap();
        assert_eq!(s["session_name"], "external-secrets-provider-aws", "{s}");
        assert_eq!(s["external_id"].as_str(), external, "{s}");
    }
    // session tags as STS received them: on `role` only
    for r in &assumed[..2] {
        assert_eq!(session_tags(r), Default::default(), "{}", r.body);
        assert_eq!(r.field("ExternalId"), None);
    }
    let (tags, transitive) = session_tags(&assumed[2]);
    assert_eq!(
        tags,
        [
            ("env", "dev"),
            ("esoNamespace", "default"),
            ("esoStoreKind", "SecretStore"),
            ("esoStoreName", "aws"),
            ("team", "payments"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    );
    assert_eq!(transitive, ["team"]);
    assert_eq!(assumed[2].field("ExternalId").as_deref(), Some(EXTERNAL_ID));
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);
}

/// A store without `auth` uses the SDK's default chain of the controller process: here the
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` environment (profile files and instance
/// metadata ruled out). Every read reaching Secrets Manager (through a recording proxy in
/// front of moto) is signed with the environment's key, and no STS call is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_takes_the_controller_environment_keys() {
    use common::{apply_es, create_store, es, secret_data, wait_store_ready};
    const ENV_KEY: &str = "AKIDFROMTHEENV";
    let moto = Moto::start().await;
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": CANARY}).to_string())
        .send()
        .await
        .unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    create_store(
        &client,
        "aws",
        json!({"aws": {"service": "SecretsManager", "region": "us-east-1"}}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("no-such-file").display().to_string();
    let env = [
        ("AWS_SECRETSMANAGER_ENDPOINT", proxy.url.clone()),
        ("AWS_STS_ENDPOINT", proxy.url.clone()),
        ("AWS_ENDPOINT_URL_STS", proxy.url.clone()),
        ("AWS_ACCESS_KEY_ID", ENV_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", format!("sk-{CANARY}")),
        ("AWS_CONFIG_FILE", none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", none),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    let controller = common::start_controller_with_env(
        dir.path(),
        &cluster,
        &["--provider-read-cache-ttl=0s"],
        &env,
    )
    .await;
    apply_es(
        &client,
        es(
            "db",
            json!({"refreshInterval": "1s", "secretStoreRef": {"name": "aws"},
                "data": [{"secretKey": "password",
                    "remoteRef": {"key": "app/db", "property": "password"}}]}),
        ),
    )
    .await;
    wait_store_ready(&client, "aws", "True").await;
    wait_ready(&client, "db", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "db").await.unwrap()["password"],
        CANARY
    );
    wait_for(
        || async { calls(&proxy, "GetSecretValue").len() >= 3 },
        "db refreshed",
    )
    .await;
    let recorded = proxy.recorded();
    let reads = calls(&proxy, "GetSecretValue");
    assert!(reads.len() >= 3, "{} reads", reads.len());
    assert!(
        recorded.iter().all(|r| r.access_key_id() == Some(ENV_KEY)),
        "every request signed with the environment's key: {:?}",
        recorded
            .iter()
            .map(|r| (r.operation(), r.access_key_id().map(str::to_string)))
            .collect::<Vec<_>>()
    );
    assert!(role_sessions(&moto).await.is_empty(), "no STS exchange");
    assert_no_canary(&[CANARY], &[("log", &controller.process.log_text())]);
}

/// The default chain's web identity form, as EKS IRSA sets up a pod: the controller process
/// has `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` (a ServiceAccount token minted by
/// devcluster's TokenRequest, written to a file) and the store has no `auth`. The chain's STS
/// client follows the SDK's `AWS_ENDPOINT_URL_STS` (upstream's `AWS_STS_ENDPOINT` applies to
/// the stores' own STS calls). STS receives the file's token in one
/// AssumeRoleWithWebIdentity for the role, and reads from several ExternalSecrets, one
/// refreshing every second, are signed with the role's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_web_identity_token_file() {
    use common::{
        apply_es, create_service_account, create_store, es, secret_data, wait_store_ready,
    };
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    const ROLE: &str = "arn:aws:iam::123456789012:role/eso-pod";
    let moto = Moto::start().await;
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": CANARY}).to_string())
        .send()
        .await
        .unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    create_service_account(&client, "eso-pod", json!({})).await;
    let minted = Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .create_token_request(
            "eso-pod",
            &PostParams::default(),
            &serde_json::from_value::<TokenRequest>(json!({
                "spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let token = minted.status.unwrap().token.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    create_store(
        &client,
        "aws",
        json!({"aws": {"service": "SecretsManager", "region": "us-east-1"}}),
    )
    .await;
    let none = dir.path().join("no-such-file").display().to_string();
    let env = [
        ("AWS_SECRETSMANAGER_ENDPOINT", proxy.url.clone()),
        ("AWS_ENDPOINT_URL_STS", proxy.url.clone()),
        ("AWS_ROLE_ARN", ROLE.to_string()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_CONFIG_FILE", none.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", none),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    let controller = common::start_controller_with_env(
        dir.path(),
        &cluster,
        &["--provider-read-cache-ttl=0s"],
        &env,
    )
    .await;
    const N: usize = 3;
    for i in 0..N {
        let refresh = if i == 0 { "1s" } else { "1h" };
        apply_es(
            &client,
            es(
                &format!("db-{i}"),
                json!({"refreshInterval": refresh, "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "password",
                        "remoteRef": {"key": "app/db", "property": "password"}}]}),
            ),
        )
        .await;
    }
    wait_store_ready(&client, "aws", "True").await;
    for i in 0..N {
        wait_ready(&client, &format!("db-{i}"), "True", "SecretSynced").await;
        assert_eq!(
            secret_data(&client, &format!("db-{i}")).await.unwrap()["password"],
            CANARY
        );
    }
    wait_for(
        || async { calls(&proxy, "GetSecretValue").len() >= N + 3 },
        "db-0 refreshed",
    )
    .await;
    let exchanges = calls(&proxy, "AssumeRoleWithWebIdentity");
    let reads = calls(&proxy, "GetSecretValue");
    eprintln!(
        "{N} ExternalSecrets, {} reads: {} AssumeRoleWithWebIdentity",
        reads.len(),
        exchanges.len()
    );
    assert_eq!(exchanges.len(), 1, "one web identity exchange");
    assert_eq!(exchanges[0].field("RoleArn").as_deref(), Some(ROLE));
    assert_eq!(
        exchanges[0].field("WebIdentityToken").as_deref(),
        Some(token.as_str()),
        "STS got the token of the file"
    );
    let key = key_of(&role_sessions(&moto).await, ROLE);
    assert!(reads.len() >= N + 3, "{} reads", reads.len());
    assert!(
        reads
            .iter()
            .all(|r| r.access_key_id() == Some(key.as_str())),
        "reads signed with the role's key"
    );
    assert_no_canary(
        &[CANARY, &token],
        &[("log", &controller.process.log_text())],
    );
}

/// Assumed-role credentials that expire while the controller runs are renewed before they
/// lapse, with no failed sync. moto issues role credentials for an hour and never refuses
/// expired ones, so the test proxy in front of it (`FlakyProxy::expire_sts_credentials_after`)
/// rewrites each STS answer's `Expiration` to 25 s later and answers any request signed with
/// those credentials after that instant with `ExpiredTokenException`, as AWS does. An
/// ExternalSecret refreshing every second (no read cache) keeps syncing across two
/// lifetimes: new AssumeRole calls come before each expiry, reads move to the new keys, the
/// proxy never has to refuse one, and no read fails (call metric, Warning events, condition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_role_credentials_are_renewed_without_a_failed_sync() {
    use common::{
        apply_es, create_store, es, events_json, metric_sum, secret_data, wait_store_ready,
    };
    const ROLE: &str = "arn:aws:iam::123456789012:role/short-lived";
    const LIFETIME: Duration = Duration::from_secs(25);
    let moto = Moto::start().await;
    let proxy = strongroom_testkit::flaky::FlakyProxy::start(&moto.endpoint);
    proxy.expire_sts_credentials_after(LIFETIME);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(&moto).await);
    sm.create_secret()
        .name("app/db")
        .secret_string(json!({"password": CANARY}).to_string())
        .send()
        .await
        .unwrap();
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    put_secret(
        &client,
        "aws-creds",
        json!({"id": "AKIDSTATICBASE", "secret": format!("sk-{CANARY}")}),
    )
    .await;
    create_store(
        &client,
        "aws",
        json!({"aws": {"service": "SecretsManager", "region": "us-east-1",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}},
            "role": ROLE}}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints =
        ["AWS_SECRETSMANAGER_ENDPOINT", "AWS_STS_ENDPOINT"].map(|k| (k, proxy.url.clone()));
    let controller = common::start_controller_with_env(
        dir.path(),
        &cluster,
        &["--provider-read-cache-ttl=0s"],
        &endpoints,
    )
    .await;
    wait_store_ready(&client, "aws", "True").await;
    apply_es(
        &client,
        es(
            "db",
            json!({"refreshInterval": "1s", "secretStoreRef": {"name": "aws"},
                "data": [{"secretKey": "password",
                    "remoteRef": {"key": "app/db", "property": "password"}}]}),
        ),
    )
    .await;
    wait_ready(&client, "db", "True", "SecretSynced").await;
    assert_eq!(
        secret_data(&client, "db").await.unwrap()["password"],
        CANARY
    );
    let warnings = || async {
        let events = events_json(&client, "default").await;
        let list: Vec<serde_json::Value> = serde_json::from_str(&events).unwrap();
        let n = list.iter().filter(|e| e["type"] == "Warning").count();
        (n, events)
    };
    let (warnings_before, _) = warnings().await;
    let first = calls(&proxy, "AssumeRole")[0].arrived;
    // two lifetimes of the first credentials, reading every second
    let until = first + 2 * LIFETIME + Duration::from_secs(2);
    while Instant::now() < until {
        let ready = common::ready(&client, "db").await;
        assert!(
            ready.as_ref().is_some_and(|(s, _, _)| s == "True"),
            "db stayed synced: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let assumed = calls(&proxy, "AssumeRole");
    let reads = calls(&proxy, "GetSecretValue");
    let read_keys: std::collections::BTreeSet<_> =
        reads.iter().filter_map(|r| r.access_key_id()).collect();
    eprintln!(
        "{:?} with credentials living {LIFETIME:?}: {} AssumeRole calls, {} reads with {} keys, \
         {} refused as expired",
        until - first,
        assumed.len(),
        reads.len(),
        read_keys.len(),
        proxy.expired_refusals()
    );
    assert!(
        assumed.len() >= 3,
        "renewed before each expiry: {} AssumeRole calls",
        assumed.len()
    );
    assert!(
        read_keys.len() >= 3,
        "reads moved to the new keys: {read_keys:?}"
    );
    assert_eq!(
        proxy.expired_refusals(),
        0,
        "no request with expired credentials"
    );
    assert!(reads.len() >= 30, "{} reads", reads.len());
    assert!(
        reads.iter().all(|r| r.status == 200),
        "every read answered: {:?}",
        reads.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let failed = metric_sum(
        &controller.metrics,
        "externalsecret_provider_api_calls_count{call=\"GetSecretValue\",provider=\"AWS/SecretsManager\",status=\"error\"",
    )
    .await;
    assert_eq!(failed, 0.0, "no failed read");
    let (warnings_after, events) = warnings().await;
    assert_eq!(
        warnings_after, warnings_before,
        "no Warning event across the expiries: {events}"
    );
    assert_no_canary(
        &[CANARY],
        &[("log", &controller.process.log_text()), ("events", &events)],
    );
}

/// The ARNs of moto's certificates.
async fn acm_arns(acm: &aws_sdk_acm::Client) -> Vec<String> {
    acm.list_certificates()
        .send()
        .await
        .unwrap()
        .certificate_summary_list()
        .iter()
        .filter_map(|c| c.certificate_arn().map(str::to_string))
        .collect()
}

async fn acm_leaf(acm: &aws_sdk_acm::Client, arn: &str) -> String {
    acm.get_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn managed_by_tag() -> aws_sdk_acm::types::Tag {
    aws_sdk_acm::types::Tag::builder()
        .key("managed-by")
        .value("external-secrets")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_manager_push_and_export() {
    use aws_sdk_acm::types::{CertificateExport, CertificateOptions};
    use kube::api::DeleteParams;
    use strongroom_core::crd::external_secrets::PushSecret;
    use strongroom_testkit::pki::TestCa;
    let moto = Moto::start().await;
    let acm = aws_sdk_acm::Client::new(&sdk(&moto).await);
    let exportable = acm
        .request_certificate()
        .domain_name("app.example")
        .options(
            CertificateOptions::builder()
                .export(CertificateExport::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    let ca = TestCa::new("e2e-ca");
    let (one, two, three) = (ca.server(), ca.server(), ca.server());
    let (cluster, client) = start_cluster_with_rbac(&CRDS, &[]).await;
    aws_store(&client, "CertificateManager", "team/").await;
    put_secret(
        &client,
        "tls",
        json!({"tls.crt": format!("{}{}", one.cert_pem, ca.pem()), "tls.key": one.key_pem}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (controller, metrics_url) = start_controller(dir.path(), &cluster, &moto).await;

    // The whole TLS Secret (no secretKey) is imported, tagged.
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": "cert", "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "deletionPolicy": "Delete",
            "secretStoreRefs": [{"name": "aws", "kind": "SecretStore"}],
            "selector": {"secret": {"name": "tls"}},
            "data": [{"match": {"remoteRef": {"remoteKey": "web"}},
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                    "kind": "PushSecretMetadata", "spec": {"tags": {"team": "a"}}}}]
        }
    }))
    .unwrap();
    let pss = Api::<PushSecret>::namespaced(client.clone(), "default");
    pss.create(&PostParams::default(), &ps).await.unwrap();
    let imported = || async {
        acm_arns(&acm)
            .await
            .into_iter()
            .filter(|a| *a != exportable)
            .collect::<Vec<_>>()
    };
    wait_for(
        || async { imported().await.len() == 1 },
        "certificate imported",
    )
    .await;
    let arn = imported().await.remove(0);
    assert_eq!(acm_leaf(&acm, &arn).await, one.cert_pem.trim());
    // Polled: moto drops the tags of a re-imported certificate (AWS keeps them) until the push
    // restores them, and against moto every push re-imports (its chain carries its root CA).
    let tags = || async {
        acm.list_tags_for_certificate()
            .certificate_arn(&arn)
            .send()
            .await
            .unwrap()
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    wait_for(
        || async {
            let tags = tags().await;
            [
                ("managed-by", "external-secrets"),
                ("external-secrets-remote-key", "team/web"),
                ("team", "a"),
            ]
            .iter()
            .all(|want| tags.iter().any(|(k, v)| (k.as_str(), v.as_str()) == *want))
        },
        "certificate tagged",
    )
    .await;

    // A renewed certificate in the Secret is re-imported under the same ARN.
    let tls = Api::<Secret>::namespaced(client.clone(), "default");
    let renew = |c: &strongroom_testkit::pki::CertifiedKey| json!({"stringData": {"tls.crt": c.cert_pem, "tls.key": c.key_pem}});
    tls.patch("tls", &PatchParams::default(), &Patch::Merge(renew(&two)))
        .await
        .unwrap();
    wait_for(
        || async { acm_leaf(&acm, &arn).await == two.cert_pem.trim() },
        "certificate re-imported",
    )
    .await;
    assert_eq!(imported().await, std::slice::from_ref(&arn));

    // An ExternalSecret exports the exportable certificate: certificate, chain, private key.
    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "exported", "namespace": "default"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h",
            "data": [{"secretKey": "bundle", "remoteRef": {"key": exportable}}]},
    });
    let ess = Api::<ExternalSecret>::namespaced(client.clone(), "default");
    ess.patch(
        "exported",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&es),
    )
    .await
    .unwrap();
    wait_ready(&client, "exported", "True", "SecretSynced").await;
    let bundle = common::secret_data(&client, "exported").await.unwrap()["bundle"].clone();
    assert!(
        bundle.starts_with(&acm_leaf(&acm, &exportable).await),
        "{bundle}"
    );
    assert!(bundle.contains("-----BEGIN PRIVATE KEY-----") && !bundle.contains("ENCRYPTED"));

    // Reading the imported certificate (not exportable): a clear condition, the Secret kept.
    let mut broken = es.clone();
    broken["spec"]["data"][0]["remoteRef"]["key"] = json!(arn);
    ess.patch(
        "exported",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&broken),
    )
    .await
    .unwrap();
    wait_for(
        || async {
            common::ready(&client, "exported")
                .await
                .is_some_and(|(s, _, m)| {
                    s == "False" && m.contains("not exportable") && m.contains(&arn)
                })
        },
        "not-exportable condition",
    )
    .await;
    assert_eq!(
        common::secret_data(&client, "exported").await.unwrap()["bundle"],
        bundle
    );

    // Someone takes the certificate over (managed-by removed): the next push is refused with
    // a condition naming it, and ACM keeps the certificate as it was.
    acm.remove_tags_from_certificate()
        .certificate_arn(&arn)
        .tags(managed_by_tag())
        .send()
        .await
        .unwrap();
    tls.patch("tls", &PatchParams::default(), &Patch::Merge(renew(&three)))
        .await
        .unwrap();
    wait_for(
        || async {
            common::ready_condition(&pss, "cert")
                .await
                .is_some_and(|(s, _, m)| {
                    s == "False"
                        && m.contains("not managed by external-secrets")
                        && m.contains(&arn)
                })
        },
        "unmanaged certificate refused",
    )
    .await;
    assert_eq!(acm_leaf(&acm, &arn).await, two.cert_pem.trim());

    // Managed again: the push goes through, and deleting the PushSecret deletes the certificate.
    acm.add_tags_to_certificate()
        .certificate_arn(&arn)
        .tags(managed_by_tag())
        .send()
        .await
        .unwrap();
    tls.patch(
        "tls",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"nudge": "1"}}})),
    )
    .await
    .unwrap();
    wait_for(
        || async { acm_leaf(&acm, &arn).await == three.cert_pem.trim() },
        "pushed once managed again",
    )
    .await;
    pss.delete("cert", &DeleteParams::default()).await.unwrap();
    wait_for(
        || async { imported().await.is_empty() && pss.get_opt("cert").await.unwrap().is_none() },
        "certificate deleted with the PushSecret",
    )
    .await;

    let (_, metrics) = http_get(&metrics_url).await;
    for call in [
        "GetResources",
        "ImportCertificate",
        "DescribeCertificate",
        "ExportCertificate",
        "DeleteCertificate",
    ] {
        let series = format!(
            "externalsecret_provider_api_calls_count{{call=\"{call}\",provider=\"AWS/CertificateManager\",status=\"success\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
    // No key material in the controller's log.
    let key_line = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_string();
    let exported_key = bundle[bundle.find("-----BEGIN PRIVATE KEY-----").unwrap()..].to_string();
    assert_no_canary(
        &[
            &key_line(&one.key_pem),
            &key_line(&two.key_pem),
            &key_line(&three.key_pem),
            &key_line(&exported_key),
        ],
        &[("log", &controller.log_text())],
    );
}
