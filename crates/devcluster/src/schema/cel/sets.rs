//! cel-go's sets extension, as Kubernetes offers it: `sets.contains(list, sublist)`,
//! `sets.equivalent(list, list)` and `sets.intersects(list, list)`, by CEL equality
//! (`1 == 1.0`).

use cel::common::types::{CelBool, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::list_elements;

/// Declares the `sets.*` functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        vec![LIST_TYPE, LIST_TYPE],
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        vec![LIST_TYPE, LIST_TYPE],
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        vec![LIST_TYPE, LIST_TYPE],
        intersects,
    )?;
    Ok(())
}

/// Whether every element of `sub` is in `list`.
fn all_in(list: &[&dyn Val], sub: &[&dyn Val]) -> bool {
    sub.iter().all(|s| list.iter().any(|l| l.equals(*s)))
}

fn answer<'b, 'v>(b: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(b)))
}

fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (list, sub) = (
        list_elements(&args, 0, 2, "sets")?,
        list_elements(&args, 1, 2, "sets")?,
    );
    answer(all_in(&list, &sub))
}

fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (
        list_elements(&args, 0, 2, "sets")?,
        list_elements(&args, 1, 2, "sets")?,
    );
    answer(all_in(&a, &b) && all_in(&b, &a))
}

fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (
        list_elements(&args, 0, 2, "sets")?,
        list_elements(&args, 1, 2, "sets")?,
    );
    answer(a.iter().any(|x| b.iter().any(|y| x.equals(*y))))
}

#[cfg(test)]
mod tests {
    use super::super::env::eval;
    use cel::Value;

    #[test]
    fn contains() {
        assert_eq!(
            eval("sets.contains([1, 2, 3], [2, 3])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("sets.contains([1, 2], [2, 4])"),
            Ok(Value::Bool(false))
        );
        assert_eq!(eval("sets.contains([], [])"), Ok(Value::Bool(true)));
        assert_eq!(eval("sets.contains([1], [1.0])"), Ok(Value::Bool(true)));
    }

    #[test]
    fn equivalent() {
        assert_eq!(
            eval("sets.equivalent([1, 2, 2], [2, 1])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("sets.equivalent([1], [1, 2])"), Ok(Value::Bool(false)));
    }

    #[test]
    fn intersects() {
        assert_eq!(
            eval("sets.intersects(['a', 'b'], ['b'])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("sets.intersects([1], [])"), Ok(Value::Bool(false)));
        assert!(eval("sets.intersects(1, [1])").is_err());
    }
}
