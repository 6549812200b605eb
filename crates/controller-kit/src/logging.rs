//! Log flags shared by every controller, and tracing setup.

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--log-level` and `--log-format`.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Minimum level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Targets kept at `info` whatever the level: at `debug` kube's client logs every refused
/// request's Status whole, and an API server's validation message quotes the value it
/// refused, which may be a secret.
const QUIET: &[&str] = &["kube_client::client=info"];

/// The filter for `args` (or `RUST_LOG`), with [`QUIET`] appended.
fn filter(args: &LogArgs) -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(args.log_level.to_ascii_lowercase())
    });
    for directive in QUIET {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs the global tracing subscriber (stderr). `RUST_LOG` overrides `--log-level`;
/// kube's client never logs below `info` (its debug lines can quote secret values).
pub fn init(args: &LogArgs) {
    let filter = filter(args);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // a second init (tests) keeps the first subscriber
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_client_stays_at_info_at_every_level() {
        for level in ["debug", "trace", "kube_client=trace"] {
            let text = filter(&LogArgs {
                log_level: level.into(),
                log_format: LogFormat::Text,
            })
            .to_string();
            assert!(text.contains("kube_client::client=info"), "{level}: {text}");
        }
    }
}
