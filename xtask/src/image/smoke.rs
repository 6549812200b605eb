//! Runs an image without a container engine: `umoci unpack` makes a runtime bundle, and
//! `runc` runs it as the image's user on a read-only root (a tmpfs on `/tmp`), in a network
//! namespace of its own where devcluster serves the Kubernetes API. Checks `--help` and
//! `/healthz` on the controller's default port from inside that namespace.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use super::verify::run as ok;
use super::{Controller, TAG};

/// Stops what the smoke test started, whatever happens.
struct Cleanup {
    netns: String,
    container: String,
    devcluster: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.container])
            .output();
        if let Some(mut c) = self.devcluster.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .output();
    }
}

/// `GET http://127.0.0.1:<port><path>` from inside `netns` (bash's /dev/tcp: nothing to install).
fn get_in(netns: &str, port: u16, path: &str) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && timeout 5 cat <&3"
    );
    Command::new("ip")
        .args(["netns", "exec", netns, "bash", "-c", &script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Edits the bundle's `config.json` for one run.
fn configure(
    bundle: &Path,
    args: &[&str],
    env: &[String],
    netns: Option<&str>,
    mounts: &[Value],
) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    if let Some(list) = config["process"]["env"].as_array_mut() {
        list.extend(env.iter().map(|e| json!(e)));
    }
    config["root"]["readonly"] = json!(true);
    let mut all_mounts = config["mounts"].as_array().cloned().unwrap_or_default();
    all_mounts.push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=64m"]}),
    );
    all_mounts.extend(mounts.iter().cloned());
    config["mounts"] = json!(all_mounts);
    if let Some(ns) = netns {
        let namespaces = config["linux"]["namespaces"]
            .as_array_mut()
            .context("no namespaces")?;
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(json!({"type": "network", "path": format!("/var/run/netns/{ns}")}));
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// The smoke test of controller `c`'s image in `target/oci/<id>`.
pub fn run(root: &Path, c: &Controller) -> anyhow::Result<()> {
    for tool in ["umoci", "runc", "ip"] {
        ensure!(
            Command::new(tool).arg("--version").output().is_ok()
                || Command::new(tool).arg("-V").output().is_ok(),
            "the smoke test needs {tool}: apt-get install umoci runc iproute2"
        );
    }
    let target = crate::target_dir(root);
    let work = target.join("oci/run").join(c.id);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let bundle = work.join("bundle");
    let layout = target.join("oci").join(c.id);
    ok(Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:{TAG}", layout.display())])
        .arg(&bundle))?;
    let pristine = std::fs::read(bundle.join("config.json"))?;
    let entrypoint = format!("/usr/local/bin/{}", c.binary);
    let container = format!("strongroom-smoke-{}", c.id);
    let netns = format!("strongroom-smoke-{}", c.id);
    let mut cleanup = Cleanup {
        netns: netns.clone(),
        container: container.clone(),
        devcluster: None,
    };
    let _ = Command::new("runc")
        .args(["delete", "--force", &container])
        .output();
    let _ = Command::new("ip")
        .args(["netns", "delete", &netns])
        .output();

    // 1. --help, as the image's user on a read-only root
    configure(&bundle, &[&entrypoint, "--help"], &[], None, &[])?;
    let help = ok(Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&container))?;
    ensure!(help.contains("Usage:"), "--help printed no usage: {help}");

    // 2. the controller against devcluster in a network namespace of its own
    ok(Command::new("ip").args(["netns", "add", &netns]))?;
    ok(Command::new("ip").args(["netns", "exec", &netns, "ip", "link", "set", "lo", "up"]))?;
    let kubeconfig = work.join("kubeconfig");
    let devcluster_log = std::fs::File::create(work.join("devcluster.log"))?;
    cleanup.devcluster = Some(
        Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(target.join("debug/devcluster"))
            .args(["--listen", "127.0.0.1:6443", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(devcluster_log)
            .spawn()
            .context("starting devcluster (cargo build -p strongroom-devcluster)")?,
    );
    let kubectl = crate::tools::ensure_kube_tools(root)?.join("kubectl");
    let started = Instant::now();
    while !kubeconfig.exists() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!(
                "devcluster did not start: see {}",
                work.join("devcluster.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["create", "-f"])
        .arg(root.join("deploy/crds")))?;
    // the controller reads it as the image's user, as a pod reads its mounted token
    let readable = work.join("kubeconfig-for-container");
    std::fs::copy(&kubeconfig, &readable)?;
    std::os::unix::fs::chown(&readable, Some(c.uid), Some(c.uid))?;
    std::fs::write(bundle.join("config.json"), &pristine)?;
    configure(
        &bundle,
        &[&entrypoint],
        &[
            "KUBECONFIG=/etc/kubeconfig".into(),
            "POD_NAMESPACE=kube-system".into(),
        ],
        Some(&netns),
        &[json!({"destination": "/etc/kubeconfig", "type": "bind",
            "source": readable.display().to_string(), "options": ["rbind", "ro"]})],
    )?;
    let log_path = work.join(format!("{}.log", c.id));
    let log = std::fs::File::create(&log_path)?;
    let mut controller = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&container)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let started = Instant::now();
    let healthy = loop {
        let reply = get_in(&netns, c.health_port, "/healthz").unwrap_or_default();
        if reply.starts_with("HTTP/1.") && reply.contains(" 200 ") {
            break true;
        }
        if controller.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("runc")
        .args(["kill", &container, "TERM"])
        .output();
    let stopped = Instant::now();
    while controller.try_wait()?.is_none() && stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = controller.kill();
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    ensure!(
        healthy,
        "/healthz on port {} never answered 200; the container's log:\n{log_text}",
        c.health_port
    );
    println!(
        "smoke {}: --help and /healthz answered as uid {} on a read-only root (log: {})",
        c.id,
        c.uid,
        log_path.display()
    );
    Ok(())
}
