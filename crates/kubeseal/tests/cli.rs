//! End-to-end tests of the `kubeseal` binary: every test runs the real executable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_json::Value;
use strongroom_core::sealing::{
    KeyGenParams, KeyRing, PrivateSealingKey, SealTarget, SealingScope, generate_key_and_cert,
    self_signed_certificate,
};

const CANARY: &str = "canary-value-7e1f";

struct Env {
    dir: tempfile::TempDir,
    key: PrivateSealingKey,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let params = KeyGenParams {
            bits: 2048,
            ..KeyGenParams::default()
        };
        let (key, cert) = generate_key_and_cert(&params).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert.pem).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            key.to_pkcs1_pem().unwrap().as_bytes(),
        )
        .unwrap();
        Self { dir, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cert(&self) -> String {
        self.path("cert.pem").display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ring(&self) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.insert(
            PrivateSealingKey::from_pem(&std::fs::read_to_string(self.path("key.pem")).unwrap())
                .unwrap(),
        );
        ring
    }
}

fn kubeseal(args: &[&str], stdin: &str) -> Output {
    kubeseal_env(args, stdin, &[])
}

fn kubeseal_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeseal"));
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // kubeseal may exit before reading stdin (an early error): a broken pipe is fine
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubeseal failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts a clean failure: non-zero exit, one `error:` line, no panic, no canary.
fn failure(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure");
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains(CANARY), "secret value leaked: {err}");
    err
}

fn secret_yaml(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{ns}  annotations:\n    \
         kubectl.kubernetes.io/last-applied-configuration: '{{\"stringData\":{{\"password\":\"{CANARY}\"}}}}'\n    \
         team: payments\n  labels:\n    app: api\n  uid: 0000-1111\n  resourceVersion: \"42\"\n  \
         creationTimestamp: \"2024-01-01T00:00:00Z\"\n  ownerReferences:\n  - apiVersion: v1\n    kind: Pod\n    name: p\n    uid: x\ntype: Opaque\n\
         data:\n  user: YWRtaW4=\nstringData:\n  password: {CANARY}\n"
    )
}

fn unseal_item(env: &Env, sealed: &Value, item: &str) -> Vec<u8> {
    let scope = SealingScope::from_annotations(
        serde_json::from_value(sealed["metadata"]["annotations"].clone())
            .ok()
            .as_ref(),
    );
    let ns = sealed["metadata"]["namespace"].as_str().unwrap_or("");
    let name = sealed["metadata"]["name"].as_str().unwrap_or("");
    let value = sealed["spec"]["encryptedData"][item].as_str().unwrap();
    env.ring()
        .unseal_base64(
            value,
            SealTarget {
                scope,
                namespace: ns,
                name,
            },
            None,
        )
        .unwrap()
        .plaintext
        .expose()
        .to_vec()
}

#[test]
fn seals_and_recovery_unseals_in_every_scope() {
    let env = Env::new();
    let input = env.write("s.yaml", &secret_yaml("db", Some("prod")));
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let out = env.path(&format!("sealed-{scope}.json"));
        let o = kubeseal(
            &[
                "--cert",
                &env.cert(),
                "--scope",
                scope,
                "-f",
                input.to_str().unwrap(),
                "-w",
                out.to_str().unwrap(),
            ],
            "",
        );
        assert!(stdout(&o).is_empty());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(!text.contains(CANARY));
        let sealed: Value = serde_json::from_str(&text).unwrap();
        let annotation = &sealed["metadata"]["annotations"];
        match scope {
            "strict" => assert!(annotation.is_null()),
            "namespace-wide" => assert_eq!(
                annotation["sealedsecrets.bitnami.com/namespace-wide"],
                "true"
            ),
            _ => assert_eq!(annotation["sealedsecrets.bitnami.com/cluster-wide"], "true"),
        }
        assert_eq!(unseal_item(&env, &sealed, "password"), CANARY.as_bytes());
        assert_eq!(unseal_item(&env, &sealed, "user"), b"admin");

        let o = kubeseal(
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                env.path("key.pem").to_str().unwrap(),
                "-f",
                out.to_str().unwrap(),
            ],
            "",
        );
        let secret: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["metadata"]["name"], "db");
        assert_eq!(secret["metadata"]["namespace"], "prod");
        assert_eq!(secret["type"], "Opaque");
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            b64.decode(secret["data"]["password"].as_str().unwrap())
                .unwrap(),
            CANARY.as_bytes()
        );
        assert_eq!(
            secret["metadata"]["ownerReferences"][0]["kind"],
            "SealedSecret"
        );
    }
}

#[test]
fn strict_seal_does_not_open_under_another_name() {
    let env = Env::new();
    let o = kubeseal(&["--cert", &env.cert()], &secret_yaml("db", Some("prod")));
    let mut sealed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    sealed["metadata"]["name"] = "renamed".into();
    let text = serde_json::to_string(&sealed).unwrap();
    let o = kubeseal(
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            env.path("key.pem").to_str().unwrap(),
        ],
        &text,
    );
    let err = failure(&o);
    assert!(err.contains("no key could decrypt secret"), "{err}");
    assert!(err.contains("another namespace or name"), "{err}");
}

#[test]
fn json_output_has_upstream_shape() {
    let env = Env::new();
    let o = kubeseal(&["--cert", &env.cert()], &secret_yaml("db", Some("prod")));
    let text = stdout(&o);
    assert!(text.ends_with("}\n"));
    let keys: Vec<&str> = ["\"kind\"", "\"apiVersion\"", "\"metadata\"", "\"spec\""]
        .into_iter()
        .collect();
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.find("\"template\"").unwrap() < text.find("\"encryptedData\"").unwrap());
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["apiVersion"], "bitnami.com/v1alpha1");
    assert!(v["metadata"]["creationTimestamp"].is_null());
    let tm = &v["spec"]["template"]["metadata"];
    assert_eq!(tm["annotations"]["team"], "payments");
    assert!(tm["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_null());
    assert_eq!(tm["labels"]["app"], "api");
    for gone in ["uid", "resourceVersion", "ownerReferences"] {
        assert!(tm[gone].is_null(), "{gone} must be stripped");
    }
    assert!(tm["creationTimestamp"].is_null());
    assert_eq!(v["spec"]["template"]["type"], "Opaque");
    let ed = v["spec"]["encryptedData"]["password"].as_str().unwrap();
    assert!(ed.starts_with("AQ"), "RSA-2048 blobs start with AQ");
}

#[test]
fn yaml_output_and_yaml_extension() {
    let env = Env::new();
    let o = kubeseal(
        &["--cert", &env.cert(), "-o", "yaml"],
        &secret_yaml("db", Some("prod")),
    );
    let text = stdout(&o);
    assert!(
        text.starts_with("---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"),
        "{text}"
    );
    let out = env.path("out.yml");
    let o = kubeseal(
        &["--cert", &env.cert(), "-w", out.to_str().unwrap()],
        &secret_yaml("db", Some("prod")),
    );
    stdout(&o);
    assert!(std::fs::read_to_string(out).unwrap().starts_with("---\n"));
}

#[test]
fn several_secrets_in_one_input_yaml_and_json() {
    let env = Env::new();
    let yaml = format!(
        "{}---\n{}",
        secret_yaml("a", Some("ns1")),
        secret_yaml("b", Some("ns2"))
    );
    let text = stdout(&kubeseal(&["--cert", &env.cert(), "-o", "yaml"], &yaml));
    assert_eq!(text.matches("kind: SealedSecret").count(), 2);
    let json_in = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","namespace":"x"},"stringData":{"k":"v"}}
{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b","namespace":"x"},"stringData":{"k":"w"}}"#;
    let out = stdout(&kubeseal(&["--cert", &env.cert()], json_in));
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["metadata"]["name"], "b");
    assert_eq!(unseal_item(&env, &docs[1], "k"), b"w");
}

#[test]
fn namespace_resolution_follows_upstream() {
    let env = Env::new();
    // -n fills a missing namespace
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &["--cert", &env.cert(), "-n", "team-a"],
        &secret_yaml("db", None),
    )))
    .unwrap();
    assert_eq!(v["metadata"]["namespace"], "team-a");
    assert_eq!(unseal_item(&env, &v, "user"), b"admin");
    // the kubeconfig context namespace comes next
    let kubeconfig = env.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context:\n    cluster: c\n    user: u\n    namespace: from-context\n",
    );
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &[
            "--cert",
            &env.cert(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &secret_yaml("db", None),
    )))
    .unwrap();
    assert_eq!(v["metadata"]["namespace"], "from-context");
    // then `default`
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &["--cert", &env.cert()],
        &secret_yaml("db", None),
    )))
    .unwrap();
    assert_eq!(v["metadata"]["namespace"], "default");
    // cluster-wide stays without a namespace
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &["--cert", &env.cert(), "--scope", "cluster-wide"],
        &secret_yaml("db", None),
    )))
    .unwrap();
    assert!(v["metadata"]["namespace"].is_null());
    // an explicit -n that disagrees with the input is refused, naming both
    let err = failure(&kubeseal(
        &["--cert", &env.cert(), "-n", "b"],
        &secret_yaml("db", Some("a")),
    ));
    assert!(
        err.contains(
            "namespace mismatch: input secret is in namespace \"a\" but \"b\" was specified"
        ),
        "{err}"
    );
}

#[test]
fn name_flag_overrides_the_input_name() {
    let env = Env::new();
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &["--cert", &env.cert(), "--name", "other"],
        &secret_yaml("db", Some("prod")),
    )))
    .unwrap();
    assert_eq!(v["metadata"]["name"], "other");
    assert_eq!(unseal_item(&env, &v, "user"), b"admin");
}

#[test]
fn raw_mode_prints_bare_base64() {
    let env = Env::new();
    let out = stdout(&kubeseal(
        &["--raw", "--cert", &env.cert(), "--name", "db", "-n", "prod"],
        CANARY,
    ));
    assert!(!out.ends_with('\n'));
    let opened = env
        .ring()
        .unseal_base64(
            &out,
            SealTarget {
                scope: SealingScope::Strict,
                namespace: "prod",
                name: "db",
            },
            None,
        )
        .unwrap();
    assert_eq!(opened.plaintext.expose(), CANARY.as_bytes());

    let file = env.write("value.txt", "from-file");
    let out = stdout(&kubeseal(
        &[
            "--raw",
            "--cert",
            &env.cert(),
            "--scope",
            "cluster-wide",
            "--from-file",
            &format!("ignored={}", file.display()),
        ],
        "",
    ));
    let opened = env
        .ring()
        .unseal_base64(
            &out,
            SealTarget {
                scope: SealingScope::ClusterWide,
                namespace: "any",
                name: "thing",
            },
            None,
        )
        .unwrap();
    assert_eq!(opened.plaintext.expose(), b"from-file");

    let err = failure(&kubeseal(&["--raw", "--cert", &env.cert()], CANARY));
    assert!(
        err.contains("a name is required to seal in strict scope"),
        "{err}"
    );
    let err = failure(&kubeseal(&["--cert", &env.cert(), "--from-file", "x"], ""));
    assert!(err.contains("--from-file requires --raw"), "{err}");
}

#[test]
fn merge_into_adds_items_and_keeps_the_format() {
    let env = Env::new();
    let first = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\nstringData:\n  a: one\n";
    for (file, flag) in [("sealed.json", "json"), ("sealed.yaml", "yaml")] {
        let target = env.path(file);
        stdout(&kubeseal(
            &[
                "--cert",
                &env.cert(),
                "-o",
                flag,
                "-w",
                target.to_str().unwrap(),
            ],
            first,
        ));
        // the input's name and namespace are replaced by the file's
        let second =
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: whatever\nstringData:\n  b: two\n";
        stdout(&kubeseal(
            &[
                "--cert",
                &env.cert(),
                "--merge-into",
                target.to_str().unwrap(),
            ],
            second,
        ));
        let text = std::fs::read_to_string(&target).unwrap();
        assert_eq!(text.trim_start().starts_with('{'), flag == "json", "{text}");
        let docs = if flag == "json" {
            serde_json::from_str::<Value>(&text).unwrap()
        } else {
            serde_yaml_ng::from_str::<Value>(text.trim_start_matches("---\n")).unwrap()
        };
        assert_eq!(unseal_item(&env, &docs, "a"), b"one");
        assert_eq!(unseal_item(&env, &docs, "b"), b"two");
    }
}

#[test]
fn recovery_accepts_key_secret_and_list_backups() {
    let env = Env::new();
    let sealed = stdout(&kubeseal(
        &["--cert", &env.cert()],
        &secret_yaml("db", Some("prod")),
    ));
    let pem = env.key.to_pkcs1_pem().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let key_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sealed-secrets-keyabcde\n  namespace: kube-system\n  labels:\n    sealedsecrets.bitnami.com/sealed-secrets-key: active\ntype: kubernetes.io/tls\ndata:\n  tls.crt: \"\"\n  tls.key: {b64}\n"
    );
    let other = Env::new();
    let other_b64 = base64::engine::general_purpose::STANDARD
        .encode(other.key.to_pkcs1_pem().unwrap().as_bytes());
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: old\n  data:\n    tls.key: {other_b64}\n- {}\n",
        key_secret.lines().collect::<Vec<_>>().join("\n  ")
    );
    for (file, text) in [
        ("key-secret.yaml", key_secret.clone()),
        ("backup.yaml", list),
    ] {
        let p = env.write(file, &text);
        let o = kubeseal(
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                p.to_str().unwrap(),
                "-o",
                "yaml",
            ],
            &sealed,
        );
        let out = stdout(&o);
        assert!(out.contains("kind: Secret"), "{out}");
    }
    // comma-separated keys: the wrong key first, the right key second
    let o = kubeseal(
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &format!(
                "{},{}",
                other.path("key.pem").display(),
                env.path("key.pem").display()
            ),
        ],
        &sealed,
    );
    stdout(&o);
    // a key Secret without tls.key names the field correctly
    let bad = env.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: k\ndata:\n  tls.crt: eA==\n",
    );
    let err = failure(&kubeseal(
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            bad.to_str().unwrap(),
        ],
        &sealed,
    ));
    assert!(err.contains("no data.\"tls.key\""), "{err}");
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let env = Env::new();
    let cert = env.cert();
    let cases: Vec<(Vec<&str>, String, &str)> = vec![
        (vec![], "foo: [\n".into(), "not valid YAML or JSON"),
        (
            vec![],
            "{\"kind\": \"Secret\", ".into(),
            "not valid YAML or JSON",
        ),
        (vec![], "just a string\n".into(), "not valid YAML or JSON"),
        (
            vec![],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n".into(),
            "document 1 is a ConfigMap (v1), not a v1 Secret",
        ),
        (vec![], "metadata:\n  name: x\n".into(), "not a v1 Secret"),
        (vec![], "".into(), "no object found"),
        (
            vec![],
            "apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: x\nstringData:\n  a: b\n".into(),
            "a name is required to seal in strict scope",
        ),
        (
            vec![],
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: y\n".into(),
            "has no data",
        ),
        (
            vec![],
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  a: \"{CANARY}!!\"\n"
            ),
            "not a valid Secret",
        ),
        // data or stringData as a string instead of a map: serde quotes the value it could
        // not read, and the value is the secret
        (
            vec![],
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData: \"{CANARY}\"\n"
            ),
            "not a valid Secret",
        ),
        (
            vec![],
            format!(
                "{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {{\"name\": \"x\"}}, \"data\": \"{CANARY}\"}}"
            ),
            "not a valid Secret",
        ),
    ];
    for (extra, input, expected) in cases {
        let mut args = vec!["--cert", cert.as_str()];
        args.extend(extra);
        let err = failure(&kubeseal(&args, &input));
        assert!(err.contains(expected), "{input:?}: {err}");
    }
    // --allow-empty-data lets an empty Secret through
    stdout(&kubeseal(
        &["--cert", &cert, "--allow-empty-data"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: y\n",
    ));
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    let env = Env::new();
    // 218 KB of text: 2,000 stringData values alias one 200 KB scalar (400 MB expanded)
    let big = "x".repeat(200_000);
    let mut input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bomb\n  namespace: default\n  annotations:\n    big: &big {big}\nstringData:\n"
    );
    for i in 0..2000 {
        input.push_str(&format!("  k{i}: *big\n"));
    }
    let start = std::time::Instant::now();
    let err = failure(&kubeseal(&["--cert", &env.cert()], &input));
    assert!(err.contains("expands to more than"), "{err}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn bad_certificates_fail_clearly() {
    let env = Env::new();
    let input = secret_yaml("db", Some("prod"));
    let garbage = env.write("garbage.pem", "not a certificate");
    let err = failure(&kubeseal(&["--cert", garbage.to_str().unwrap()], &input));
    assert!(err.contains("no CERTIFICATE PEM block"), "{err}");
    let ec =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sealing/ec-cert.pem");
    let err = failure(&kubeseal(&["--cert", ec.to_str().unwrap()], &input));
    assert!(err.contains("not an RSA key"), "{err}");
    let err = failure(&kubeseal(&["--cert", "/nonexistent/cert.pem"], &input));
    assert!(err.contains("cannot read"), "{err}");
    // without --cert the controller's certificate is fetched through the cluster
    let err = failure(&kubeseal(&[], &input));
    assert!(err.contains("cannot read the kubeconfig"), "{err}");
}

#[test]
fn expired_certificate_is_refused_unless_overridden() {
    let env = Env::new();
    let params = KeyGenParams {
        bits: 2048,
        now: chrono::Utc::now() - chrono::Duration::days(3),
        ttl: chrono::Duration::hours(1),
        ..KeyGenParams::default()
    };
    let pem = self_signed_certificate(&env.key, &params).unwrap();
    let cert = env.write("expired.pem", &pem);
    let input = secret_yaml("db", Some("prod"));
    let err = failure(&kubeseal(&["--cert", cert.to_str().unwrap()], &input));
    assert!(
        err.contains("failed to encrypt using an expired certificate on"),
        "{err}"
    );
    assert!(err.contains("--allow-expired-cert"), "{err}");
    let o = kubeseal(
        &["--cert", cert.to_str().unwrap(), "--allow-expired-cert"],
        &input,
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(unseal_item(&env, &v, "password"), CANARY.as_bytes());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("warning: sealing with a certificate that expired")
    );
}

#[test]
fn online_flags_without_a_cluster_fail_clearly() {
    let env = Env::new();
    for flag in ["--validate", "--re-encrypt", "--fetch-cert"] {
        let err = failure(&kubeseal(&[flag], ""));
        assert!(err.contains("cannot read the kubeconfig"), "{flag}: {err}");
    }
    // --fetch-cert with --cert echoes the certificate
    let out = stdout(&kubeseal(&["--fetch-cert", "--cert", &env.cert()], ""));
    assert_eq!(out, std::fs::read_to_string(env.path("cert.pem")).unwrap());
}

#[test]
fn environment_variables_set_flags() {
    let env = Env::new();
    let out = stdout(&kubeseal_env(
        &[],
        &secret_yaml("db", Some("prod")),
        &[
            ("SEALED_SECRETS_CERT", &env.cert()),
            ("SEALED_SECRETS_FORMAT", "yaml"),
            ("SEALED_SECRETS_SCOPE", "namespace-wide"),
        ],
    ));
    let v: Value = serde_yaml_ng::from_str(out.trim_start_matches("---\n")).unwrap();
    assert_eq!(
        v["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"],
        "true"
    );
    // an explicit flag wins over the environment
    let out = stdout(&kubeseal_env(
        &["-o", "json"],
        &secret_yaml("db", Some("prod")),
        &[
            ("SEALED_SECRETS_CERT", &env.cert()),
            ("SEALED_SECRETS_FORMAT", "yaml"),
        ],
    ));
    assert!(out.starts_with('{'));
}

#[test]
fn certificate_from_http_url() {
    let env = Env::new();
    let pem = std::fs::read_to_string(env.path("cert.pem")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut accept = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.to_ascii_lowercase().starts_with("accept:") {
                accept = line.trim().to_string();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let body = pem.as_bytes();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        accept
    });
    let url = format!("http://{addr}/v1/cert.pem");
    let v: Value = serde_json::from_str(&stdout(&kubeseal(
        &["--cert", &url],
        &secret_yaml("db", Some("prod")),
    )))
    .unwrap();
    assert_eq!(unseal_item(&env, &v, "user"), b"admin");
    let accept = server.join().unwrap();
    assert!(accept.contains("application/x-pem-file"), "{accept}");
}

#[test]
fn version_flag_prints_upstream_format() {
    let out = stdout(&kubeseal(&["--version"], ""));
    assert!(out.starts_with("kubeseal version: "), "{out}");
}

#[test]
fn recovery_unseal_renders_template_data() {
    let env = Env::new();
    let o = kubeseal(&["--cert", &env.cert()], &secret_yaml("db", Some("prod")));
    let mut sealed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    sealed["spec"]["template"]["data"] = serde_json::json!({
        "dsn": "postgres://{{ .user }}:{{ .password }}@db/app",
        "user": "{{ .user | upper }}"
    });
    let key = env.path("key.pem");
    let args = [
        "--recovery-unseal",
        "--recovery-private-key",
        key.to_str().unwrap(),
    ];
    let o = kubeseal(&args, &serde_json::to_string(&sealed).unwrap());
    let secret: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let item = |k: &str| b64.decode(secret["data"][k].as_str().unwrap()).unwrap();
    assert_eq!(
        item("dsn"),
        format!("postgres://admin:{CANARY}@db/app").as_bytes()
    );
    assert_eq!(item("user"), b"ADMIN");
    assert_eq!(item("password"), CANARY.as_bytes());

    // fails in Go too, with the value in its message: the value must not reach the error
    sealed["spec"]["template"]["data"] =
        serde_json::json!({"bad": "{{ fail (printf \"bad password %s\" .password) }}"});
    let o = kubeseal(&args, &serde_json::to_string(&sealed).unwrap());
    let err = failure(&o);
    assert!(err.contains("prod/db") && err.contains("\"bad\""), "{err}");
    assert!(!err.contains(CANARY), "{err}");
}
