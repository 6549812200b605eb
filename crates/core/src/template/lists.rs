//! sprig's list functions that change a list's items: `append`/`push`, `prepend`, `concat`,
//! `without`, `values`, and `fail`.

use super::go::{deep_equal, exactly, iface, kind_name, map_param};
use super::gotmpl::{Func, FuncError, Value};

/// The functions defined here.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("append", append as Func),
    ("mustAppend", append as Func),
    ("prepend", prepend as Func),
    ("mustPrepend", prepend as Func),
    ("concat", concat as Func),
    ("without", without as Func),
    ("mustWithout", without as Func),
    ("values", values as Func),
    ("fail", fail as Func),
];

/// The items of a list argument, or sprig's "Cannot VERB on type KIND".
fn items<'a>(v: &'a Value, verb: &str) -> Result<&'a [Value], FuncError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil | Value::NoValue => Err(FuncError::Generic(
            "runtime error: invalid memory address or nil pointer dereference".into(),
        )),
        other => Err(FuncError::Generic(format!(
            "Cannot {verb} on type {}",
            kind_name(other)
        ))),
    }
}

/// `append LIST v`: a new list with `v` last.
fn append(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "append", 2)?;
    let mut out = items(&args[0], "push")?.to_vec();
    out.push(iface(&args[1]));
    Ok(Value::Array(out.into()))
}

/// `prepend LIST v`: a new list with `v` first.
fn prepend(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "prepend", 2)?;
    let mut out = vec![iface(&args[1])];
    out.extend(items(&args[0], "prepend")?.iter().cloned());
    Ok(Value::Array(out.into()))
}

/// `concat LIST...`: the lists one after another.
fn concat(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = Vec::new();
    for a in args {
        match a {
            Value::Array(items) => out.extend(items.iter().cloned()),
            Value::Nil | Value::NoValue => {
                return Err(FuncError::Generic(
                    "runtime error: invalid memory address or nil pointer dereference".into(),
                ));
            }
            other => {
                return Err(FuncError::Generic(format!(
                    "Cannot concat type {} as list",
                    kind_name(other)
                )));
            }
        }
    }
    Ok(Value::Array(out.into()))
}

/// `without LIST v...`: the list without the items equal to any `v`.
fn without(args: &[Value]) -> Result<Value, FuncError> {
    let Some((list, omit)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("without".into(), 1));
    };
    let omit: Vec<Value> = omit.iter().map(iface).collect();
    let kept = items(list, "find without")?
        .iter()
        .filter(|v| !omit.iter().any(|o| deep_equal(o, v)))
        .cloned()
        .collect();
    Ok(Value::Array(kept))
}

/// `values DICT`: the map's values (Go's order is random; here by key).
fn values(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "values", 1)?;
    let m = map_param(&args[0])?;
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    Ok(Value::Array(
        keys.into_iter().map(|k| m[k].clone()).collect(),
    ))
}

/// `fail MSG`: fails the render with MSG.
fn fail(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "fail", 1)?;
    Err(FuncError::Generic(super::go::str_param(&args[0])?))
}
