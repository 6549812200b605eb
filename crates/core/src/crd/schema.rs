//! Schema helpers for fields Kubernetes must store without pruning.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Adds `x-kubernetes-preserve-unknown-fields: true` to a generated object schema, so fields
/// this version does not model (newer upstream fields, other providers) survive a round trip.
pub fn preserve_unknown_fields(schema: &mut Schema) {
    schema.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
}

/// An object whose content is kept as-is: used for upstream blocks Strongroom does not
/// interpret yet. The controller reports them as unsupported instead of failing to read them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct Unmodelled(pub BTreeMap<String, serde_json::Value>);

impl JsonSchema for Unmodelled {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Unmodelled".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// Upstream's pattern for object names (DNS-1123 subdomain).
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Upstream's pattern for namespaces (DNS-1123 label).
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Upstream's pattern for Secret and ConfigMap keys.
pub const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";

/// An object whose content is kept as-is, with the fields upstream requires at its top level.
/// Used for generator specs Strongroom does not interpret.
macro_rules! unmodelled_with_required {
    ($(#[$attr:meta])* $name:ident, [$($req:literal),*]) => {
        $(#[$attr])*
        #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
        #[serde(transparent)]
        pub struct $name(pub std::collections::BTreeMap<String, serde_json::Value>);

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let required: Vec<&str> = vec![$($req),*];
                let mut s = schemars::json_schema!({
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                });
                if !required.is_empty() {
                    let props: serde_json::Map<String, serde_json::Value> = required
                        .iter()
                        .map(|r| {
                            (
                                r.to_string(),
                                serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}),
                            )
                        })
                        .collect();
                    s.insert("properties".into(), props.into());
                    s.insert("required".into(), required.into());
                }
                s
            }
        }
    };
}
pub(crate) use unmodelled_with_required;
