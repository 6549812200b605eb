//! The JSON form of k8s-pb messages: the `ToJson` trait, the helpers the generated impls
//! (`json_gen.rs`) call, and the types whose JSON differs from their message (times,
//! quantities, int-or-string, raw JSON, the CRD schema unions).

use base64::Engine;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

/// A message or scalar in its Kubernetes JSON form; `Null` means "leave the field out".
pub(crate) trait ToJson {
    /// Converts into JSON.
    fn to_json(self) -> Value;
}

/// A scalar whose Go zero value (`""`, `0`, `false`) can be told apart.
pub(crate) trait Scalar: ToJson {
    /// Whether this is the Go zero value.
    fn is_zero(&self) -> bool;
}

macro_rules! scalar {
    ($($t:ty => $zero:expr),*) => {$(
        impl ToJson for $t {
            fn to_json(self) -> Value {
                json!(self)
            }
        }
        impl Scalar for $t {
            fn is_zero(&self) -> bool {
                *self == $zero
            }
        }
    )*};
}
scalar!(String => "", i32 => 0, i64 => 0, bool => false, f64 => 0.0);

/// Sets a scalar field. Protobuf carries every non-pointer Go field, so a zero value is left
/// out (Go's `omitempty`) unless `keep_zero` says the field is a pointer or required.
pub(crate) fn put_scalar<T: Scalar>(
    m: &mut Map<String, Value>,
    key: &str,
    v: Option<T>,
    keep_zero: bool,
) {
    if let Some(v) = v.filter(|v| keep_zero || !v.is_zero()) {
        m.insert(key.into(), v.to_json());
    }
}

/// Sets a message field (present messages are kept even when empty, as Go prints `{}`).
pub(crate) fn put_msg<T: ToJson>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v.map(ToJson::to_json).filter(|v| !v.is_null()) {
        m.insert(key.into(), v);
    }
}

/// Merges an embedded Go struct's fields into the object.
pub(crate) fn put_inline<T: ToJson>(m: &mut Map<String, Value>, v: Option<T>) {
    if let Some(Value::Object(o)) = v.map(ToJson::to_json) {
        m.extend(o);
    }
}

/// Sets a list field; empty lists are left out.
pub(crate) fn put_list<T: ToJson>(m: &mut Map<String, Value>, key: &str, v: Vec<T>) {
    if !v.is_empty() {
        m.insert(
            key.into(),
            Value::Array(v.into_iter().map(ToJson::to_json).collect()),
        );
    }
}

/// Sets a map field; empty maps are left out.
pub(crate) fn put_map<T: ToJson>(
    m: &mut Map<String, Value>,
    key: &str,
    v: impl IntoIterator<Item = (String, T)>,
) {
    let o: Map<String, Value> = v.into_iter().map(|(k, v)| (k, v.to_json())).collect();
    if !o.is_empty() {
        m.insert(key.into(), Value::Object(o));
    }
}

fn b64(v: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(v))
}

/// Sets a `[]byte` field, base64 as in Go's JSON.
pub(crate) fn put_bytes(m: &mut Map<String, Value>, key: &str, v: Option<Vec<u8>>, keep: bool) {
    if let Some(v) = v.filter(|v| keep || !v.is_empty()) {
        m.insert(key.into(), b64(&v));
    }
}

/// Raw JSON carried in a message (`RawExtension`, `JSON`, `FieldsV1`); unparsable bytes
/// (a client bug) are kept as a string so nothing is silently lost.
fn raw_json(raw: Option<Vec<u8>>) -> Value {
    match raw {
        None => Value::Null,
        Some(r) if r.is_empty() => Value::Null,
        Some(r) => serde_json::from_slice(&r)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r).into_owned())),
    }
}

impl ToJson for meta::Time {
    fn to_json(self) -> Value {
        match self.seconds {
            Some(s) if s != 0 => chrono::DateTime::from_timestamp(s, 0)
                .map(|d| json!(d.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

impl ToJson for meta::MicroTime {
    fn to_json(self) -> Value {
        let nanos = u32::try_from(self.nanos.unwrap_or(0)).unwrap_or(0);
        match self.seconds {
            Some(s) if s != 0 || nanos != 0 => chrono::DateTime::from_timestamp(s, nanos)
                .map(|d| json!(d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

impl ToJson for meta::Duration {
    fn to_json(self) -> Value {
        // Go's time.Duration String(), e.g. "1h2m3s", "1.5s", "0s".
        let n = self.duration.unwrap_or(0);
        json!(go_duration(n))
    }
}

fn go_duration(n: i64) -> String {
    if n == 0 {
        return "0s".into();
    }
    let sign = if n < 0 { "-" } else { "" };
    let u = n.unsigned_abs();
    if u < 1_000_000_000 {
        let (div, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", trim_frac(u, div));
    }
    let (h, rest) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
    let (min, ns) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let secs = trim_frac(ns, 1_000_000_000);
    match (h, min) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

fn trim_frac(v: u64, div: u64) -> String {
    let (whole, frac) = (v / div, v % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

impl ToJson for meta::FieldsV1 {
    fn to_json(self) -> Value {
        raw_json(self.raw)
    }
}

impl ToJson for Quantity {
    fn to_json(self) -> Value {
        json!(self.string.unwrap_or_default())
    }
}

impl ToJson for IntOrString {
    fn to_json(self) -> Value {
        if self.r#type.unwrap_or(0) == 1 {
            json!(self.str_val.unwrap_or_default())
        } else {
            json!(self.int_val.unwrap_or(0))
        }
    }
}

impl ToJson for RawExtension {
    fn to_json(self) -> Value {
        raw_json(self.raw)
    }
}

impl ToJson for apiext::Json {
    fn to_json(self) -> Value {
        raw_json(self.raw)
    }
}

impl ToJson for apiext::JsonSchemaPropsOrArray {
    fn to_json(self) -> Value {
        match self.schema {
            Some(s) => s.to_json(),
            None => Value::Array(
                self.j_son_schemas
                    .into_iter()
                    .map(ToJson::to_json)
                    .collect(),
            ),
        }
    }
}

impl ToJson for apiext::JsonSchemaPropsOrBool {
    fn to_json(self) -> Value {
        match self.schema {
            Some(s) => s.to_json(),
            None => json!(self.allows.unwrap_or(false)),
        }
    }
}

impl ToJson for apiext::JsonSchemaPropsOrStringArray {
    fn to_json(self) -> Value {
        match self.schema {
            Some(s) => s.to_json(),
            None => json!(self.property),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(2_000_000), "2ms");
    }
}
