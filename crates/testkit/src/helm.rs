//! The real `helm` and `kubectl` (fetched by `cargo xtask tools` into `target/tools`, or found
//! in `$STRONGROOM_TOOLS`) for chart tests: `helm template` parsed into objects to assert on,
//! and both tools run against a devcluster with a kubeconfig.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// The folder holding `helm` and `kubectl`; panics with what to run when they are missing.
pub fn tools() -> PathBuf {
    let dir = std::env::var_os("STRONGROOM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/tools"));
    assert!(
        dir.join("helm").exists() && dir.join("kubectl").exists(),
        "run `cargo xtask tools` first ({})",
        dir.display()
    );
    dir
}

/// `helm template <release> <chart> -n <namespace> <args...>` with a throwaway helm home:
/// the rendered text, or helm's error text.
pub fn template(
    chart: &str,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> Result<String, String> {
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = Command::new(tools().join("helm"))
        .args(["template", release, chart, "-n", namespace])
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The documents of a rendering, parsed.
pub struct Objects(pub Vec<Value>);

impl Objects {
    /// Parses `---`-separated YAML documents (empty ones dropped).
    pub fn parse(text: &str) -> Self {
        let mut docs = Vec::new();
        let mut current = String::new();
        for line in text.lines().chain(["---"]) {
            if line == "---" {
                let doc: Value =
                    serde_yaml_ng::from_str(&current).unwrap_or_else(|e| panic!("{e}:\n{current}"));
                if !doc.is_null() {
                    docs.push(doc);
                }
                current.clear();
            } else {
                current.push_str(line);
                current.push('\n');
            }
        }
        Self(docs)
    }

    /// Every object of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The object `kind`/`name`, if rendered.
    pub fn try_get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// The object `kind`/`name`; panics listing what was rendered.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.try_get(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name}; rendered: {:?}", self.ids()))
    }

    /// (kind, name, namespace) of every object.
    pub fn ids(&self) -> BTreeSet<(String, String, String)> {
        self.0
            .iter()
            .map(|o| {
                (
                    str_of(&o["kind"]),
                    str_of(&o["metadata"]["name"]),
                    str_of(&o["metadata"]["namespace"]),
                )
            })
            .collect()
    }

    /// The one Deployment (panics unless there is exactly one).
    pub fn deployment(&self) -> &Value {
        let deployments = self.of_kind("Deployment");
        assert_eq!(deployments.len(), 1, "{:?}", self.ids());
        deployments[0]
    }

    /// The first container of the one Deployment.
    pub fn container(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]["containers"][0]
    }

    /// That container's arguments.
    pub fn args(&self) -> Vec<String> {
        strings(&self.container()["args"])
    }
}

/// A JSON string, or empty.
pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A JSON array of strings, or empty.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(str_of).collect())
        .unwrap_or_default()
}

/// `helm` and `kubectl` pointed at a cluster, with a throwaway home.
pub struct ToolEnv {
    /// The home folder of both tools.
    pub dir: tempfile::TempDir,
    /// The kubeconfig they use.
    pub kubeconfig: PathBuf,
    /// Where the tools are.
    pub tools: PathBuf,
}

impl ToolEnv {
    /// Runs `tool` (`helm` or `kubectl`) with `args`; panics with the output unless it succeeds.
    pub fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `tool` with `args`.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        let home = self.dir.path();
        Command::new(self.tools.join(tool))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", home)
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .output()
            .unwrap()
    }

    /// `kubectl get <args> -o json`.
    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok("kubectl", &all)).unwrap()
    }

    /// Whether `kubectl get <args>` finds it.
    pub fn exists(&self, args: &[&str]) -> bool {
        let mut all = vec!["get"];
        all.extend(args);
        self.run("kubectl", &all).status.success()
    }
}

/// The kinds [`apply_rbac`] creates, with their API paths.
const RBAC_KINDS: [(&str, &str, &str); 5] = [
    ("ServiceAccount", "v1", "serviceaccounts"),
    (
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
    ),
    (
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
    ),
    ("Role", "rbac.authorization.k8s.io/v1", "roles"),
    (
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
    ),
];

/// Creates the ServiceAccounts, Roles, ClusterRoles and their bindings of a rendered chart in
/// the cluster `client` (an admin) talks to; objects without a namespace that need one go to
/// `namespace`. Returns the ServiceAccount names, so a controller can run with one's token
/// (`service_account_kubeconfig`) under exactly the chart's rules.
pub async fn apply_rbac(client: &kube::Client, objects: &Objects, namespace: &str) -> Vec<String> {
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    let mut accounts = Vec::new();
    for (kind, api_version, plural) in RBAC_KINDS {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        for doc in objects.of_kind(kind) {
            let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            let api: Api<DynamicObject> = if kind.starts_with("Cluster") {
                Api::all_with(client.clone(), &resource)
            } else {
                let ns = obj.metadata.namespace.as_deref().unwrap_or(namespace);
                Api::namespaced_with(client.clone(), ns, &resource)
            };
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                // a namespace a test names on purpose without creating it (helm would fail
                // there; the controller must cope with it missing)
                Err(kube::Error::Api(s)) if s.code == 404 && !kind.starts_with("Cluster") => {}
                Err(e) => panic!("creating {kind} {:?}: {e}", obj.metadata.name),
            }
            if kind == "ServiceAccount" {
                accounts.extend(obj.metadata.name.clone());
            }
        }
    }
    accounts
}
