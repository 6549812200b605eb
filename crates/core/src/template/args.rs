//! Reading template function arguments the way Go's templates hand them over.

use super::gotmpl::{FuncError, Value};

/// Argument `i` of a function that takes `count`.
pub(super) fn arg<'a>(
    args: &'a [Value],
    i: usize,
    function: &str,
    count: usize,
) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::ExactlyXArgs(function.to_string(), count))
}

/// A value as text: strings as they are, nil as "", anything else as Go prints it.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        other => other.to_string(),
    }
}

/// An error that names the function.
pub(super) fn failed(function: &str, what: impl std::fmt::Display) -> FuncError {
    FuncError::Generic(format!("{function}: {what}"))
}
