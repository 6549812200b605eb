//! `devcluster`: run the in-memory Kubernetes API server until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use strongroom_devcluster::{DevCluster, Options};

/// An in-memory Kubernetes API server for demos and tests.
#[derive(Debug, Parser)]
#[command(name = "devcluster", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig once the server is ready.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Admin bearer token (random when not given).
    #[arg(long, env = "DEVCLUSTER_TOKEN")]
    token: Option<String>,
    /// Watch events kept for watches that resume from an older resourceVersion.
    #[arg(long, default_value_t = strongroom_devcluster::store::DEFAULT_HISTORY)]
    history: usize,
    /// Keep the state in DIR across restarts (in memory only when not given).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 30)]
    bookmark_seconds: u64,
    /// Let every authenticated user do anything instead of authorizing by RBAC.
    #[arg(long)]
    no_rbac: bool,
    /// Append each permission a user (but the admin) exercises for the first time to this file,
    /// one JSON line each: compare a controller's usage with the RBAC its chart grants.
    #[arg(long)]
    permission_log: Option<PathBuf>,
    /// Seconds a request that is not long-running may take before it is answered 504 Timeout.
    #[arg(long, default_value_t = 60)]
    request_timeout_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cluster = DevCluster::start(Options {
        listen: args.listen,
        tls: !args.plain_http,
        token: args.token,
        history: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        data_dir: args.data_dir,
        rbac: !args.no_rbac,
        users: Default::default(),
        permission_log: args.permission_log,
        request_timeout: Duration::from_secs(args.request_timeout_seconds.max(1)),
    })
    .await?;
    if let Some(path) = &args.kubeconfig {
        cluster.write_kubeconfig(path)?;
    }
    println!("{}", cluster.url());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = terminate.recv() => {}
    }
    cluster.shutdown();
    Ok(())
}
