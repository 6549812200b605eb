//! The Helm chart: `helm lint`, `helm template`, and the rendered manifests applied to
//! devcluster with the real kubectl (tools from `cargo xtask tools`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use strongroom_devcluster::{DevCluster, Options};

fn tools() -> PathBuf {
    let dir = std::env::var_os("STRONGROOM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools"));
    assert!(
        dir.join("helm").exists(),
        "run `cargo xtask tools` first ({})",
        dir.display()
    );
    dir
}

fn chart() -> String {
    format!(
        "{}/../../deploy/charts/sealed-secrets",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// kubectl runs as a blocking child process: the server needs a worker of its own
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_lints_renders_and_applies() {
    let tools = tools();
    run(Command::new(tools.join("helm")).args(["lint", "--strict", &chart()]));
    let rendered = run(Command::new(tools.join("helm")).args([
        "template",
        "ss",
        &chart(),
        "-n",
        "kube-system",
        "--include-crds",
        "--set",
        "replicas=2",
    ]));
    for expected in [
        "kind: CustomResourceDefinition",
        "name: sealed-secrets-controller\n",
        "- name: http",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "name: system:authenticated",
        "resources: [leases]",
    ] {
        assert!(rendered.contains(expected), "missing {expected:?}");
    }

    // the optional ServiceMonitor renders only when asked for
    assert!(!rendered.contains("kind: ServiceMonitor"));
    let with_monitor = run(Command::new(tools.join("helm")).args([
        "template",
        "ss",
        &chart(),
        "-n",
        "kube-system",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ]));
    assert!(
        with_monitor.contains("kind: ServiceMonitor") && with_monitor.contains("port: metrics")
    );

    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let manifest = dir.path().join("rendered.yaml");
    std::fs::write(&manifest, &rendered).unwrap();
    let out = run(Command::new(tools.join("kubectl"))
        .env("KUBECONFIG", &kubeconfig)
        .args(["apply", "-f", manifest.to_str().unwrap()]));
    for created in [
        "customresourcedefinition.apiextensions.k8s.io/sealedsecrets.bitnami.com created",
        "deployment.apps/sealed-secrets-controller created",
        "service/sealed-secrets-controller created",
        "clusterrole.rbac.authorization.k8s.io/sealed-secrets-controller-unsealer created",
    ] {
        assert!(out.contains(created), "{out}");
    }
    let status = run(Command::new(tools.join("kubectl"))
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deployment/sealed-secrets-controller",
            "--timeout=20s",
        ]));
    assert!(status.contains("successfully rolled out"), "{status}");
}

#[test]
fn additional_namespaces_switch_rbac_to_namespaced_roles() {
    let rendered = run(Command::new(tools().join("helm")).args([
        "template",
        "ss",
        &chart(),
        "-n",
        "infra",
        "--set",
        "additionalNamespaces={team-a,infra}",
    ]));
    assert!(!rendered.contains("kind: ClusterRole"), "{rendered}");
    assert!(rendered.contains("- --all-namespaces=false"), "{rendered}");
    assert!(
        rendered.contains("- --additional-namespaces=team-a,infra"),
        "{rendered}"
    );
    // one unsealer Role in the release namespace (listed once) and one in team-a
    let unsealers = rendered
        .split("\n---")
        .filter(|doc| doc.lines().any(|l| l == "kind: Role") && doc.contains("-unsealer"))
        .map(|doc| {
            doc.lines()
                .find_map(|l| l.strip_prefix("  namespace: "))
                .unwrap()
                .to_string()
        })
        .collect::<Vec<_>>();
    assert_eq!(unsealers, ["infra", "team-a"]);
}
