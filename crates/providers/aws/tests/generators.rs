//! The `ECRAuthorizationToken`, `STSSessionToken` and `STSAssumeRoleToken` generators against
//! moto: upstream's output keys and formats, the token decoded, static keys with a session
//! token, web identity, a role assumed first (moto answers in the role's account, so the output
//! shows which credentials signed the call), and failures as clear errors that never carry a
//! key. `CodeArtifactAuthorizationToken` against a stand-in (moto does not serve CodeArtifact).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};
use strongroom_provider_api::{ProviderError, SecretMap};
use strongroom_provider_aws::AwsProvider;
use strongroom_testkit::backends::{Moto, bin_dir};
use strongroom_testkit::{CANARY, Process, assert_no_canary, free_port, http_get, http_try};

/// A spec as the CRD keeps it.
fn spec(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

/// Static keys from Secret `creds/aws` (`id`, `secret`, `token`).
fn static_auth() -> Value {
    json!({"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws", "key": "id"},
        "secretAccessKeySecretRef": {"name": "aws", "key": "secret"},
        "sessionTokenSecretRef": {"name": "aws", "key": "token"}}})
}

fn keys_resolver(id: &str, secret: &str) -> Resolver {
    let mut r = Resolver::with_keys(id, secret);
    r.put("aws", "token", "a-session-token");
    r
}

fn text_map(m: &SecretMap) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn ecr(moto: &Moto, s: Value, resolver: Resolver) -> Result<SecretMap, ProviderError> {
    let (_, env) = provider_env(resolver);
    AwsProvider::with_endpoint(&moto.endpoint)
        .ecr_authorization_token(&spec(s), "creds", env)
        .await
}

async fn sts(moto: &Moto, s: Value, resolver: Resolver) -> Result<SecretMap, ProviderError> {
    let (_, env) = provider_env(resolver);
    AwsProvider::with_endpoint(&moto.endpoint)
        .sts_session_token(&spec(s), "creds", env)
        .await
}

#[tokio::test]
async fn ecr_authorization_token() {
    let moto = Moto::start().await;

    // Static keys with a session token: one GetAuthorizationToken, upstream's four keys.
    let before = moto.requests().len();
    let out = ecr(
        &moto,
        json!({"region": REGION, "auth": static_auth()}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    assert_eq!(moto.requests().len() - before, 1);
    let out = text_map(&out);
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        ["expires_at", "password", "proxy_endpoint", "username"]
    );
    // moto's token is base64("AWS:<account>-auth-token"), expiring 2015-01-01T00:00:00Z.
    assert_eq!(out["username"], "AWS");
    assert_eq!(out["password"], format!("{ACCOUNT}-auth-token"));
    assert_eq!(
        out["proxy_endpoint"],
        format!("https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com")
    );
    assert_eq!(out["expires_at"], "1420070400");

    // A role in another account assumed first: AssumeRole, then the token of that account.
    let before = moto.requests().len();
    let out = ecr(
        &moto,
        json!({"region": "eu-west-1", "auth": static_auth(),
            "role": "arn:aws:iam::111111111111:role/ecr-reader", "scope": "private"}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    assert_eq!(
        moto.requests().len() - before,
        2,
        "AssumeRole, then the token"
    );
    assert_eq!(text(&out["password"]), "111111111111-auth-token");
    assert_eq!(
        text(&out["proxy_endpoint"]),
        "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    );

    // Web identity: the ServiceAccount's role, in its account.
    let resolver = Resolver {
        annotations: BTreeMap::from([(
            "eks.amazonaws.com/role-arn".into(),
            "arn:aws:iam::222222222222:role/irsa".into(),
        )]),
        ..Resolver::default()
    };
    let out = ecr(
        &moto,
        json!({"region": REGION, "auth": {"jwt": {"serviceAccountRef": {"name": "reader"}}}}),
        resolver,
    )
    .await
    .unwrap();
    assert_eq!(text(&out["password"]), "222222222222-auth-token");

    // A missing region and a malformed spec are refused before any call.
    let before = moto.requests().len();
    for (bad, says) in [
        (json!({"auth": static_auth()}), "region is required"),
        (
            json!({"region": REGION, "auth": {"secretRef": "nope"}}),
            "ECRAuthorizationToken spec is invalid",
        ),
    ] {
        let err = ecr(&moto, bad, keys_resolver("test", "test"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::InvalidConfig(m) if m.contains(says)),
            "{err}"
        );
    }
    assert_eq!(moto.requests().len(), before);
}

/// `scope: public` asks ECR Public. moto does not serve it and nothing installable does, so
/// this runs against a stand-in written from the API reference
/// (`strongroom_testkit::standins::ecr_public`): upstream's three keys (no registry URL), the
/// token decoded, and the request signed (SigV4) for `ecr-public` with the generator's key.
#[tokio::test]
async fn ecr_public_token_from_a_stand_in() {
    use strongroom_testkit::standins::ecr_public::{EXPIRES_AT, EcrPublicStandIn, TOKEN};
    let standin = EcrPublicStandIn::start();
    let (_, env) = provider_env(keys_resolver("AKIDPUBLIC", CANARY));
    let out = AwsProvider::with_endpoint(&standin.url)
        .ecr_authorization_token(
            &spec(json!({"region": "us-east-1", "scope": "public", "auth": static_auth()})),
            "creds",
            env,
        )
        .await
        .unwrap();
    let out = text_map(&out);
    assert_eq!(
        out,
        BTreeMap::from([
            ("expires_at".to_string(), EXPIRES_AT.to_string()),
            ("password".to_string(), TOKEN.to_string()),
            ("username".to_string(), "AWS".to_string()),
        ])
    );
    let signed = standin.authorizations();
    assert_eq!(signed.len(), 1, "one GetAuthorizationToken");
    let a = signed[0].as_deref().unwrap_or_default();
    assert!(
        a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPUBLIC/")
            && a.contains("/us-east-1/ecr-public/aws4_request")
            && a.contains("Signature="),
        "{a}"
    );
    assert!(!a.contains(CANARY), "the secret key signs, it is not sent");
}

#[tokio::test]
async fn sts_session_token() {
    let moto = Moto::start().await;

    let before = moto.requests().len();
    let out = sts(
        &moto,
        json!({"region": REGION, "auth": static_auth(),
            "requestParameters": {"sessionDuration": 900,
                "serialNumber": format!("arn:aws:iam::{ACCOUNT}:mfa/user"), "tokenCode": "123456"}}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    assert_eq!(moto.requests().len() - before, 1);
    let out = text_map(&out);
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        [
            "access_key_id",
            "expiration",
            "secret_access_key",
            "session_token"
        ]
    );
    assert!(out["access_key_id"].starts_with("AKIA"), "{out:?}");
    assert!(!out["secret_access_key"].is_empty() && !out["session_token"].is_empty());
    // The duration reached STS: the expiry is 900 s from now, in Unix seconds.
    let expiration: u64 = out["expiration"].parse().unwrap();
    let left = expiration.saturating_sub(now());
    assert!((800..=960).contains(&left), "expires in {left}s");

    // Without requestParameters: STS's default of 12 hours.
    let out = sts(
        &moto,
        json!({"region": REGION, "auth": static_auth()}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    let left = text(&out["expiration"])
        .parse::<u64>()
        .unwrap()
        .saturating_sub(now());
    assert!((43_000..=43_260).contains(&left), "expires in {left}s");

    // A role first: AssumeRole, then GetSessionToken.
    let before = moto.requests().len();
    sts(
        &moto,
        json!({"region": REGION, "auth": static_auth(),
            "role": format!("arn:aws:iam::{ACCOUNT}:role/sts")}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    assert_eq!(moto.requests().len() - before, 2);

    // Web identity is refused, as upstream.
    let err = sts(
        &moto,
        json!({"region": REGION, "auth": {"jwt": {"serviceAccountRef": {"name": "reader"}}}}),
        Resolver::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("auth.jwt")),
        "{err}"
    );
}

async fn assume(moto: &Moto, s: Value, resolver: Resolver) -> Result<SecretMap, ProviderError> {
    let (_, env) = provider_env(resolver);
    AwsProvider::with_endpoint(&moto.endpoint)
        .sts_assume_role_token(&spec(s), "creds", env)
        .await
}

/// moto's record of every role session its STS handed out (role ARN, session name, external
/// ID, access key id).
async fn role_sessions(moto: &Moto) -> Vec<Value> {
    let (code, body) = http_get(&format!("{}/moto-api/data.json", moto.endpoint)).await;
    assert_eq!(code, 200, "{body}");
    let data: Value = serde_json::from_str(&body).unwrap();
    data["sts"]["AssumedRole"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Who AWS (moto) takes generated credentials for: `GetCallerIdentity` signed with them.
async fn caller_arn(moto: &Moto, out: &BTreeMap<String, String>) -> String {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            &out["access_key_id"],
            &out["secret_access_key"],
            Some(out["session_token"].clone()),
            None,
            "generated",
        ))
        .endpoint_url(&moto.endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .load()
        .await;
    aws_sdk_sts::Client::new(&conf)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn sts_assume_role_token() {
    let moto = Moto::start().await;
    let role = "arn:aws:iam::111111111111:role/deployer";

    // Static keys: one AssumeRole (never GetSessionToken), upstream's four keys, the
    // parameters at STS, and credentials AWS takes for the assumed role.
    let before = moto.requests().len();
    let out = assume(
        &moto,
        json!({"region": REGION, "role": role, "auth": static_auth(),
            "requestParameters": {"sessionDuration": 3600, "externalID": "ext-42"}}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    let sent = moto.requests()[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let out = text_map(&out);
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        [
            "access_key_id",
            "expiration",
            "secret_access_key",
            "session_token"
        ]
    );
    let left = out["expiration"]
        .parse::<u64>()
        .unwrap()
        .saturating_sub(now());
    assert!((3_500..=3_660).contains(&left), "expires in {left}s");
    let sessions = role_sessions(&moto).await;
    let [session] = sessions.as_slice() else {
        panic!("one role session: {sessions:?}");
    };
    assert_eq!(session["role_arn"], role);
    assert_eq!(session["external_id"], "ext-42");
    assert_eq!(
        session["access_key_id"].as_str(),
        Some(out["access_key_id"].as_str())
    );
    let name = session["session_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(name.starts_with("aws-go-sdk-"), "{name}");
    assert_eq!(
        caller_arn(&moto, &out).await,
        format!("arn:aws:sts::111111111111:assumed-role/deployer/{name}")
    );

    // Without requestParameters: upstream's SDK default of 15 minutes, no external ID; a
    // fresh session at every run.
    let again = assume(
        &moto,
        json!({"region": REGION, "role": role, "auth": static_auth()}),
        keys_resolver("test", "test"),
    )
    .await
    .unwrap();
    let left = text(&again["expiration"])
        .parse::<u64>()
        .unwrap()
        .saturating_sub(now());
    assert!((800..=960).contains(&left), "expires in {left}s");
    assert_ne!(text(&again["access_key_id"]), out["access_key_id"]);
    let sessions = role_sessions(&moto).await;
    assert_eq!(sessions.len(), 2);
    assert!(sessions[1]["external_id"].is_null(), "{:?}", sessions[1]);

    // Web identity (IRSA) as the base: AssumeRoleWithWebIdentity, then AssumeRole with the
    // web identity's credentials, which STSSessionToken cannot use.
    let resolver = Resolver {
        annotations: BTreeMap::from([(
            "eks.amazonaws.com/role-arn".into(),
            "arn:aws:iam::222222222222:role/irsa".into(),
        )]),
        ..Resolver::default()
    };
    let before = moto.requests().len();
    let out = assume(
        &moto,
        json!({"region": REGION, "role": role,
            "auth": {"jwt": {"serviceAccountRef": {"name": "reader"}}}}),
        resolver,
    )
    .await
    .unwrap();
    assert_eq!(
        moto.requests().len() - before,
        2,
        "web identity, then AssumeRole"
    );
    assert!(
        caller_arn(&moto, &text_map(&out))
            .await
            .contains(":assumed-role/deployer/")
    );
    let sessions = role_sessions(&moto).await;
    assert_eq!(
        sessions
            .iter()
            .map(|s| s["role_arn"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        [role, role, "arn:aws:iam::222222222222:role/irsa", role]
    );

    // Bad specs are refused before any call, naming the field.
    let before = moto.requests().len();
    for (bad, says) in [
        (
            json!({"region": REGION, "auth": static_auth()}),
            "role must be specified",
        ),
        (
            json!({"region": REGION, "role": "", "auth": static_auth()}),
            "role must be specified",
        ),
        (
            json!({"role": role, "auth": static_auth()}),
            "region is required",
        ),
        (
            json!({"region": REGION, "role": role, "auth": static_auth(),
                "requestParameters": {"sessionDuration": 60}}),
            "sessionDuration 60 is below",
        ),
        (
            json!({"region": REGION, "role": role, "requestParameters": {"externalID": 7}}),
            "STSAssumeRoleToken spec is invalid",
        ),
    ] {
        let err = assume(&moto, bad, keys_resolver("test", "test"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::InvalidConfig(m) if m.contains(says)),
            "{err}"
        );
    }
    assert_eq!(moto.requests().len(), before);
}

/// `CodeArtifactAuthorizationToken`: moto (5.2) does not serve CodeArtifact and nothing
/// installable does, so this runs against a stand-in written from the API reference
/// (`strongroom_testkit::standins::codeartifact`): upstream's two keys, the domain, owner and
/// duration as query parameters, the request signed (SigV4) for `codeartifact` with the
/// generator's key, and AWS's refusals as clear errors. (A role assumed first, at moto's STS,
/// is in the controller's end-to-end test, where each service has its own endpoint.)
#[tokio::test]
async fn codeartifact_token_from_a_stand_in() {
    use strongroom_testkit::standins::codeartifact::{CodeArtifactStandIn, DOMAIN, EXPIRATION};
    let token = format!("ca-token-{CANARY}");
    let standin = CodeArtifactStandIn::start_with_token(&token);
    let generate = |s: Value, resolver: Resolver| {
        let provider = AwsProvider::with_endpoint(&standin.url);
        async move {
            let (_, env) = provider_env(resolver);
            provider
                .codeartifact_authorization_token(&spec(s), "creds", env)
                .await
        }
    };
    let out = generate(
        json!({"region": "eu-west-1", "domain": DOMAIN, "domainOwner": ACCOUNT,
            "durationSeconds": 900, "auth": static_auth()}),
        keys_resolver("AKIDCODEARTIFACT", CANARY),
    )
    .await
    .unwrap();
    assert_eq!(
        text_map(&out),
        BTreeMap::from([
            ("authorizationToken".to_string(), token.clone()),
            ("expiration".to_string(), EXPIRATION.to_string()),
        ])
    );
    let seen = standin.requests();
    let [one] = seen.as_slice() else {
        panic!("one GetAuthorizationToken: {seen:?}");
    };
    assert_eq!(one.method, "POST");
    assert_eq!(
        (
            one.param("domain"),
            one.param("domain-owner"),
            one.param("duration")
        ),
        (Some(DOMAIN), Some(ACCOUNT), Some("900"))
    );
    let a = one.authorization.as_deref().unwrap_or_default();
    assert!(
        a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDCODEARTIFACT/")
            && a.contains("/eu-west-1/codeartifact/aws4_request"),
        "{a}"
    );
    assert!(!a.contains(CANARY), "the secret key signs, it is not sent");

    // Without durationSeconds none is sent (AWS's default applies).
    generate(
        json!({"region": "eu-west-1", "domain": DOMAIN, "domainOwner": ACCOUNT,
            "auth": static_auth()}),
        keys_resolver("AKIDCODEARTIFACT", CANARY),
    )
    .await
    .unwrap();
    assert_eq!(standin.requests()[1].param("duration"), None);

    // Bad specs are refused before any call; AWS's refusals name the call and the domain.
    let mut errors = Vec::new();
    for (bad, says) in [
        (
            json!({"region": "r", "domainOwner": ACCOUNT, "auth": static_auth()}),
            "domain is required",
        ),
        (
            json!({"region": "r", "domain": DOMAIN, "auth": static_auth()}),
            "domainOwner is required",
        ),
        (
            json!({"region": "r", "domain": DOMAIN, "domainOwner": ACCOUNT,
                "durationSeconds": 100, "auth": static_auth()}),
            "durationSeconds must be 0 or between 900 and 43200",
        ),
    ] {
        let e = generate(bad, keys_resolver("k", CANARY)).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidConfig(m) if m.contains(says)),
            "{e}"
        );
        errors.push(format!("{e} {e:?}"));
    }
    assert_eq!(standin.requests().len(), 2);
    let e = generate(
        json!({"region": "r", "domain": "other", "domainOwner": ACCOUNT, "auth": static_auth()}),
        keys_resolver("k", CANARY),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ProviderError::NotFound { detail, .. }
            if detail.contains("GetAuthorizationToken \"other\"") && detail.contains("Domain not found")),
        "{e:?}"
    );
    errors.push(format!("{e} {e:?}"));
    let texts: Vec<(&str, &str)> = errors.iter().map(|e| ("an error", e.as_str())).collect();
    assert_no_canary(&[], &texts);
}

/// moto checking every request's signature against its IAM users
/// (`INITIAL_NO_AUTH_ACTION_COUNT=0`): unknown keys are refused as AWS refuses them.
async fn strict_moto() -> (Process, String) {
    let port = free_port();
    let process = Process::spawn(
        bin_dir().join("moto_server").to_str().unwrap(),
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
        &[("INITIAL_NO_AUTH_ACTION_COUNT", "0".to_string())],
        std::env::temp_dir().join(format!("moto-strict-{port}.log")),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..600 {
        if http_try(&format!("{endpoint}/moto-api/")).await == Some(200) {
            return (process, endpoint);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("strict moto did not start: {}", process.log_text());
}

#[tokio::test]
async fn failures_are_clear_and_carry_no_key() {
    let (_moto, endpoint) = strict_moto().await;
    let provider = AwsProvider::with_endpoint(&endpoint);
    let mut errors: Vec<String> = Vec::new();
    let s = spec(json!({"region": REGION, "auth": static_auth()}));
    let with_role = spec(json!({"region": REGION, "auth": static_auth(),
        "role": format!("arn:aws:iam::{ACCOUNT}:role/r")}));

    // Keys AWS does not know: a refusal naming the call, not the key. (AWS answers
    // UnrecognizedClientException or InvalidClientTokenId, an authentication failure; moto
    // answers HTTP 403 with an error document neither protocol reads, so permission denied.)
    for spec in [&s, &with_role] {
        let (_, env) = provider_env(keys_resolver(CANARY, CANARY));
        let e = provider
            .ecr_authorization_token(spec, "creds", env)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ProviderError::Authentication(_) | ProviderError::PermissionDenied(_)
            ),
            "{e:?}"
        );
        errors.push(format!("{e} {e:?}"));
        let (_, env) = provider_env(keys_resolver(CANARY, CANARY));
        let e = provider
            .sts_session_token(spec, "creds", env)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ProviderError::Authentication(_) | ProviderError::PermissionDenied(_)
            ),
            "{e:?}"
        );
        errors.push(format!("{e} {e:?}"));
    }
    assert!(errors[0].contains("GetAuthorizationToken"), "{}", errors[0]);
    assert!(errors[1].contains("GetSessionToken"), "{}", errors[1]);
    assert!(errors[2].contains("AssumeRole"), "{}", errors[2]);

    // STSAssumeRoleToken with keys AWS does not know: refused at AssumeRole, naming the role.
    let (_, env) = provider_env(keys_resolver(CANARY, CANARY));
    let e = provider
        .sts_assume_role_token(&with_role, "creds", env)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ProviderError::Authentication(m) | ProviderError::PermissionDenied(m)
                if m.contains("AssumeRole") && m.contains(":role/r")
        ),
        "{e:?}"
    );
    errors.push(format!("{e} {e:?}"));

    // The credentials Secret lacks a key: the error names the Secret and key.
    let (_, env) = provider_env(Resolver::default());
    let e = provider
        .ecr_authorization_token(&s, "creds", env)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::Authentication(m) if m.contains("creds/aws") && m.contains("\"id\"")),
        "{e}"
    );
    errors.push(format!("{e} {e:?}"));

    // Nothing listens: unavailable, within the call's time limit.
    let closed = AwsProvider::with_endpoint(format!("http://127.0.0.1:{}", free_port()));
    let started = std::time::Instant::now();
    let (_, env) = provider_env(keys_resolver(CANARY, CANARY));
    let e = closed
        .sts_session_token(&s, "creds", env)
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    errors.push(format!("{e} {e:?}"));

    let texts: Vec<(&str, &str)> = errors.iter().map(|e| ("an error", e.as_str())).collect();
    assert_no_canary(&[], &texts);
}
