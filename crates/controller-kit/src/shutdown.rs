//! Graceful shutdown on SIGTERM (Kubernetes) or SIGINT (Ctrl-C), bounded in time.
//!
//! [`on_signal`] registers the handlers at once (a signal that arrives during key generation or
//! the first list is not lost) and returns a [`CancellationToken`] that every phase of a
//! controller selects on. [`run_main`] runs the controller's async main on a runtime whose
//! shutdown does not wait for blocking work (key generation, say) past a short deadline, so the
//! process always exits soon after the signal.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
pub use tokio_util::sync::CancellationToken;

/// How long the runtime waits for blocking tasks once the async main has returned.
pub const BLOCKING_GRACE: Duration = Duration::from_millis(500);

/// Returns a token cancelled on the first SIGTERM or SIGINT. A second signal exits the process
/// at once with status 130, for a human who does not want to wait.
///
/// Must be called inside a Tokio runtime. The handlers are registered before this returns.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "graceful shutdown requested");
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    Ok(token)
}

/// Runs `main` on a multi-threaded runtime and turns its result into the process exit code:
/// `Ok(code)` as is, an error logged and mapped to 1. Blocking tasks still running afterwards
/// get [`BLOCKING_GRACE`], then the process exits regardless.
pub fn run_main<F, Fut>(main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(main());
    runtime.shutdown_timeout(BLOCKING_GRACE);
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting on error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `fut` unless `token` is cancelled first; `None` when it was.
pub async fn unless_cancelled<T>(
    token: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = token.cancelled() => None,
        v = fut => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unless_cancelled_stops_a_pending_future() {
        let token = CancellationToken::new();
        let stopper = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        let out = unless_cancelled(&token, std::future::pending::<()>()).await;
        assert!(out.is_none());
        assert_eq!(
            unless_cancelled(&CancellationToken::new(), async { 7 }).await,
            Some(7)
        );
    }
}
