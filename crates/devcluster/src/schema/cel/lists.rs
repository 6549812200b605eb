//! Kubernetes' list library: `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf` on
//! lists.

use std::cmp::Ordering;

use cel::common::types::{CelDouble, CelInt, CelUInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::{fail, list_elements};

/// Declares the list functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_a_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_a_last_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    Ok(())
}

fn compare(a: &dyn Val, b: &dyn Val, function: &str) -> Result<Ordering, ExecutionError> {
    a.as_comparer()
        .ok_or_else(|| {
            fail(
                function,
                format!("no such overload: {}", a.get_type().name()),
            )
        })?
        .compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_elements(&args, 0, 1, "isSorted")?;
    for pair in items.windows(2) {
        if compare(pair[0], pair[1], "isSorted")? == Ordering::Greater {
            return Ok(CowVal::owned(cel::common::types::CelBool::from(false)));
        }
    }
    Ok(CowVal::owned(cel::common::types::CelBool::from(true)))
}

/// A running sum: the kind of the first element decides the kind of the total.
#[derive(Clone, Copy)]
enum Total {
    Int(i64),
    UInt(u64),
    Double(f64),
}

/// `total + v`, both of one kind.
fn add(total: Option<Total>, v: &dyn Val) -> Result<Total, ExecutionError> {
    let overflow = || fail("sum", "integer overflow");
    let int = v.downcast_ref::<CelInt>().map(|i| *i.inner());
    let uint = v.downcast_ref::<CelUInt>().map(|u| *u.inner());
    let double = v.downcast_ref::<CelDouble>().map(|d| *d.inner());
    match (total, int, uint, double) {
        (None, Some(i), _, _) => Ok(Total::Int(i)),
        (Some(Total::Int(t)), Some(i), _, _) => {
            t.checked_add(i).map(Total::Int).ok_or_else(overflow)
        }
        (None, _, Some(u), _) => Ok(Total::UInt(u)),
        (Some(Total::UInt(t)), _, Some(u), _) => {
            t.checked_add(u).map(Total::UInt).ok_or_else(overflow)
        }
        (None, _, _, Some(d)) => Ok(Total::Double(d)),
        (Some(Total::Double(t)), _, _, Some(d)) => Ok(Total::Double(t + d)),
        _ => Err(fail(
            "sum",
            format!("no such overload: sum of {}", v.get_type().name()),
        )),
    }
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut total = None;
    for item in list_elements(&args, 0, 1, "sum")? {
        total = Some(add(total, item)?);
    }
    Ok(match total {
        None => CowVal::owned(CelInt::from(0)),
        Some(Total::Int(t)) => CowVal::owned(CelInt::from(t)),
        Some(Total::UInt(t)) => CowVal::owned(CelUInt::from(t)),
        Some(Total::Double(t)) => CowVal::owned(CelDouble::from(t)),
    })
}

/// The element `prefer` picks over the others (`Less` for the minimum).
fn extreme<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    function: &str,
    prefer: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_elements(&args, 0, 1, function)?;
    let mut best: Option<&(dyn Val + 'v)> = None;
    for item in items {
        best = match best {
            Some(b) if compare(item, b, function)? != prefer => Some(b),
            _ => Some(item),
        };
    }
    best.map(|b| CowVal::Owned(b.clone_as_boxed()))
        .ok_or_else(|| fail(function, format!("{function} called on empty list")))
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "min", Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "max", Ordering::Greater)
}

/// The position of `args[1]` in the list `args[0]`, searching from the front or the back.
fn position<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    function: &str,
    from_back: bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let needle = args
        .get(1)
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, args.len()))?;
    let items = list_elements(&args, 0, 1, function)?;
    let hit = |v: &&(dyn Val + 'v)| v.equals(needle.as_ref());
    let found = if from_back {
        items.iter().rposition(hit)
    } else {
        items.iter().position(hit)
    };
    Ok(CowVal::owned(CelInt::from(
        found.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
    )))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, "indexOf", false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, "lastIndexOf", true)
}

#[cfg(test)]
mod tests {
    use super::super::env::eval;
    use cel::Value;

    #[test]
    fn is_sorted() {
        assert_eq!(eval("[1, 2, 2, 3].isSorted()"), Ok(Value::Bool(true)));
        assert_eq!(eval("['a', 'c', 'b'].isSorted()"), Ok(Value::Bool(false)));
        assert_eq!(eval("[].isSorted()"), Ok(Value::Bool(true)));
        assert!(eval("[{}, {}].isSorted()").is_err());
    }

    #[test]
    fn sum() {
        assert_eq!(eval("[1, 3].sum()"), Ok(Value::Int(4)));
        assert_eq!(eval("[1.5, 3.0].sum()"), Ok(Value::Float(4.5)));
        assert_eq!(eval("[1u, 2u].sum()"), Ok(Value::UInt(3)));
        assert_eq!(eval("[].sum()"), Ok(Value::Int(0)));
        assert_eq!(
            eval("[9223372036854775807, 1].sum()"),
            Err("integer overflow".to_string())
        );
        assert!(eval("['a'].sum()").is_err());
    }

    #[test]
    fn min_and_max() {
        assert_eq!(eval("[3, 1, 2].min()"), Ok(Value::Int(1)));
        assert_eq!(eval("[3, 1, 2].max()"), Ok(Value::Int(3)));
        assert_eq!(eval("['b', 'a'].min()"), Ok(Value::from("a")));
        assert_eq!(
            eval("[].min()"),
            Err("min called on empty list".to_string())
        );
        assert_eq!(
            eval("[].max()"),
            Err("max called on empty list".to_string())
        );
    }

    #[test]
    fn index_of_and_last_index_of() {
        assert_eq!(eval("[1, 2, 2, 3].indexOf(2)"), Ok(Value::Int(1)));
        assert_eq!(eval("['a', 'b', 'b'].lastIndexOf('b')"), Ok(Value::Int(2)));
        assert_eq!(eval("[1.0].indexOf(1.1)"), Ok(Value::Int(-1)));
        assert_eq!(eval("[].lastIndexOf('x')"), Ok(Value::Int(-1)));
        assert_eq!(
            eval("'abcb'.indexOf('b')"),
            Ok(Value::Int(1)),
            "strings still work"
        );
    }
}
