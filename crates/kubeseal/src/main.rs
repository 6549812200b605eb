//! `kubeseal`: seal Kubernetes Secrets for the sealed-secrets controller, flag-compatible with
//! upstream's CLI. Offline mode (`--cert`), raw values, merge-into and recovery unseal.
#![forbid(unsafe_code)]

mod bounded;
mod certificate;
mod cli;
mod documents;
mod error;
mod kubeconfig;
mod merge;
mod online;
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
    if args.recovery_unseal {
        let ring = recovery::load_keys(&args.recovery_private_key)?;
        let (text, name) = read_input(args.secret_file.as_deref())?;
        let secrets = recovery::unseal_all(&text, &name, &ring)?;
        let out = args.sealed_secret_file.as_deref();
        return write_output(out, &render(&secrets, output_format(args.format, out))?);
    }
    if args.validate || args.re_encrypt {
        return run_against_controller(args);
    }
    if args.fetch_cert {
        let pem = if args.cert.is_empty() {
            online::Controller::connect(args)?.fetch_cert()?
        } else {
            certificate::read_pem(&args.cert)?
        };
        return write_output(args.sealed_secret_file.as_deref(), &pem);
    }
    if !args.from_file.is_empty() && !args.raw {
        return Err(Error::Usage("--from-file requires --raw".into()));
    }
    let cert = if args.cert.is_empty() {
        let pem = online::Controller::connect(args)?.fetch_cert()?;
        certificate::check(
            &pem,
            "the controller's certificate",
            args.allow_expired_cert,
        )?
    } else {
        certificate::load(&args.cert, args.allow_expired_cert)?
    };
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

/// `--validate` and `--re-encrypt`: each input SealedSecret goes to the controller.
fn run_against_controller(args: &Args) -> Result<()> {
    let controller = online::Controller::connect(args)?;
    let (text, source_name) = read_input(args.secret_file.as_deref())?;
    let docs = parse_all(&text, &source_name)?;
    let mut rotated = Vec::new();
    for (i, mut doc) in docs.into_iter().enumerate() {
        expect_kind(
            &doc,
            "bitnami.com/v1alpha1",
            "SealedSecret",
            "a SealedSecret",
            &source_name,
            i + 1,
        )?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        if args.validate {
            if !controller.verify(&doc)? {
                return Err(Error::Usage(format!(
                    "unable to decrypt sealed secret: {name}"
                )));
            }
            continue;
        }
        if let Some(meta) = doc
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            for field in ["creationTimestamp", "deletionTimestamp", "generation"] {
                meta.remove(field);
            }
        }
        let mut out = controller.rotate(&doc)?;
        out["apiVersion"] = serde_json::json!("bitnami.com/v1alpha1");
        out["kind"] = serde_json::json!("SealedSecret");
        rotated.push(out);
    }
    if args.validate {
        return Ok(());
    }
    // with only -f, the file is rewritten in place, as upstream
    let out = args
        .sealed_secret_file
        .as_deref()
        .or(args.secret_file.as_deref());
    let format = match (
        args.sealed_secret_file.as_deref(),
        args.secret_file.as_deref(),
    ) {
        (None, Some(_)) if !documents::is_json(&text) => cli::Format::Yaml,
        _ => output_format(args.format, out),
    };
    write_output(out, &render(&rotated, format)?)
}
