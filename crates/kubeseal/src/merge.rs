//! `--merge-into FILE`: seal the input under FILE's name and namespace and merge the result
//! into FILE in place.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use strongroom_core::sealing::PublicSealingKey;

use crate::cli::Format;
use crate::documents::{expect_kind, is_json, parse_all, render, write_atomic};
use crate::error::{Error, Result};
use crate::seal::{SealOptions, seal_secret};

/// Seals `secret` into the SealedSecret stored in `file`.
pub fn merge_into(
    file: &Path,
    mut secret: Secret,
    key: &PublicSealingKey,
    opts: &SealOptions,
) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(Error::io(file))?;
    let name = file.display().to_string();
    let mut docs = parse_all(&text, &name)?;
    if docs.len() != 1 {
        return Err(Error::Usage(format!(
            "{name}: --merge-into needs a file with exactly one SealedSecret, found {}",
            docs.len()
        )));
    }
    let mut target = docs.remove(0);
    expect_kind(
        &target,
        "bitnami.com/v1alpha1",
        "SealedSecret",
        "a SealedSecret",
        &name,
        1,
    )?;
    let meta_str = |field: &str| {
        target
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    secret.metadata.name = meta_str("name");
    secret.metadata.namespace = meta_str("namespace");
    let opts = SealOptions {
        name: None,
        namespace_flag: None,
        ..opts.clone()
    };
    let sealed = seal_secret(&secret, key, &opts)?;
    merge_object(&mut target, "/spec/encryptedData", &sealed);
    merge_object(&mut target, "/spec/template/metadata/labels", &sealed);
    merge_object(&mut target, "/spec/template/metadata/annotations", &sealed);
    merge_object(&mut target, "/spec/template/data", &sealed);
    let format = if is_json(&text) {
        Format::Json
    } else {
        Format::Yaml
    };
    write_atomic(file, &render(&[target], format)?)
}

/// Copies every key of `from`'s object at `pointer` into `into`'s, creating it if needed.
fn merge_object(into: &mut Value, pointer: &str, from: &Value) {
    let Some(Value::Object(source)) = from.pointer(pointer) else {
        return;
    };
    let mut cursor = into;
    for part in pointer.trim_start_matches('/').split('/') {
        let Value::Object(map) = cursor else { return };
        cursor = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if cursor.is_null() {
            *cursor = Value::Object(Default::default());
        }
    }
    if let Value::Object(target) = cursor {
        for (k, v) in source {
            target.insert(k.clone(), v.clone());
        }
    }
}
