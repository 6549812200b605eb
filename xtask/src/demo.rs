//! `cargo xtask demo [--no-wait]`: the three controllers on devcluster, and the chain the
//! project exists for, step by step:
//! 1. `kubeseal` seals a Secret with the controller's certificate; the SealedSecret is applied
//!    and the controller unseals it;
//! 2. an ExternalSecret syncs a value from a store (the fake provider: no outside service), and
//!    from OpenBao and moto when `cargo xtask tools` has installed them ([`backends`]);
//! 3. a Deployment annotated for the reloader uses that Secret; the remote value is rotated and
//!    the chain provider → Secret → pod template is timed;
//! 4. everything stays up, with the kubeconfig and `kubectl` commands to explore, until Ctrl-C
//!    (which the terminal sends to every process the demo started). `--no-wait` ends here.
//!
//! A step that does not happen in time fails with the step, what was expected and the log to
//! read; every process is stopped on the way out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod backends;

use anyhow::{Context, bail};
use base64::Engine as _;

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: demo-db
  namespace: demo
type: Opaque
stringData:
  username: app
  password: sealed-in-git-123
";

const STORE: &str = r#"{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
 "metadata": {"name": "vault-sim", "namespace": "demo"},
 "spec": {"provider": {"fake": {"data": [{"key": "app/db-password", "value": "rotation-0"}]}}}}"#;

const EXTERNAL_SECRET: &str = r#"{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
 "metadata": {"name": "app-credentials", "namespace": "demo"},
 "spec": {"refreshInterval": "1s",
  "secretStoreRef": {"name": "vault-sim", "kind": "SecretStore"},
  "target": {"name": "app-credentials"},
  "data": [{"secretKey": "password", "remoteRef": {"key": "app/db-password"}}]}}"#;

const DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "web", "namespace": "demo", "annotations": {"reloader.stakater.com/auto": "true"}},
 "spec": {"selector": {"matchLabels": {"app": "web"}},
  "template": {"metadata": {"labels": {"app": "web"}},
   "spec": {"containers": [{"name": "web", "image": "nginx",
    "envFrom": [{"secretRef": {"name": "app-credentials"}}]}]}}}}"#;

const BINARIES: [&str; 5] = [
    "devcluster",
    "sealed-secrets-controller",
    "external-secrets-controller",
    "reloader",
    "kubeseal",
];

/// The processes the demo started; all are stopped when it ends.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the steps share.
struct Demo {
    dir: PathBuf,
    bin: PathBuf,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Demo {
    /// `kubectl <args>` against devcluster; its stdout, or an error with its stderr.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        if let Some(text) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A field of an object (`kubectl get -o jsonpath`), empty when the object is missing.
    fn field(&self, kind: &str, name: &str, path: &str) -> String {
        self.kubectl(
            &[
                "get",
                kind,
                name,
                "-n",
                "demo",
                "--ignore-not-found",
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
        .unwrap_or_default()
    }

    /// The decoded value of `key` in Secret `demo/name`.
    fn secret_value(&self, name: &str, key: &str) -> String {
        let b64 = self.field("secret", name, &format!("{{.data.{key}}}"));
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    /// Starts one binary with the demo's kubeconfig, logging to `<dir>/<name>.log`.
    fn start(
        &self,
        procs: &mut Processes,
        name: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log(name))?;
        let child = Command::new(self.bin.join(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAMESPACE", "kube-system")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        procs.0.push((name.to_string(), child));
        Ok(())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }
}

/// Polls `check` every 100 ms for up to `limit`, printing a dot per second; fails naming
/// `what` and the log to read.
fn wait(
    what: &str,
    log: &Path,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut dots = 0;
    while start.elapsed() < limit {
        if check() {
            if dots > 0 {
                println!();
            }
            return Ok(start.elapsed());
        }
        if start.elapsed().as_secs() > dots {
            dots += 1;
            print!(".");
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "timed out after {limit:?} waiting for {what}; see {}",
        log.display()
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The status code of `GET http://127.0.0.1:<port><path>`, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs the demo.
pub fn run(root: &Path, no_wait: bool) -> anyhow::Result<()> {
    println!("building the controllers, devcluster and kubeseal");
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--quiet"])
        .args(BINARIES.iter().flat_map(|b| ["--bin", b]))
        .status()?;
    if !status.success() {
        bail!("building the binaries failed");
    }
    let target = crate::target_dir(root);
    let tools = crate::tools::ensure_kube_tools(root)?;
    let dir = target.join("demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let demo = Demo {
        bin: target.join("debug"),
        kubectl: tools.join("kubectl"),
        kubeconfig: dir.join("kubeconfig"),
        dir,
    };
    let started = Instant::now();
    let mut procs = Processes(Vec::new());

    println!("0. devcluster (an in-memory Kubernetes API server), the CRDs and namespace demo");
    let kubeconfig = demo.kubeconfig.display().to_string();
    demo.start(
        &mut procs,
        "devcluster",
        &["--kubeconfig".into(), kubeconfig.clone()],
        &[],
    )?;
    wait(
        "devcluster",
        &demo.log("devcluster"),
        Duration::from_secs(20),
        || demo.kubeconfig.exists() && demo.kubectl(&["get", "namespaces"], None).is_ok(),
    )?;
    demo.kubectl(
        &[
            "create",
            "-f",
            &root.join("deploy/crds").display().to_string(),
        ],
        None,
    )?;
    demo.kubectl(&["create", "namespace", "demo"], None)?;
    let backends = backends::start(root, &demo.dir, &mut procs)?;
    let es_env: Vec<(&str, String)> = backends
        .moto
        .iter()
        .map(|m| ("AWS_SECRETSMANAGER_ENDPOINT", m.clone()))
        .collect();

    let (ss_api, ss_metrics) = (free_port()?, free_port()?);
    let (es_metrics, es_live) = (free_port()?, free_port()?);
    let reloader_port = free_port()?;
    println!("   starting sealed-secrets-controller, external-secrets-controller and reloader");
    demo.start(
        &mut procs,
        "sealed-secrets-controller",
        &[
            format!("--listen-addr=127.0.0.1:{ss_api}"),
            format!("--listen-metrics-addr=127.0.0.1:{ss_metrics}"),
        ],
        &[],
    )?;
    demo.start(
        &mut procs,
        "external-secrets-controller",
        &[
            format!("--metrics-addr=127.0.0.1:{es_metrics}"),
            format!("--live-addr=127.0.0.1:{es_live}"),
        ],
        &es_env,
    )?;
    demo.start(
        &mut procs,
        "reloader",
        &[format!("--listen-addr=127.0.0.1:{reloader_port}")],
        &[],
    )?;
    for (name, port) in [
        ("sealed-secrets-controller", ss_metrics),
        ("external-secrets-controller", es_live),
        ("reloader", reloader_port),
    ] {
        let ready = wait(
            &format!("{name} /readyz"),
            &demo.log(name),
            Duration::from_secs(30),
            || http_status(port, "/readyz") == Some(200),
        )?;
        println!("   {name} ready ({} ms)", ready.as_millis());
    }

    println!(
        "1. kubeseal seals a Secret with the controller's certificate; the controller unseals it"
    );
    let secret = demo.dir.join("secret.yaml");
    let sealed = demo.dir.join("sealed-secret.yaml");
    std::fs::write(&secret, SECRET)?;
    let out = Command::new(demo.bin.join("kubeseal"))
        .args(["--cert", &format!("http://127.0.0.1:{ss_api}/v1/cert.pem")])
        .args(["-o", "yaml", "-f"])
        .arg(&secret)
        .arg("-w")
        .arg(&sealed)
        .output()?;
    if !out.status.success() {
        bail!("kubeseal failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!(
        "   {} holds only ciphertext: safe to commit",
        sealed.display()
    );
    demo.kubectl(&["create", "-f", &sealed.display().to_string()], None)?;
    let took = wait(
        "the unsealed Secret demo/demo-db",
        &demo.log("sealed-secrets-controller"),
        Duration::from_secs(20),
        || demo.secret_value("demo-db", "password") == "sealed-in-git-123",
    )?;
    println!(
        "   Secret demo/demo-db unsealed in {} ms (password decodes to the original)",
        took.as_millis()
    );

    println!("2. an ExternalSecret syncs a value from a SecretStore (the fake provider)");
    demo.kubectl(&["create", "-f", "-"], Some(STORE))?;
    demo.kubectl(&["create", "-f", "-"], Some(EXTERNAL_SECRET))?;
    let took = wait(
        "Secret demo/app-credentials",
        &demo.log("external-secrets-controller"),
        Duration::from_secs(20),
        || demo.secret_value("app-credentials", "password") == "rotation-0",
    )?;
    println!(
        "   Secret demo/app-credentials synced in {} ms; ExternalSecret Ready={}",
        took.as_millis(),
        demo.field(
            "externalsecret",
            "app-credentials",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        )
    );

    for doc in backends::manifests(&backends) {
        demo.kubectl(&["create", "-f", "-"], Some(&doc))?;
    }
    for (name, from, want) in [
        ("from-openbao", backends.openbao.as_ref(), "from-openbao"),
        ("from-moto", backends.moto.as_ref(), "from-moto"),
    ] {
        let Some(from) = from else { continue };
        let took = wait(
            &format!("Secret demo/{name}"),
            &demo.log("external-secrets-controller"),
            Duration::from_secs(30),
            || demo.secret_value(name, "value") == want,
        )?;
        println!(
            "   Secret demo/{name} synced from {from} in {} ms",
            took.as_millis()
        );
    }

    println!(
        "3. a Deployment annotated reloader.stakater.com/auto uses it; the remote value rotates"
    );
    demo.kubectl(&["create", "-f", "-"], Some(DEPLOYMENT))?;
    // the reloader sees the Deployment before the rotation
    std::thread::sleep(Duration::from_millis(1500));
    let env_path = "{.spec.template.spec.containers[0].env[?(@.name==\"STAKATER_APP_CREDENTIALS_SECRET\")].value}";
    let rotated_at = Instant::now();
    demo.kubectl(
        &[
            "patch",
            "secretstore",
            "vault-sim",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            r#"{"spec":{"provider":{"fake":{"data":[{"key":"app/db-password","value":"rotation-1"}]}}}}"#,
        ],
        None,
    )?;
    let to_secret = wait(
        "the rotated value in Secret demo/app-credentials",
        &demo.log("external-secrets-controller"),
        Duration::from_secs(20),
        || demo.secret_value("app-credentials", "password") == "rotation-1",
    )?;
    wait(
        "the reloader's patch of Deployment demo/web",
        &demo.log("reloader"),
        Duration::from_secs(20),
        || !demo.field("deployment", "web", env_path).is_empty(),
    )?;
    let to_pods = rotated_at.elapsed();
    println!(
        "   provider value rotated → Secret updated after {} ms → pod template changed after {} ms",
        to_secret.as_millis(),
        to_pods.as_millis()
    );
    println!(
        "   Deployment demo/web now carries STAKATER_APP_CREDENTIALS_SECRET={} (a new rollout)",
        demo.field("deployment", "web", env_path)
    );
    println!(
        "walk-through done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!("4. explore:");
    println!("   export KUBECONFIG={kubeconfig}");
    println!(
        "   {} get sealedsecrets,externalsecrets,secretstores,secrets,deployments -n demo",
        demo.kubectl.display()
    );
    println!(
        "   metrics: http://127.0.0.1:{ss_metrics}/metrics (sealed-secrets), http://127.0.0.1:{es_metrics}/metrics (external-secrets), http://127.0.0.1:{reloader_port}/metrics (reloader)"
    );
    println!("   logs: {}/*.log", demo.dir.display());
    if no_wait {
        println!("--no-wait: stopping every process");
        return Ok(());
    }
    println!("everything keeps running; Ctrl-C stops it all");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        for (name, child) in &mut procs.0 {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}); see {}", demo.log(name).display());
            }
        }
    }
}
