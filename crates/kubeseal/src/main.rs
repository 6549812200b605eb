//! `kubeseal`: seal Kubernetes Secrets for the sealed-secrets controller, flag-compatible with
//! upstream's CLI. Offline mode (`--cert`), raw values, merge-into and recovery unseal.
#![forbid(unsafe_code)]

mod certificate;
mod cli;
mod documents;
mod error;
mod kubeconfig;
mod merge;
mod recovery;
mod seal;

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;

use cli::Args;
use documents::{expect_kind, output_format, parse_all, read_input, render, write_output};
use error::{Error, Result};
use seal::{SealOptions, seal_raw, seal_secret, secret_from_value};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.version {
        println!("kubeseal version: {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if args.needs_controller() {
        let flag = if args.validate {
            "--validate"
        } else if args.re_encrypt {
            "--re-encrypt"
        } else {
            "--fetch-cert without --cert"
        };
        return Err(Error::NeedsController { flag });
    }
    if args.recovery_unseal {
        let ring = recovery::load_keys(&args.recovery_private_key)?;
        let (text, name) = read_input(args.secret_file.as_deref())?;
        let secrets = recovery::unseal_all(&text, &name, &ring)?;
        let out = args.sealed_secret_file.as_deref();
        return write_output(out, &render(&secrets, output_format(args.format, out))?);
    }
    if args.cert.is_empty() {
        return Err(Error::NoCertificate);
    }
    if args.fetch_cert {
        return write_output(
            args.sealed_secret_file.as_deref(),
            &certificate::read_pem(&args.cert)?,
        );
    }
    if !args.from_file.is_empty() && !args.raw {
        return Err(Error::Usage("--from-file requires --raw".into()));
    }
    let cert = certificate::load(&args.cert, args.allow_expired_cert)?;
    let opts = SealOptions {
        scope: args.scope,
        name: Some(args.name.clone()).filter(|n| !n.is_empty()),
        namespace_flag: Some(args.namespace.clone()).filter(|n| !n.is_empty()),
        fallback_namespace: kubeconfig::context_namespace(&args.kubeconfig, &args.context)
            .unwrap_or_else(|| "default".to_string()),
        allow_empty_data: args.allow_empty_data,
    };
    if args.raw {
        return run_raw(args, &cert.key, &opts);
    }
    let (text, source_name) = read_input(args.secret_file.as_deref())?;
    let docs = parse_all(&text, &source_name)?;
    let mut secrets = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        expect_kind(&doc, "v1", "Secret", "a v1 Secret", &source_name, i + 1)?;
        secrets.push(secret_from_value(doc, &source_name, i + 1)?);
    }
    if let Some(file) = &args.merge_into {
        let [secret] = <[_; 1]>::try_from(secrets).map_err(|s: Vec<_>| {
            Error::Usage(format!(
                "--merge-into takes exactly one input Secret, got {}",
                s.len()
            ))
        })?;
        return merge::merge_into(file, secret, &cert.key, &opts);
    }
    let sealed = secrets
        .iter()
        .map(|s| seal_secret(s, &cert.key, &opts))
        .collect::<Result<Vec<_>>>()?;
    let out = args.sealed_secret_file.as_deref();
    write_output(out, &render(&sealed, output_format(args.format, out))?)
}

fn run_raw(
    args: &Args,
    key: &strongroom_core::sealing::PublicSealingKey,
    opts: &SealOptions,
) -> Result<()> {
    let value = match args.from_file.as_slice() {
        [] => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(Error::Stdin)?;
            buf
        }
        [one] => {
            let path = one.split_once('=').map_or(one.as_str(), |(_, p)| p);
            std::fs::read(path).map_err(Error::io(path))?
        }
        _ => {
            return Err(Error::Usage("--raw takes a single --from-file".to_string()));
        }
    };
    let scope = opts.scope.unwrap_or_default();
    let namespace = opts
        .namespace_flag
        .clone()
        .unwrap_or_else(|| opts.fallback_namespace.clone());
    let name = opts.name.clone().unwrap_or_default();
    let sealed = seal_raw(&value, key, scope, &name, &namespace)?;
    write_output(args.sealed_secret_file.as_deref(), &sealed)
}
