//! Where a PushSecret's values come from (`spec.selector`): one Secret by name, every Secret
//! of the namespace a label selector matches (each pushed in turn, by name order, as upstream
//! pushes each listed Secret), or a generator run for the push.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use strongroom_core::crd::external_secrets::{GeneratorRef, PushSecretSelector};
use strongroom_provider_api::SecretBytes;

use crate::context::Context;
use crate::error::Error;

/// What `spec.selector` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SourceSpec<'a> {
    /// One Secret by name.
    Named(&'a str),
    /// The Secrets whose labels match.
    Selected(&'a LabelSelector),
    /// A generator's output.
    Generator(&'a GeneratorRef),
}

impl<'a> SourceSpec<'a> {
    /// The source `selector` names; a name wins over a generator, a generator over a label
    /// selector (upstream's order).
    pub fn of(selector: &'a PushSecretSelector) -> Result<Self, Error> {
        let secret = selector.secret.as_ref();
        if let Some(name) = secret
            .and_then(|s| s.name.as_deref())
            .filter(|n| !n.is_empty())
        {
            return Ok(Self::Named(name));
        }
        if let Some(generator) = &selector.generator_ref {
            return Ok(Self::Generator(generator));
        }
        if let Some(labels) = secret.and_then(|s| s.selector.as_ref()) {
            return Ok(Self::Selected(labels));
        }
        Err(Error::InvalidSpec(
            "spec.selector needs secret.name, secret.selector or generatorRef".into(),
        ))
    }
}

/// One set of values to push.
pub struct Source {
    /// `Secret "name"` or `Password "name"` (for messages).
    pub label: String,
    /// Its data.
    pub values: BTreeMap<String, SecretBytes>,
}

fn of_secret(secret: &Secret) -> Source {
    Source {
        label: format!("Secret {:?}", secret.name_any()),
        values: secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, SecretBytes::new(v.0)))
            .collect(),
    }
}

/// The values `spec` selects, for the PushSecret `owner` in `namespace`: `None` when the Secret
/// named by `secret.name` does not exist. A label selector that matches nothing gives no
/// source (not an error, as upstream).
pub async fn resolve(
    ctx: &Context,
    namespace: &str,
    owner: &str,
    spec: SourceSpec<'_>,
) -> Result<Option<Vec<Source>>, Error> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    match spec {
        SourceSpec::Named(name) => Ok(secrets
            .get_opt(name)
            .await
            .map_err(Error::kube("read the source Secret"))?
            .map(|secret| vec![of_secret(&secret)])),
        SourceSpec::Selected(labels) => {
            let selector = Selector::try_from(labels.clone())
                .map_err(|e| Error::InvalidSpec(format!("spec.selector.secret.selector: {e}")))?;
            let mut found = secrets
                .list(&ListParams::default().labels_from(&selector))
                .await
                .map_err(Error::kube("list the source Secrets"))?
                .items;
            found.sort_by_key(|s| s.name_any());
            Ok(Some(found.iter().map(of_secret).collect()))
        }
        SourceSpec::Generator(generator) => {
            // As upstream, a PushSecret keeps no GeneratorState: what it pushed is the
            // remote side's to keep, so a lease behind it is not revoked here.
            let mut unrecorded = None;
            let values = crate::generators::generate(
                &ctx.stores,
                namespace,
                &format!("PushSecret/{owner}"),
                generator,
                &mut unrecorded,
            )
            .await
            .map_err(|message| Error::Value {
                at: "spec.selector.generatorRef".into(),
                message,
            })?;
            Ok(Some(vec![Source {
                label: format!("{} {:?}", generator.kind, generator.name),
                values,
            }]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::PushSecretSecret;

    #[test]
    fn selector_precedence() {
        let labels = LabelSelector::default();
        let generator = GeneratorRef {
            kind: "Password".into(),
            name: "pw".into(),
            ..Default::default()
        };
        let with = |name: Option<&str>, selector: bool, generator_ref: bool| PushSecretSelector {
            secret: (name.is_some() || selector).then(|| PushSecretSecret {
                name: name.map(str::to_string),
                selector: selector.then(|| labels.clone()),
            }),
            generator_ref: generator_ref.then(|| generator.clone()),
        };
        let named = with(Some("s"), true, true);
        assert_eq!(SourceSpec::of(&named).ok(), Some(SourceSpec::Named("s")));
        let generated = with(None, true, true);
        assert_eq!(
            SourceSpec::of(&generated).ok(),
            Some(SourceSpec::Generator(&generator))
        );
        let selected = with(Some(""), true, false);
        assert_eq!(
            SourceSpec::of(&selected).ok(),
            Some(SourceSpec::Selected(&labels))
        );
        assert!(SourceSpec::of(&with(None, false, false)).is_err());
    }
}
