//! The chart on devcluster with the real `helm` and `kubectl`: a release installed with an
//! upstream-style values file, then upgraded with changed values, each time checked in the
//! cluster and run as the Deployment would run the controller binary (its arguments and
//! downward-API environment, its probes' paths and ports).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::{Value, json};
use strongroom_devcluster::{DevCluster, Options};
use strongroom_testkit::helm::{self, ToolEnv, strings};
use strongroom_testkit::{Process, free_port, http_get, http_try, wait_for};

const NS: &str = "kube-system";
const RELEASE: &str = "sealed-secrets";
const NAME: &str = "sealed-secrets-controller";

type Env = ToolEnv;

/// `helm upgrade --install` of this chart with a fixture.
trait Install {
    fn upgrade_install(&self, values: &str) -> String;
}

impl Install for Env {
    fn upgrade_install(&self, values: &str) -> String {
        self.ok(
            "helm",
            &[
                "upgrade",
                "--install",
                RELEASE,
                &format!(
                    "{}/../../deploy/charts/sealed-secrets",
                    env!("CARGO_MANIFEST_DIR")
                ),
                "-n",
                NS,
                "-f",
                &format!(
                    "{}/tests/fixtures/chart/{values}",
                    env!("CARGO_MANIFEST_DIR")
                ),
                "--wait",
                "--timeout",
                "60s",
            ],
        )
    }
}

/// The value following `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .map(|i| args[i + 1].as_str())
}

/// Starts the controller binary as the Deployment's pod spec says: its arguments (listening on
/// free loopback ports instead of the pod's) and the downward-API environment. Returns the
/// process and the URLs of its probes (readiness, liveness).
async fn run_as_deployed(env: &Env, deployment: &Value, log: &Path) -> (Process, String, String) {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert!(
        container.get("command").is_none(),
        "the image's entrypoint runs"
    );
    let mut args = strings(&container["args"]);
    let ports = [("http", free_port()), ("metrics", free_port())];
    for (i, a) in args.clone().iter().enumerate() {
        match a.as_str() {
            "--listen-addr" => args[i + 1] = format!("127.0.0.1:{}", ports[0].1),
            "--listen-metrics-addr" => args[i + 1] = format!("127.0.0.1:{}", ports[1].1),
            _ => {}
        }
    }
    // a smaller key than the default 4096 bits, only to start faster
    args.push("--key-size=2048".to_string());
    let mut vars = vec![("KUBECONFIG", env.kubeconfig.display().to_string())];
    for var in container["env"].as_array().unwrap() {
        let field = var["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap();
        let value = match field {
            "metadata.namespace" => NS.to_string(),
            "metadata.name" => format!("{NAME}-{}", ports[0].1),
            other => panic!("unexpected downward-API field {other}"),
        };
        vars.push((var["name"].as_str().unwrap(), value));
    }
    let url = |probe: &str| {
        let get = &container[probe]["httpGet"];
        let port = ports
            .iter()
            .find(|(name, _)| get["port"] == *name)
            .unwrap_or_else(|| panic!("{probe} port {}", get["port"]))
            .1;
        format!("http://127.0.0.1:{port}{}", get["path"].as_str().unwrap())
    };
    let (ready, live) = (url("readinessProbe"), url("livenessProbe"));
    let process = Process::spawn(
        env!("CARGO_BIN_EXE_sealed-secrets-controller"),
        &args,
        &vars,
        log.to_path_buf(),
    );
    (process, ready, live)
}

async fn wait_ready(process: &Process, ready: &str, live: &str) {
    wait_for(
        || async { http_try(live).await == Some(200) },
        "liveness probe",
    )
    .await;
    for _ in 0..600 {
        if http_try(ready).await == Some(200) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, body) = http_get(ready).await;
    panic!(
        "readiness probe never passed ({code} {body}):\n{}",
        process.log_text()
    );
}

// helm and kubectl run as blocking child processes: the server needs a worker of its own
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_style_release_installs_then_upgrades() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let env = Env {
        dir,
        kubeconfig,
        tools: helm::tools(),
    };
    env.ok("kubectl", &["create", "namespace", "team-a"]);

    // install, with a values file as upstream's chart users write it
    let out = env.upgrade_install("upstream-install.yaml");
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(env.exists(&["crd", "sealedsecrets.bitnami.com"]));
    let deployment = env.get(&["deployment", NAME, "-n", NS]);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    let args = strings(&pod["spec"]["containers"][0]["args"]);
    assert_eq!(flag(&args, "--key-renew-period"), Some("720h30m"));
    assert_eq!(flag(&args, "--rate-limit"), Some("4"));
    assert_eq!(flag(&args, "--privatekey-labels"), Some("team=platform"));
    assert!(args.contains(&"--update-status".to_string()));
    assert_eq!(
        env.get(&["serviceaccount", NAME, "-n", NS])["metadata"]["annotations"]["example.com/note"],
        "first"
    );
    for (kind, name) in [
        ("service", NAME),
        ("service", "sealed-secrets-controller-metrics"),
        ("role", "sealed-secrets-controller-key-admin"),
        ("role", "sealed-secrets-controller-service-proxier"),
    ] {
        assert!(env.exists(&[kind, name, "-n", NS]), "{kind} {name}");
    }
    assert_eq!(
        env.get(&["clusterrolebinding", NAME])["roleRef"]["name"],
        "secrets-unsealer"
    );
    assert!(env.exists(&["clusterrole", "secrets-unsealer"]));
    let status = env.ok(
        "kubectl",
        &[
            "-n",
            NS,
            "rollout",
            "status",
            &format!("deployment/{NAME}"),
            "--timeout=30s",
        ],
    );
    assert!(status.contains("successfully rolled out"), "{status}");

    // the controller, run as the pod spec says, answers its probes, holds the Lease the Role
    // names and labels its key as privateKeyLabels say
    let (process, ready, live) =
        run_as_deployed(&env, &deployment, &env.dir.path().join("first.log")).await;
    wait_ready(&process, &ready, &live).await;
    let active_keys = || {
        env.get(&[
            "secrets",
            "-n",
            NS,
            "-l",
            "sealedsecrets.bitnami.com/sealed-secrets-key=active",
        ])
    };
    wait_for(
        || async { !active_keys()["items"].as_array().unwrap().is_empty() },
        "a key Secret",
    )
    .await;
    let keys = active_keys();
    let key = &keys["items"][0];
    assert_eq!(key["metadata"]["labels"]["team"], "platform", "{keys}");
    assert!(
        key["metadata"]["generateName"]
            .as_str()
            .unwrap()
            .starts_with("sealed-secrets-key"),
        "{key}"
    );
    wait_for(
        || async { env.exists(&["lease", "sealed-secrets-controller", "-n", NS]) },
        "the leader Lease",
    )
    .await;
    drop(process);

    // upgrade: namespaced Roles instead of the ClusterRole, two replicas, new flags
    env.upgrade_install("upstream-upgrade.yaml");
    let deployment = env.get(&["deployment", NAME, "-n", NS]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/owner"],
        "security"
    );
    let args = strings(&pod["spec"]["containers"][0]["args"]);
    assert_eq!(flag(&args, "--key-renew-period"), Some("0"));
    assert_eq!(flag(&args, "--additional-namespaces"), Some("team-a"));
    assert!(args.contains(&"--skip-recreate".to_string()));
    assert_eq!(flag(&args, "--rate-limit"), None);
    assert_eq!(
        env.get(&["serviceaccount", NAME, "-n", NS])["metadata"]["annotations"]["example.com/note"],
        "second"
    );
    // the ClusterRole and its binding are gone; each watched namespace has its Role
    assert!(!env.exists(&["clusterrole", "secrets-unsealer"]));
    assert!(!env.exists(&["clusterrolebinding", NAME]));
    for ns in [NS, "team-a"] {
        let role = env.get(&["role", "secrets-unsealer", "-n", ns]);
        let secrets_rules: Vec<&Value> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resources"] == json!(["secrets"]))
            .collect();
        // skipRecreate: no list/watch on Secrets
        assert_eq!(secrets_rules.len(), 1, "{role}");
        assert_eq!(
            secrets_rules[0]["verbs"],
            json!(["get", "create", "patch", "update"])
        );
        let binding = env.get(&["rolebinding", NAME, "-n", ns]);
        assert_eq!(binding["roleRef"]["name"], "secrets-unsealer");
        assert_eq!(binding["subjects"][0]["name"], NAME);
    }
    let status = env.ok(
        "kubectl",
        &[
            "-n",
            NS,
            "rollout",
            "status",
            &format!("deployment/{NAME}"),
            "--timeout=30s",
        ],
    );
    assert!(status.contains("successfully rolled out"), "{status}");
    let history = env.ok("helm", &["history", RELEASE, "-n", NS]);
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains("sealed-secrets-"))
            .count(),
        2,
        "{history}"
    );

    // the upgraded arguments run too, and find the key the first run made
    let (process, ready, live) =
        run_as_deployed(&env, &deployment, &env.dir.path().join("second.log")).await;
    wait_ready(&process, &ready, &live).await;
    let keys = active_keys();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "{keys}");
}
