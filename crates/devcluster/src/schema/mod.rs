//! Custom resources against their CRD's structural schema, in the real server's order: prune
//! unknown fields (or refuse them with `fieldValidation=Strict`), apply defaults, validate
//! types, formats and limits, then evaluate the `x-kubernetes-validations` CEL rules. Errors are
//! the real 422 with one `details.causes` entry per field.

mod cel;
pub mod duplicates;
mod prune;
mod validate;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::ApiError;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown and duplicate fields are dropped silently.
    Ignore,
    /// Dropped, with a `Warning` header each (the server's default).
    #[default]
    Warn,
    /// Refused with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query value (`Strict`, `Warn`, `Ignore`; empty for the default).
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            "Ignore" => Ok(Self::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// Warnings for the response's `Warning` headers, collected while a request is served.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Adds one warning.
    pub fn push(&self, w: String) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !v.contains(&w) {
            v.push(w);
        }
    }

    /// The warnings so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object property.
    Field(String),
    /// A list index.
    Index(usize),
    /// A key of a map (`additionalProperties`).
    Key(String),
}

/// A field path, printed as the real server does: `spec.items[0].name`, `spec.labels[key]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(Vec<Step>);

impl Path {
    /// The path one step further.
    pub fn child(&self, step: Step) -> Self {
        let mut p = self.0.clone();
        p.push(step);
        Self(p)
    }

    /// Whether this is the object's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at this path in `root`.
    pub fn lookup<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(root, |v, s| match s {
            Step::Field(k) | Step::Key(k) => v.get(k),
            Step::Index(i) => v.get(*i),
        })
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Field(k) if i == 0 => write!(f, "{k}")?,
                Step::Field(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
                Step::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

/// One field error, as `field.Error` in the real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// Where.
    pub field: Path,
    /// The error body, e.g. `Required value` or `Invalid value: "x": ...`.
    pub message: String,
}

/// Renders a value as the real server's `Invalid value: ...` does.
pub fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "\"null\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        Value::Object(_) => "\"object\"".to_string(),
    }
}

impl Cause {
    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: &Path, value: &Value, detail: impl std::fmt::Display) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.clone(),
            message: format!("Invalid value: {}: {detail}", value_repr(value)),
        }
    }

    /// `Required value`.
    pub fn required(field: &Path, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.clone(),
            message,
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: &Path, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.clone(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `<field>: <body>`, as the aggregated message lists it.
    pub fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// The real 422: `<Kind>.<group> "<name>" is invalid: <causes>`.
pub fn invalid(rt: &ResourceType, name: &str, causes: &[Cause]) -> ApiError {
    let kind = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let texts: Vec<String> = causes.iter().map(Cause::text).collect();
    let all = match texts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let mut details = json!({
        "name": name,
        "kind": rt.kind,
        "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field.to_string()})).collect::<Vec<_>>(),
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{kind} {name:?} is invalid: {all}"),
        details: Some(details),
    }
}

/// A CustomResourceDefinition whose `x-kubernetes-validations` rules (or message expressions)
/// do not compile is refused when it is written, as the real server refuses it, with one cause
/// per rule: `spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`.
pub fn check_crd_rules(rt: &ResourceType, crd: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    for (i, version) in versions.into_iter().flatten().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path = Path::default()
                .child(Step::Field("spec".into()))
                .child(Step::Field("versions".into()))
                .child(Step::Index(i))
                .child(Step::Field("schema".into()))
                .child(Step::Field("openAPIV3Schema".into()));
            rule_compile_errors(schema, &path, true, &mut causes);
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(invalid(rt, name, &causes))
}

/// Collects a cause for each rule under `schema` that does not compile (`root`: `schema` is
/// the top of the CRD's schema).
fn rule_compile_errors(schema: &Value, path: &Path, root: bool, causes: &mut Vec<Cause>) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let at = path
            .child(Step::Field("x-kubernetes-validations".into()))
            .child(Step::Index(i));
        let text = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or_default();
        // the real server prints the rule as Go's %#v of its struct
        let shown = format!(
            "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:{:?}, OptionalOldSelf:(*bool)(nil)}}",
            text("rule"),
            text("message"),
            text("messageExpression"),
            text("fieldPath"),
        );
        let optional_old_self = rule.get("optionalOldSelf") == Some(&Value::Bool(true));
        let mut check = |field: &str, expression: cel::Expression| {
            let source = text(field);
            if source.is_empty() {
                return true;
            }
            let Some(error) =
                cel::compile_error(source, expression, schema, root, optional_old_self)
            else {
                return true;
            };
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: at.child(Step::Field(field.into())),
                message: format!("Invalid value: {shown}: {error}"),
            });
            false
        };
        // the real server compiles the message expression only once the rule compiled
        if check("rule", cel::Expression::Rule) {
            check("messageExpression", cel::Expression::Message);
        }
    }
    let child = |step: Step| path.child(step);
    for (k, sub) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let p = child(Step::Field("properties".into())).child(Step::Key(k.clone()));
        rule_compile_errors(sub, &p, false, causes);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = schema.get(key).filter(|v| v.is_object()) {
            rule_compile_errors(sub, &child(Step::Field(key.into())), false, causes);
        }
    }
}

/// The strict decoding error the real server answers with.
fn strict_error(rt: &ResourceType, problems: &[String]) -> ApiError {
    let body = if problems.len() == 1 {
        problems[0].clone()
    } else {
        format!("[{}]", problems.join(", "))
    };
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {body}",
        kind = rt.kind,
        version = rt.version
    ))
}

/// Reports duplicate fields of a JSON request body by `mode` (any kind); `found` says whether
/// the one-pass parse ([`duplicates::parse`]) met any.
pub fn check_duplicates(
    rt: &ResourceType,
    body: &[u8],
    found: bool,
    mode: FieldValidation,
    warnings: &Warnings,
) -> Result<(), ApiError> {
    if mode == FieldValidation::Ignore || !found {
        return Ok(());
    }
    let problems: Vec<String> = duplicates::find(body)
        .into_iter()
        .map(|p| format!("duplicate field {p:?}"))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    if mode == FieldValidation::Strict {
        return Err(strict_error(rt, &problems));
    }
    for p in problems {
        warnings.push(p);
    }
    Ok(())
}

/// Applies the schema's defaults to a custom resource being read (get, list, watch), as the
/// real server does when it decodes a stored object: an object stored before its CRD gained a
/// default is served with it. Kinds without a schema are left as they are.
pub fn default_on_read(rt: &ResourceType, obj: &mut Value) {
    if let Some(schema) = &rt.schema {
        prune::default(schema, obj);
    }
}

/// Prunes, defaults and validates a custom resource about to be written. `old` is the stored
/// object on update (for transition rules and ratcheting). Unknown fields are refused,
/// warned about or dropped by `mode`.
pub fn admit(
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
    mode: FieldValidation,
    warnings: &Warnings,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema.clone() else {
        return Ok(());
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut unknown = Vec::new();
    prune::prune(&schema, obj, &Path::default(), true, &mut unknown);
    if !unknown.is_empty() {
        match mode {
            FieldValidation::Strict => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("unknown field {:?}", p.to_string()))
                    .collect();
                return Err(strict_error(rt, &list));
            }
            FieldValidation::Warn => {
                for p in &unknown {
                    warnings.push(format!("unknown field {:?}", p.to_string()));
                }
            }
            FieldValidation::Ignore => {}
        }
    }
    prune::default(&schema, obj);
    let mut causes = Vec::new();
    validate::validate(&schema, obj, &Path::default(), true, &mut causes);
    if causes
        .iter()
        .any(|c| matches!(c.reason, "FieldValueNotSupported" | "FieldValueRequired"))
    {
        // the real server skips the CEL rules of an object with such errors, and says so
        causes.push(Cause::invalid(
            &Path(vec![Step::Field("<nil>".into())]),
            &Value::String("null".into()),
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else {
        cel::validate(&schema, obj, old, &Path::default(), &mut causes);
    }
    if let Some(old) = old {
        // validation ratcheting: a field that did not change keeps passing
        causes.retain(|c| {
            let (now, before) = (c.field.lookup(obj), c.field.lookup(old));
            now.is_none() || now != before
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(rt, &name, &causes))
    }
}

#[cfg(test)]
mod tests;
