//! `cargo xtask layering`: the dependency arrows of DESIGN.md ("Layout", "Dependency arrows")
//! between workspace crates, read from `cargo metadata`, and the rule that every internal
//! dependency is declared once in the root `[workspace.dependencies]`.
//!
//! Normal and build dependencies may point only along these arrows ([`RULES`]):
//!
//! | crate | may depend on |
//! |---|---|
//! | `strongroom-provider-<x>` (providers/*) | provider-api, core |
//! | `strongroom-provider-api` | core |
//! | `strongroom-external-secrets` | provider-api, providers, controller-kit, core |
//! | `strongroom-sealed-secrets` | controller-kit, core |
//! | `strongroom-reloader` | controller-kit, core |
//! | `strongroom-kubeseal` | core |
//! | `strongroom-testkit` | devcluster |
//! | `strongroom-xtask` | core |
//! | `strongroom-devcluster`, `strongroom-controller-kit`, `strongroom-core` | nothing in the workspace |
//!
//! xtask needs core for the CRD types (`crds`) and the sealing round trip (`demo`); everything
//! else it drives (tests, benchmarks, controller binaries) it runs through `cargo` commands
//! instead of depending on it, so it stays quick to build and adds no arrow.
//!
//! Dev-dependencies may point at devcluster, testkit and the crate itself, and at a crate the
//! crate may already depend on normally (that adds no arrow: a test may want more of its
//! features). So only dev-dependencies point at testkit, and no controller depends on another
//! controller in any kind. A workspace crate that is not in the table is a violation until the
//! table gives it a place. Crates that do not exist yet are covered by name.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// A workspace crate's place in the layering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Core,
    ProviderApi,
    Provider,
    ExternalSecrets,
    SealedSecrets,
    Reloader,
    Kubeseal,
    ControllerKit,
    Devcluster,
    Testkit,
    Xtask,
}

use Role::*;

/// The allowed normal/build arrows: each role and what it may depend on.
const RULES: &[(Role, &[Role])] = &[
    (Provider, &[ProviderApi, Core]),
    (ProviderApi, &[Core]),
    (
        ExternalSecrets,
        &[ProviderApi, Provider, ControllerKit, Core],
    ),
    (SealedSecrets, &[ControllerKit, Core]),
    (Reloader, &[ControllerKit, Core]),
    (Kubeseal, &[Core]),
    (Devcluster, &[]),
    (Testkit, &[Devcluster]),
    (ControllerKit, &[]),
    (Core, &[]),
    (Xtask, &[Core]),
];

/// What any crate's dev-dependencies may point at, besides itself and its normal arrows.
const DEV_ANYWHERE: &[Role] = &[Devcluster, Testkit];

const PROVIDER_PREFIX: &str = "strongroom-provider-";

fn role(name: &str) -> Option<Role> {
    Some(match name {
        "strongroom-core" => Core,
        "strongroom-provider-api" => ProviderApi,
        "strongroom-external-secrets" => ExternalSecrets,
        "strongroom-sealed-secrets" => SealedSecrets,
        "strongroom-reloader" => Reloader,
        "strongroom-kubeseal" => Kubeseal,
        "strongroom-controller-kit" => ControllerKit,
        "strongroom-devcluster" => Devcluster,
        "strongroom-testkit" => Testkit,
        "strongroom-xtask" => Xtask,
        n if n.len() > PROVIDER_PREFIX.len() && n.starts_with(PROVIDER_PREFIX) => Provider,
        _ => return None,
    })
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Core => "core",
            ProviderApi => "provider-api",
            Provider => "providers/*",
            ExternalSecrets => "external-secrets",
            SealedSecrets => "sealed-secrets",
            Reloader => "reloader",
            Kubeseal => "kubeseal",
            ControllerKit => "controller-kit",
            Devcluster => "devcluster",
            Testkit => "testkit",
            Xtask => "xtask",
        }
    }

    fn is_controller(self) -> bool {
        matches!(self, ExternalSecrets | SealedSecrets | Reloader)
    }

    fn allowed(self) -> &'static [Role] {
        RULES
            .iter()
            .find(|(r, _)| *r == self)
            .map_or(&[], |(_, targets)| *targets)
    }

    fn allowed_text(self) -> String {
        let names: Vec<&str> = self.allowed().iter().map(|r| r.label()).collect();
        if names.is_empty() {
            "nothing in the workspace".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// The kind of a dependency, as `cargo metadata` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Normal,
    Build,
    Dev,
}

impl Kind {
    fn from_metadata(kind: &Value) -> Kind {
        match kind.as_str() {
            Some("dev") => Kind::Dev,
            Some("build") => Kind::Build,
            _ => Kind::Normal,
        }
    }

    fn from_table(table: &str) -> Kind {
        match table {
            "dev-dependencies" | "dev_dependencies" => Kind::Dev,
            "build-dependencies" | "build_dependencies" => Kind::Build,
            _ => Kind::Normal,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Normal => "normal",
            Kind::Build => "build",
            Kind::Dev => "dev",
        })
    }
}

/// One dependency of a workspace crate on another workspace crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dep {
    pub from: String,
    pub to: String,
    pub kind: Kind,
}

/// A broken rule: which crate, which dependency, of which kind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub krate: String,
    /// The dependency's name, or `None` when the crate itself has no place in the rules.
    pub dependency: Option<String>,
    pub kind: Option<Kind>,
    pub why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.dependency, self.kind) {
            (Some(dep), Some(kind)) => write!(f, "{} -> {dep} ({kind}): {}", self.krate, self.why),
            (Some(dep), None) => write!(f, "{} -> {dep}: {}", self.krate, self.why),
            (None, _) => write!(f, "{}: {}", self.krate, self.why),
        }
    }
}

/// Checks the arrows between workspace crates: `members` are the workspace's crate names,
/// `deps` the dependencies between them.
pub fn check_arrows(members: &[String], deps: &[Dep]) -> Vec<Violation> {
    let mut out = Vec::new();
    for member in members {
        if role(member).is_none() {
            out.push(Violation {
                krate: member.clone(),
                dependency: None,
                kind: None,
                why: "not a crate of DESIGN.md's layout: give it a place in the rules of \
                      xtask/src/layering.rs (and in DESIGN.md)"
                    .to_string(),
            });
        }
    }
    for dep in deps {
        let violation = |why: String| Violation {
            krate: dep.from.clone(),
            dependency: Some(dep.to.clone()),
            kind: Some(dep.kind),
            why,
        };
        // a crate without a place is reported once above
        let Some(from) = role(&dep.from) else {
            continue;
        };
        let Some(to) = role(&dep.to) else {
            out.push(violation(
                "the dependency is not a crate of DESIGN.md's layout".to_string(),
            ));
            continue;
        };
        if dep.from == dep.to {
            if dep.kind != Kind::Dev {
                out.push(violation("a crate cannot depend on itself".to_string()));
            }
            continue;
        }
        let normal_ok = from.allowed().contains(&to);
        if from.is_controller() && to.is_controller() {
            out.push(violation(
                "no controller depends on another controller".to_string(),
            ));
        } else if dep.kind == Kind::Dev {
            if !normal_ok && !DEV_ANYWHERE.contains(&to) {
                out.push(violation(format!(
                    "dev-dependencies may point only at devcluster, testkit, the crate itself \
                     and what {} may depend on ({})",
                    from.label(),
                    from.allowed_text()
                )));
            }
        } else if to == Testkit {
            out.push(violation(
                "only dev-dependencies may point at testkit".to_string(),
            ));
        } else if !normal_ok {
            out.push(violation(format!(
                "not an arrow of DESIGN.md: {} may depend on {}",
                from.label(),
                from.allowed_text()
            )));
        }
    }
    out
}

/// The workspace's crate names and the dependencies between them, with each crate's manifest.
pub struct Graph {
    pub members: Vec<String>,
    pub deps: Vec<Dep>,
    pub manifests: Vec<(String, PathBuf)>,
}

/// Reads the graph from `cargo metadata --format-version 1` output. A dependency counts as
/// internal when it names a workspace member and comes from a path (no registry `source`).
pub fn graph(metadata: &Value) -> anyhow::Result<Graph> {
    let ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata: no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: Vec<&Value> = metadata["packages"]
        .as_array()
        .context("cargo metadata: no packages")?
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| ids.contains(id)))
        .collect();
    let members: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let mut deps = BTreeSet::new();
    let mut manifests = Vec::new();
    for package in &packages {
        let name = package["name"]
            .as_str()
            .context("a package without a name")?;
        if let Some(path) = package["manifest_path"].as_str() {
            manifests.push((name.to_string(), PathBuf::from(path)));
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let Some(to) = dep["name"].as_str() else {
                continue;
            };
            if dep["source"].is_null() && members.iter().any(|m| m == to) {
                deps.insert(Dep {
                    from: name.to_string(),
                    to: to.to_string(),
                    kind: Kind::from_metadata(&dep["kind"]),
                });
            }
        }
    }
    Ok(Graph {
        members,
        deps: deps.into_iter().collect(),
        manifests,
    })
}

/// Splits a TOML table header (`target.'cfg(unix)'.dependencies.foo`) at its dots.
fn header_parts(header: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in header.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    parts.push(current.trim().to_string());
    parts
}

/// The line without its comment; with `blank`, also with string contents emptied
/// (`"a=b"` becomes `""`).
fn code_of(line: &str, blank: bool) -> String {
    let mut out = String::new();
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') => break,
            (None, '"' | '\'') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => {
                if !blank {
                    out.push(c);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

fn is_dependency_table(part: &str) -> bool {
    matches!(
        part,
        "dependencies"
            | "dev-dependencies"
            | "build-dependencies"
            | "dev_dependencies"
            | "build_dependencies"
    )
}

/// Finds dependencies that a member manifest declares with `path =` instead of inheriting
/// them from `[workspace.dependencies]` (`foo = { path = ".." }`, `foo.path = ".."`, or a
/// `[dependencies.foo]` table with a `path` key).
pub fn check_manifest(krate: &str, text: &str) -> Vec<Violation> {
    /// Where the parser is: outside dependency tables, in one (`[dependencies]`), or in the
    /// table of one dependency (`[dependencies.foo]`).
    enum Place {
        Other,
        Deps(Kind),
        Dep(Kind, String),
    }
    let mut place = Place::Other;
    let mut out = Vec::new();
    let violation = |dep: &str, kind: Kind| Violation {
        krate: krate.to_string(),
        dependency: Some(dep.trim_matches(['"', '\'']).to_string()),
        kind: Some(kind),
        why: "declared with `path =` in the crate's own Cargo.toml: declare it in the root \
              [workspace.dependencies] and use `workspace = true`"
            .to_string(),
    };
    for line in text.lines() {
        let code = code_of(line, false);
        let code = code.trim();
        if code.starts_with('[') {
            let parts = header_parts(code.trim_matches(['[', ']']).trim());
            place = Place::Other;
            if parts.first().is_some_and(|p| p == "workspace") {
                continue;
            }
            if let Some(i) = parts.iter().position(|p| is_dependency_table(p)) {
                let kind = Kind::from_table(&parts[i]);
                match &parts[i + 1..] {
                    [] => place = Place::Deps(kind),
                    [name] => place = Place::Dep(kind, name.clone()),
                    _ => {}
                }
            }
            continue;
        }
        let Some((key, value)) = code.split_once('=') else {
            continue;
        };
        let key = key.trim();
        match &place {
            Place::Other => {}
            Place::Dep(kind, name) => {
                if key == "path" {
                    out.push(violation(name, *kind));
                }
            }
            Place::Deps(kind) => {
                let value = code_of(value, true);
                let inline_path = value.trim_start().starts_with('{')
                    && value.split(['{', '}', ',']).any(|entry| {
                        entry
                            .split_once('=')
                            .is_some_and(|(k, _)| k.trim() == "path")
                    });
                if inline_path {
                    out.push(violation(key, *kind));
                } else if let Some(name) = key.strip_suffix(".path") {
                    out.push(violation(name.trim(), *kind));
                }
            }
        }
    }
    out
}

/// Runs the check on the workspace at `root`.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let graph = graph(&metadata)?;
    let mut violations = check_arrows(&graph.members, &graph.deps);
    for (krate, manifest) in &graph.manifests {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        violations.extend(check_manifest(krate, &text));
    }
    if violations.is_empty() {
        println!(
            "layering: {} workspace crates, {} internal dependencies, all along DESIGN.md's arrows \
             and declared in [workspace.dependencies]",
            graph.members.len(),
            graph.deps.len()
        );
        return Ok(());
    }
    for v in &violations {
        println!("layering violation: {v}");
    }
    bail!(
        "{} layering violation(s); the rules are in xtask/src/layering.rs and DESIGN.md",
        violations.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(from: &str, to: &str, kind: Kind) -> Dep {
        Dep {
            from: format!("strongroom-{from}"),
            to: format!("strongroom-{to}"),
            kind,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| format!("strongroom-{n}")).collect()
    }

    const ALL: &[&str] = &[
        "core",
        "provider-api",
        "provider-aws",
        "provider-vault",
        "external-secrets",
        "sealed-secrets",
        "reloader",
        "kubeseal",
        "controller-kit",
        "devcluster",
        "testkit",
        "xtask",
    ];

    /// The full graph DESIGN.md describes, including the crates that do not exist yet.
    fn design_graph() -> Vec<Dep> {
        use Kind::*;
        vec![
            dep("provider-api", "core", Normal),
            dep("provider-aws", "provider-api", Normal),
            dep("provider-aws", "core", Normal),
            dep("provider-vault", "provider-api", Normal),
            dep("external-secrets", "provider-api", Normal),
            dep("external-secrets", "provider-aws", Normal),
            dep("external-secrets", "controller-kit", Normal),
            dep("external-secrets", "core", Normal),
            dep("external-secrets", "testkit", Dev),
            dep("external-secrets", "devcluster", Dev),
            dep("sealed-secrets", "controller-kit", Normal),
            dep("sealed-secrets", "core", Normal),
            dep("sealed-secrets", "core", Dev),
            dep("sealed-secrets", "testkit", Dev),
            dep("reloader", "controller-kit", Normal),
            dep("reloader", "core", Build),
            dep("kubeseal", "core", Normal),
            dep("testkit", "devcluster", Normal),
            dep("controller-kit", "devcluster", Dev),
            dep("devcluster", "devcluster", Dev),
            dep("xtask", "core", Normal),
        ]
    }

    #[test]
    fn the_design_graph_is_clean() {
        assert_eq!(check_arrows(&names(ALL), &design_graph()), vec![]);
    }

    #[test]
    fn forbidden_arrows_are_reported_with_crate_dependency_and_kind() {
        use Kind::*;
        let mut deps = design_graph();
        deps.extend([
            dep("sealed-secrets", "reloader", Dev),
            dep("reloader", "sealed-secrets", Normal),
            dep("kubeseal", "testkit", Normal),
            dep("kubeseal", "controller-kit", Normal),
            dep("devcluster", "core", Normal),
            dep("provider-aws", "controller-kit", Build),
            dep("provider-api", "provider-vault", Normal),
            dep("core", "kubeseal", Dev),
        ]);
        let found: Vec<(String, String, Kind)> = check_arrows(&names(ALL), &deps)
            .into_iter()
            .map(|v| (v.krate, v.dependency.unwrap(), v.kind.unwrap()))
            .collect();
        let expected: Vec<(String, String, Kind)> = [
            ("sealed-secrets", "reloader", Dev),
            ("reloader", "sealed-secrets", Normal),
            ("kubeseal", "testkit", Normal),
            ("kubeseal", "controller-kit", Normal),
            ("devcluster", "core", Normal),
            ("provider-aws", "controller-kit", Build),
            ("provider-api", "provider-vault", Normal),
            ("core", "kubeseal", Dev),
        ]
        .into_iter()
        .map(|(a, b, k)| (format!("strongroom-{a}"), format!("strongroom-{b}"), k))
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn messages_name_the_rule() {
        let v = check_arrows(
            &names(&["reloader", "sealed-secrets", "testkit", "kubeseal"]),
            &[
                dep("reloader", "sealed-secrets", Kind::Normal),
                dep("kubeseal", "testkit", Kind::Normal),
            ],
        );
        assert_eq!(
            v[0].to_string(),
            "strongroom-reloader -> strongroom-sealed-secrets (normal): no controller depends on \
             another controller"
        );
        assert_eq!(
            v[1].to_string(),
            "strongroom-kubeseal -> strongroom-testkit (normal): only dev-dependencies may point \
             at testkit"
        );
    }

    #[test]
    fn a_crate_without_a_place_is_reported() {
        let v = check_arrows(
            &names(&["core", "gadget", "provider-"]),
            &[dep("gadget", "core", Kind::Normal)],
        );
        let crates: Vec<&str> = v.iter().map(|v| v.krate.as_str()).collect();
        assert_eq!(crates, ["strongroom-gadget", "strongroom-provider-"]);
        assert!(v.iter().all(|v| v.dependency.is_none()));
    }

    #[test]
    fn path_dependencies_in_member_manifests_are_reported() {
        let manifest = r#"
[package]
name = "strongroom-reloader"

[[bin]]
name = "reloader"
path = "src/main.rs"

[dependencies]
strongroom-core = { workspace = true, features = ["template"] }
strongroom-controller-kit = { path = "../controller-kit" }
serde = { version = "1", features = ["derive"] } # path = "not this"
strongroom-provider-api.path = "../provider-api"

[dev-dependencies]
strongroom-testkit.workspace = true
strongroom-devcluster = { features = ["client"], path = "../devcluster" }

[build-dependencies.strongroom-xtask]
path = "../../xtask"

[target.'cfg(target_os = "linux")'.dependencies]
strongroom-kubeseal = {path="../kubeseal"}
"strongroom-reloader" = { version = "1", features = ["path = x"] }

[dev-dependencies."strongroom-provider-aws"]
path = "../providers/aws"

[workspace.dependencies]
strongroom-core = { path = "crates/core" }
"#;
        let found: Vec<(String, Kind)> = check_manifest("strongroom-reloader", manifest)
            .into_iter()
            .map(|v| (v.dependency.unwrap(), v.kind.unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                ("strongroom-controller-kit".to_string(), Kind::Normal),
                ("strongroom-provider-api".to_string(), Kind::Normal),
                ("strongroom-devcluster".to_string(), Kind::Dev),
                ("strongroom-xtask".to_string(), Kind::Build),
                ("strongroom-kubeseal".to_string(), Kind::Normal),
                ("strongroom-provider-aws".to_string(), Kind::Dev),
            ]
        );
    }

    #[test]
    fn workspace_inherited_manifests_are_clean() {
        let manifest = r#"
[package]
name = "strongroom-sealed-secrets"

[[bench]]
name = "unseal"
path = "benches/unseal.rs"

[dependencies]
strongroom-core = { workspace = true, features = ["sealing", "template"] }
strongroom-controller-kit.workspace = true
pathdiff = "0.2"

[dev-dependencies.strongroom-devcluster]
workspace = true
features = ["client"]
"#;
        assert_eq!(
            check_manifest("strongroom-sealed-secrets", manifest),
            vec![]
        );
    }

    #[test]
    fn the_graph_comes_from_cargo_metadata() {
        let metadata = serde_json::json!({
            "workspace_members": ["id-core", "id-kubeseal", "id-kit"],
            "packages": [
                {"id": "id-core", "name": "strongroom-core", "manifest_path": "/w/core/Cargo.toml",
                 "dependencies": [{"name": "serde", "kind": null, "source": "registry+https://github.com/rust-lang/crates.io-index"}]},
                {"id": "id-kubeseal", "name": "strongroom-kubeseal", "manifest_path": "/w/kubeseal/Cargo.toml",
                 "dependencies": [
                    {"name": "strongroom-core", "kind": null, "source": null, "path": "/w/core"},
                    {"name": "strongroom-controller-kit", "kind": "dev", "source": null, "path": "/w/kit"},
                    {"name": "strongroom-core", "kind": null, "source": null, "path": "/w/core", "target": "cfg(unix)"}
                 ]},
                {"id": "id-kit", "name": "strongroom-controller-kit", "manifest_path": "/w/kit/Cargo.toml",
                 "dependencies": [{"name": "strongroom-devcluster", "kind": "dev", "source": null, "path": "/w/dev"}]}
            ]
        });
        let graph = graph(&metadata).unwrap();
        assert_eq!(
            graph.members,
            names(&["core", "kubeseal", "controller-kit"])
        );
        // the devcluster is not a member here, and the cfg(unix) repeat is counted once
        assert_eq!(
            graph.deps,
            [
                dep("kubeseal", "controller-kit", Kind::Dev),
                dep("kubeseal", "core", Kind::Normal),
            ]
        );
        let v = check_arrows(&graph.members, &graph.deps);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].to_string(),
            "strongroom-kubeseal -> strongroom-controller-kit (dev): dev-dependencies may point \
             only at devcluster, testkit, the crate itself and what kubeseal may depend on (core)"
        );
        assert_eq!(graph.manifests.len(), 3);
    }
}
