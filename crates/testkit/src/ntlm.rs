//! A real NTLM acceptor over HTTP: `python/ntlm_server.py` (pyspnego's NTLM acceptor behind a
//! small keep-alive HTTP server), run with the backends venv's Python (`cargo xtask tools`
//! installs pyspnego there). See the script for the protocol it speaks and what it logs.

use crate::backends::bin_dir;
use crate::{Process, free_port, repo_root};

/// One request as the server logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The TCP connection's number (1, 2, ... in the order the server accepted them).
    pub conn: u64,
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// What `Authorization` carried: `none`, `Basic`, `NTLM-negotiate`, `NTLM-authenticate`,
    /// `Negotiate-negotiate`, ...
    pub auth: String,
    /// The status answered.
    pub status: u16,
    /// The authenticated user (`DOMAIN\user`), when authenticated.
    pub user: Option<String>,
}

/// A running NTLM server.
pub struct NtlmServer {
    /// The server process (killed when dropped).
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The value its JSON answers carry (`"value"`; `"token"` is this plus `-token`).
    pub value: String,
}

/// How to start an [`NtlmServer`].
#[derive(Debug, Clone)]
pub struct NtlmOptions {
    /// `(domain, user, password)` accepted; domain `@HOST` is the server's own target name
    /// (the domain of a user name written without one).
    pub users: Vec<(String, String, String)>,
    /// The value answered.
    pub value: String,
    /// The schemes a 401 offers (`NTLM`, `Negotiate`, `Basic`).
    pub offer: Vec<String>,
    /// Accept `Authorization: Basic` with a listed user's password.
    pub basic: bool,
    /// Close the connection after the 401 to a request without `Authorization`
    /// (`Connection: close`).
    pub close_anonymous: bool,
}

impl NtlmOptions {
    /// A server offering NTLM to `users`, answering `value`.
    pub fn new(users: &[(&str, &str, &str)], value: &str) -> Self {
        Self {
            users: users
                .iter()
                .map(|(d, u, p)| (d.to_string(), u.to_string(), p.to_string()))
                .collect(),
            value: value.to_string(),
            offer: vec!["NTLM".into()],
            basic: false,
            close_anonymous: false,
        }
    }
}

impl NtlmServer {
    /// Starts the server on a free loopback port and waits until it answers.
    pub async fn start(options: &NtlmOptions) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir();
        let users = dir.join(format!("ntlm-users-{port}.txt"));
        let lines: String = options
            .users
            .iter()
            .map(|(d, u, p)| format!("{d}:{u}:{p}\n"))
            .collect();
        std::fs::write(&users, lines).unwrap();
        let script = repo_root().join("crates/testkit/python/ntlm_server.py");
        let mut args = vec![
            script.display().to_string(),
            "--port".into(),
            port.to_string(),
            "--users".into(),
            users.display().to_string(),
            "--value".into(),
            options.value.clone(),
            "--offer".into(),
            options.offer.join(","),
        ];
        if options.basic {
            args.push("--basic".into());
        }
        if options.close_anonymous {
            args.push("--close-anonymous".into());
        }
        let process = Process::spawn(
            bin_dir().join("python").to_str().unwrap(),
            &args,
            &[],
            dir.join(format!("ntlm-server-{port}.log")),
        );
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if crate::http_try(&format!("{url}/healthz")).await == Some(200) {
                let _ = std::fs::remove_file(&users);
                return Self {
                    process,
                    url,
                    value: options.value.clone(),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the NTLM server did not start (is pyspnego installed? run `cargo xtask tools`): {}",
            process.log_text()
        );
    }

    /// The requests logged so far (health checks left out), in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.process
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("conn").is_some() && v.get("method").is_some())
            .filter(|v| v["path"] != "/healthz")
            .map(|v| Logged {
                conn: v["conn"].as_u64().unwrap_or_default(),
                method: v["method"].as_str().unwrap_or_default().to_string(),
                path: v["path"].as_str().unwrap_or_default().to_string(),
                auth: v["auth"].as_str().unwrap_or_default().to_string(),
                status: v["status"].as_u64().unwrap_or_default() as u16,
                user: v["user"].as_str().map(str::to_string),
            })
            .collect()
    }

    /// The server's whole log (requests and refusals, never a token or password).
    pub fn log(&self) -> String {
        self.process.log_text()
    }
}
