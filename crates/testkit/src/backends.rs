//! The real provider backends, started per test on a free loopback port: moto (AWS Secrets
//! Manager, SSM, STS) and OpenBao (the Vault API). `cargo xtask tools` installs both into
//! `target/tools/backends` (the README's test command runs it first).
//!
//! Each is a [`Process`]: killed when dropped, and [`Process::signal`] stops and resumes it
//! for outage tests.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Process, free_port, repo_root};

/// The backends venv's `bin` directory (`STRONGROOM_TOOLS/backends/bin`).
pub fn bin_dir() -> PathBuf {
    let tools = std::env::var_os("STRONGROOM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/tools"));
    let dir = tools.join("backends/bin");
    assert!(
        dir.join("moto_server").exists() && dir.join("bao").exists(),
        "the provider backends are not installed in {}: run `cargo xtask tools`",
        dir.display()
    );
    dir
}

/// A moto server: the AWS APIs on `endpoint`. Any credentials work; signatures are not checked.
pub struct Moto {
    /// The server process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let process = Process::spawn(
            bin_dir().join("moto_server").to_str().unwrap(),
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            &[],
            log,
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{endpoint}/moto-api/"), &process, "moto").await;
        Self { process, endpoint }
    }

    /// The request lines moto logged so far, in order (`... "POST / HTTP/1.1" 200 -`): a
    /// server-side count of calls, for benchmarks and call-count tests.
    pub fn requests(&self) -> Vec<String> {
        self.process
            .log_text()
            .lines()
            .filter(|l| l.contains("\"POST ") || l.contains("\"GET "))
            .map(str::to_string)
            .collect()
    }

    /// Clears every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) {
        let (code, _) =
            crate::http(&format!("{}/moto-api/reset", self.endpoint), "POST", None).await;
        assert_eq!(code, 200, "moto reset failed");
    }
}

/// The HTTPS listener of [`OpenBao::start_audited_with_tls`].
pub struct TlsListener {
    /// The server certificate (for 127.0.0.1) and key.
    pub server: crate::pki::CertifiedKey,
    /// The CA client certificates must chain to (`tls_client_ca_file`).
    pub client_ca_pem: Option<String>,
    /// Refuse connections without a valid client certificate
    /// (`tls_require_and_verify_client_cert`).
    pub require_client_cert: bool,
}

/// An OpenBao dev server (the Vault API) on `addr`, unsealed, with root token [`OpenBao::ROOT`]
/// and KV v2 mounted at `secret/`.
pub struct OpenBao {
    /// The server process.
    pub process: Process,
    /// `http://127.0.0.1:PORT` (`https://` for [`OpenBao::start_tls`]).
    pub addr: String,
    /// The CA PEM that signed the server certificate ([`OpenBao::start_tls`] only).
    pub ca_pem: Option<String>,
}

impl OpenBao {
    /// The dev server's root token.
    pub const ROOT: &'static str = "root";

    /// Starts OpenBao in dev mode and waits until it is unsealed. Dev mode also binds the
    /// cluster port (PORT+1), so the port pair is chosen free.
    pub async fn start() -> Self {
        Self::spawn(&|_| String::new(), false).await
    }

    /// Starts OpenBao as [`OpenBao::start`] behind TLS (`-dev-tls`: a fresh CA and server
    /// certificate for 127.0.0.1). The listener asks clients for a certificate, so TLS
    /// certificate logins work. `ca_pem` holds the CA.
    pub async fn start_tls() -> Self {
        Self::spawn(&|_| String::new(), true).await
    }

    /// Starts OpenBao as [`OpenBao::start`] with a file audit device writing one JSON line per
    /// request and response to the returned path: a server-side count of calls. OpenBao 2
    /// enables audit devices only from its configuration (`bao audit enable` is refused).
    pub async fn start_audited() -> (Self, PathBuf) {
        let log = Self::audit_log_path();
        let audit = Self::audit_config(&log);
        (Self::spawn(&|_| audit.clone(), false).await, log)
    }

    /// Starts OpenBao as [`OpenBao::start_audited`] on integrated (raft) storage, a single
    /// node in a fresh directory. Only then does it answer writes with the `X-Vault-Index`
    /// header of read-your-writes consistency.
    pub async fn start_audited_on_raft() -> (Self, PathBuf) {
        let log = Self::audit_log_path();
        let audit = Self::audit_config(&log);
        let data = log.with_extension("raft");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let config = move |port: u16| {
            format!(
                "{audit}storage \"raft\" {{\n  path = {:?}\n  node_id = \"n1\"\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\n\
                 cluster_addr = \"http://127.0.0.1:{}\"\n",
                data.display().to_string(),
                port + 1
            )
        };
        (Self::spawn(&config, false).await, log)
    }

    /// Starts OpenBao as [`OpenBao::start_audited`] with a second, HTTPS listener beside the
    /// dev one (which [`OpenBao::cli`] keeps using): `listener`'s certificate, and client
    /// certificates asked for (any accepted) or, with `require_client_cert`, required and
    /// checked against `client_ca_pem`. Returns the audit log and the listener's
    /// `https://127.0.0.1:PORT`.
    pub async fn start_audited_with_tls(listener: &TlsListener) -> (Self, PathBuf, String) {
        let log = Self::audit_log_path();
        let audit = Self::audit_config(&log);
        let dir = log.with_extension("tls");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path.display().to_string()
        };
        let cert = file("server.pem", &listener.server.cert_pem);
        let key = file("server-key.pem", &listener.server.key_pem);
        let client_ca = match &listener.client_ca_pem {
            Some(pem) => format!("  tls_client_ca_file = {:?}\n", file("client-ca.pem", pem)),
            None => String::new(),
        };
        let tls_port = free_port();
        let config = move |port: u16| {
            assert!(
                port != tls_port && port + 1 != tls_port,
                "port clash, rerun"
            );
            format!(
                "{audit}listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  \
                 tls_cert_file = {cert:?}\n  tls_key_file = {key:?}\n{client_ca}  \
                 tls_require_and_verify_client_cert = {}\n}}\n",
                listener.require_client_cert
            )
        };
        let bao = Self::spawn(&config, false).await;
        let tls_addr = format!("https://127.0.0.1:{tls_port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
                return (bao, log, tls_addr);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "OpenBao did not listen on {tls_addr}: {}",
            bao.process.log_text()
        );
    }

    /// Every entry (request and response) of an audit log of [`OpenBao::start_audited`], in
    /// order.
    pub fn audit_entries(log: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    fn audit_log_path() -> PathBuf {
        std::env::temp_dir().join(format!(
            "openbao-audit-{}-{}.log",
            std::process::id(),
            free_port()
        ))
    }

    fn audit_config(log: &std::path::Path) -> String {
        format!(
            "audit \"file\" \"file\" {{\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
            log.display().to_string()
        )
    }

    /// Starts the dev server with the configuration `config(port)` (none when empty).
    async fn spawn(config: &dyn Fn(u16) -> String, tls: bool) -> Self {
        let port = loop {
            let p = free_port();
            if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let log = std::env::temp_dir().join(format!("openbao-{port}.log"));
        let mut args = vec![
            "server".into(),
            "-dev".into(),
            format!("-dev-root-token-id={}", Self::ROOT),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let config = config(port);
        if !config.is_empty() {
            let file = std::env::temp_dir().join(format!("openbao-{port}.hcl"));
            std::fs::write(&file, config).unwrap();
            args.push(format!("-config={}", file.display()));
        }
        let cert_dir = std::env::temp_dir().join(format!("openbao-tls-{port}"));
        if tls {
            let _ = std::fs::remove_dir_all(&cert_dir);
            std::fs::create_dir_all(&cert_dir).unwrap();
            args.push("-dev-tls".into());
            args.push(format!("-dev-tls-cert-dir={}", cert_dir.display()));
        }
        let process = Process::spawn(
            bin_dir().join("bao").to_str().unwrap(),
            &args,
            &[("HOME", std::env::temp_dir().display().to_string())],
            log,
        );
        if !tls {
            let addr = format!("http://127.0.0.1:{port}");
            wait_ready(&format!("{addr}/v1/sys/health"), &process, "OpenBao").await;
            return Self {
                process,
                addr,
                ca_pem: None,
            };
        }
        let ca = cert_dir.join("vault-ca.pem");
        for _ in 0..600 {
            if let Ok(pem) = std::fs::read_to_string(&ca) {
                let bao = Self {
                    process,
                    addr: format!("https://127.0.0.1:{port}"),
                    ca_pem: Some(pem),
                };
                // Unsealed and answering: `bao status` exits 0.
                loop {
                    if bao
                        .command(&["status"])
                        .output()
                        .is_ok_and(|o| o.status.success())
                    {
                        return bao;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao (TLS) wrote no CA: {}", process.log_text());
    }

    /// Writes ACL policy `name` from its HCL text.
    pub fn policy(&self, name: &str, hcl: &str) {
        let file = std::env::temp_dir().join(format!(
            "openbao-policy-{name}-{}-{}.hcl",
            std::process::id(),
            free_port()
        ));
        std::fs::write(&file, hcl).unwrap();
        self.cli(&["policy", "write", name, file.to_str().unwrap()]);
    }

    /// Enables AppRole at `approle/` with role `role` (token policies `policies`, token TTL
    /// `ttl`). Returns its role id and a new secret id.
    pub fn approle(&self, role: &str, policies: &str, ttl: &str) -> (String, String) {
        self.cli(&["auth", "enable", "approle"]);
        let path = format!("auth/approle/role/{role}");
        self.cli(&[
            "write",
            &path,
            &format!("token_policies={policies}"),
            &format!("token_ttl={ttl}"),
        ]);
        let role_id = self.cli(&["read", "-field=role_id", &format!("{path}/role-id")]);
        let secret_id = self.cli(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("{path}/secret-id"),
        ]);
        (role_id.trim().to_string(), secret_id.trim().to_string())
    }

    /// Requests to `path` (e.g. `auth/approle/login`) in an audit log of
    /// [`OpenBao::start_audited`].
    pub fn audited(log: &std::path::Path, path: &str) -> usize {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "request" && v["request"]["path"] == path)
            .count()
    }

    /// `bao args` against this server as root (trusting its CA when it has one).
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(bin_dir().join("bao"));
        command
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", Self::ROOT)
            .env("HOME", std::env::temp_dir());
        if self.ca_pem.is_some()
            && let Some(port) = self.addr.rsplit(':').next()
        {
            let ca = std::env::temp_dir().join(format!("openbao-tls-{port}/vault-ca.pem"));
            command.env("BAO_CACERT", ca);
        }
        command
    }

    /// Runs `bao` with `args` against this server as root; panics with its output on failure.
    /// Returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Polls `url` until it answers 200 (up to 60 s); panics with the backend's log otherwise.
async fn wait_ready(url: &str, process: &Process, what: &str) {
    for _ in 0..600 {
        if crate::http_try(url).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} did not become ready at {url}: {}",
        process.log_text()
    );
}
