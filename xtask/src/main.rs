//! `cargo xtask`: project tasks that need more than one cargo command.
//!
//! - `cargo xtask crds [--check]`: write (or compare) `deploy/crds/*.yaml` from the Rust types;
//! - `cargo xtask layering`: check the dependency arrows between workspace crates (DESIGN.md);
//! - `cargo xtask test`: run every test of the workspace with nextest (falls back to cargo test),
//!   then, for a whole run, `rbac-report --check`;
//! - `cargo xtask rbac-report [--check]`: the charts' RBAC against the permissions tests used;
//! - `cargo xtask tools`: fetch the real kubectl and helm into target/tools;
//! - `cargo xtask demo [--no-wait]`: the three controllers on devcluster, sealed → synced → reloaded;
//! - `cargo xtask docs [--check]`: the generated CLI and CRD references in docs/reference/;
//! - `cargo xtask image <controller>|all [--no-build] [--smoke]`: OCI images without Docker;
//! - `cargo xtask bench crypto`: seal/unseal benchmark next to `openssl speed rsa4096`.

mod bench;
mod crds;
mod demo;
mod docs;
mod image;
mod layering;
mod rbac_report;
mod tools;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["crds"] => crds::write(&root()),
        ["crds", "--check"] => crds::check(&root()),
        ["test", rest @ ..] => run_tests(rest),
        ["bench", "crypto"] => bench::crypto(&root()),
        ["bench", "devcluster"] => bench::devcluster(&root()),
        ["bench", "sealed"] => bench::sealed(&root()),
        ["bench", "reloader"] => bench::reloader(&root()),
        ["bench", "external-secrets"] => bench::external_secrets(&root()),
        ["demo"] => demo::run(&root(), false),
        ["demo", "--no-wait"] => demo::run(&root(), true),
        ["image", rest @ ..] => image::run(&root(), rest),
        ["docs"] => docs::run(&root(), false),
        ["docs", "--check"] => docs::run(&root(), true),
        ["layering"] => layering::run(&root()),
        ["rbac-report"] => rbac_report::run(&root(), false),
        ["rbac-report", "--check"] => rbac_report::run(&root(), true),
        ["tools"] => tools::ensure(&root()).map(|_| ()),
        _ => Err(anyhow::anyhow!(
            "usage: cargo xtask crds [--check] | layering | test [args] | bench crypto|devcluster|sealed|reloader|external-secrets | rbac-report [--check] | demo [--no-wait] | docs [--check] | image <controller>|all [--no-build] [--smoke] | tools"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (a relative one is resolved against the root,
/// where cargo runs), else `<root>/target`.
fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

fn run_tests(extra: &[&str]) -> anyhow::Result<()> {
    let tools = tools::ensure(&root())?;
    let has_nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root());
    if has_nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    cmd.env("STRONGROOM_TOOLS", &tools);
    rbac_report::clear(&root());
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "tests failed");
    // only a whole run exercises every path a chart's rules are for
    if extra.is_empty() {
        println!("== the charts' RBAC against the permissions the tests exercised");
        rbac_report::run(&root(), true)?;
    }
    Ok(())
}
