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

/// Installs the global tracing subscriber (stderr). `RUST_LOG` overrides `--log-level`.
pub fn init(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(args.log_level.to_ascii_lowercase())
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // a second init (tests) keeps the first subscriber
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
