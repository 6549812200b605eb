//! The binary takes upstream's command lines: every boolean flag bare and with `=true|false`
//! (as upstream's chart passes them), a flag given twice, and a bad value refused clearly.
//! Without a cluster the binary stops at the Kubernetes client (exit 1): a flag it did not
//! accept would stop it earlier, at parsing (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const BOOLS: &[&str] = &[
    "accept-deprecated-v1-data",
    "all-namespaces",
    "update-status",
    "leader-elect",
    "old-gc-behavior",
    "watch-for-secrets",
    "skip-recreate",
    "log-info-stdout",
];

fn run(args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
        .args([
            "--listen-addr=127.0.0.1:0",
            "--listen-metrics-addr=127.0.0.1:0",
        ])
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_boolean_flag_is_accepted_bare_and_with_a_value() {
    for flag in BOOLS {
        for form in [
            format!("--{flag}"),
            format!("--{flag}=true"),
            format!("--{flag}=false"),
        ] {
            let (code, stderr) = run(std::slice::from_ref(&form));
            assert_eq!(code, 1, "{form}: {stderr}");
            assert!(!stderr.contains("Usage"), "{form} was refused: {stderr}");
        }
    }
    // given twice: the last value wins instead of an error
    let (code, stderr) = run(&[
        "--key-size=2048".into(),
        "--key-size=4096".into(),
        "--update-status".into(),
        "--update-status=false".into(),
    ]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn a_bad_boolean_names_the_flag_and_exits_2() {
    let (code, stderr) = run(&["--update-status=maybe".into()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--update-status"), "{stderr}");
    assert!(stderr.contains("maybe"), "{stderr}");
}

#[test]
fn log_flags_read_their_sealed_secrets_variables_as_upstream() {
    let run_with = |var: &str, value: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
            .args([
                "--listen-addr=127.0.0.1:0",
                "--listen-metrics-addr=127.0.0.1:0",
            ])
            .env(var, value)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // a value the parser refuses proves the variable is read
    let (code, err) = run_with("SEALED_SECRETS_LOG_FORMAT", "xml");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--log-format"), "{err}");
    let (code, err) = run_with("SEALED_SECRETS_LOG_FORMAT", "json");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with('{')),
        "JSON log lines: {err}"
    );
    let (code, err) = run_with("SEALED_SECRETS_LOG_LEVEL", "error");
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains(" INFO "), "{err}");
}
