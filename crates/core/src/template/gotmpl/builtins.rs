//! Go's builtin template functions that need no access to the evaluator: `not`, `len`,
//! `print`, `println`, `printf` and `call`. (`and`/`or` short-circuit in the evaluator; `index`,
//! `slice`, the escapers and the comparisons are in `compat.rs`.)

use super::exec::type_name;
use super::fmt::sprintf;
use super::value::{Func, FuncError, Value};

/// The builtins defined here.
pub const FUNCTIONS: &[(&str, Func)] = &[
    ("not", not as Func),
    ("len", len as Func),
    ("print", print as Func),
    ("println", println as Func),
    ("printf", printf as Func),
    ("call", call as Func),
];

/// Names the evaluator itself handles (parsed as functions).
pub const EVALUATOR_FUNCTIONS: [&str; 2] = ["and", "or"];

fn not(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [one] => Ok(Value::Bool(!one.truthy())),
        _ => Err(FuncError::Generic(format!(
            "wrong number of args for not: want 1 got {}",
            args.len()
        ))),
    }
}

fn len(args: &[Value]) -> Result<Value, FuncError> {
    let [one] = args else {
        return Err(FuncError::Generic(format!(
            "wrong number of args for len: want 1 got {}",
            args.len()
        )));
    };
    let n = match one {
        // the bytes it stands for when a function made bytes that are not UTF-8
        Value::String(s) => crate::template::eso::binary::byte_len(s),
        Value::Array(a) => a.len(),
        Value::Map(m) | Value::Object(m) => m.len(),
        Value::Nil | Value::NoValue => {
            // Go's `len` asks a nil interface for its type and panics
            return Err(FuncError::Generic(
                "reflect: call of reflect.Value.Type on zero Value".into(),
            ));
        }
        other => {
            return Err(FuncError::Generic(format!(
                "len of type {}",
                type_name(other)
            )));
        }
    };
    Ok(Value::from(n))
}

/// Go's `call`: a template value is never a function here (the data holds strings and maps),
/// so it fails as Go does on anything else.
fn call(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        None => Err(FuncError::Generic(
            "wrong number of args for call: want at least 1 got 0".into(),
        )),
        Some(Value::Nil | Value::NoValue) => Err(FuncError::Generic("call of nil".into())),
        Some(other) => Err(FuncError::Generic(format!(
            "non-function of type {}",
            type_name(other)
        ))),
    }
}

/// `fmt.Sprint`: operands joined with a space where neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&operand(a));
    }
    out
}

fn operand(a: &Value) -> String {
    match a {
        Value::NoValue => "<nil>".into(),
        other => other.to_string(),
    }
}

fn print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(sprint(args)))
}

fn println(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().map(operand).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

/// Go's `printf`.
pub fn printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some(format) = args.first() else {
        return Err(FuncError::AtLeastXArgs("printf".into(), 1));
    };
    let Value::String(format) = format else {
        return Err(FuncError::Generic(format!(
            "wrong type for value; expected string; got {}",
            type_name(format)
        )));
    };
    Ok(Value::String(sprintf(format, &args[1..])))
}
