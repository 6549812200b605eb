//! The CEL environment of CRD rules: what kube-apiserver's base environment offers, as far as
//! the `cel` crate can express it. The standard library with optionals, the strings extension
//! (`charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`, `replace`, `split`,
//! `substring`, `trim`, `join`, `format`, `strings.quote`), and Kubernetes' libraries:
//! lists, regex, sets, URLs, IPs and CIDRs, quantities, formats and semver; `cel.bind` and the
//! two-variable comprehensions.

use std::sync::{Arc, OnceLock};

use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The environment, built once.
pub(super) fn shared() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        // a declaration conflict is a bug caught by the tests below; were one to slip through,
        // rules still run with the standard library rather than the server panicking
        Arc::new(build().unwrap_or_else(|_| Env::stdlib()))
    })
}

/// Declares every library on a fresh standard environment.
fn build() -> Result<Env, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(super::lists::extension)?;
    env.add_extension(super::regex::extension)?;
    env.add_extension(super::sets::extension)?;
    env.add_extension(super::url::extension)?;
    env.add_extension(super::ip::extension)?;
    env.add_extension(super::quantity::extension)?;
    env.add_extension(super::format::extension)?;
    env.add_extension(super::bind::extension)?;
    env.add_extension(super::semver::extension)?;
    env.add_extension(super::two_var::extension)?;
    Ok(env)
}

/// A library function's failure: the rule's evaluation error reads `message`.
pub(super) fn fail(function: &str, message: impl std::fmt::Display) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// The elements of argument `i`, which must be a list; `arity` is the function's argument
/// count (for the error when the argument is missing).
pub(super) fn list_elements<'b, 'v>(
    args: &'b [CowVal<'_, 'v>],
    i: usize,
    arity: usize,
    function: &str,
) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let list = args
        .get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(arity, args.len()))?;
    let iterable = list.as_iterable().ok_or_else(|| {
        fail(
            function,
            format!("no such overload: {}", list.get_type().name()),
        )
    })?;
    let mut it = iterable.iter();
    let mut out = Vec::new();
    while let Some(v) = it.next() {
        out.push(v);
    }
    Ok(out)
}

/// Test helper: `expr` evaluates to true.
#[cfg(test)]
pub(super) fn yes(expr: &str) {
    assert_eq!(eval(expr), Ok(cel::Value::Bool(true)), "{expr}");
}

/// Test helper: `expr` evaluates to false.
#[cfg(test)]
pub(super) fn no(expr: &str) {
    assert_eq!(eval(expr), Ok(cel::Value::Bool(false)), "{expr}");
}

/// Test helper: evaluates `expr` with no variables.
#[cfg(test)]
pub(super) fn eval(expr: &str) -> Result<cel::Value, String> {
    super::run(expr, &cel::Value::Null, &super::OldSelf::Unbound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_declares_without_conflict() {
        assert!(build().is_ok(), "{:?}", build().err());
    }

    #[test]
    fn the_strings_extension_is_there() {
        for (expr, want) in [
            ("'abc'.charAt(1)", cel::Value::from("b")),
            ("'abcb'.lastIndexOf('b')", cel::Value::Int(3)),
            ("'TacoCat'.lowerAscii()", cel::Value::from("tacocat")),
            ("'a,b'.split(',').join('-')", cel::Value::from("a-b")),
            ("'  x '.trim()", cel::Value::from("x")),
            ("'hello'.substring(1, 3)", cel::Value::from("el")),
            ("strings.quote('a\"b')", cel::Value::from("\"a\\\"b\"")),
        ] {
            assert_eq!(eval(expr), Ok(want), "{expr}");
        }
        assert_eq!(
            eval("'abc'.charAt(9)"),
            Err("index out of range: 9".to_string())
        );
    }
}
