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
