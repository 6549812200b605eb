//! Two-variable comprehensions (cel-go's comprehensions extension, in kube-apiserver's base
//! environment since Kubernetes 1.33): `all(i, v, p)`, `exists(i, v, p)`,
//! `existsOne(i, v, p)`, `transformList(i, v, [filter,] f)`, `transformMap(k, v, [filter,] f)`
//! and `transformMapEntry(k, v, [filter,] f)`. Over a list the first variable is the index and
//! the second the element; over a map they are the key and its value.
//!
//! The `cel` crate evaluates one iteration variable only, so each call is rewritten when the
//! rule is parsed: the target is bound once, the comprehension runs over its indices (a list)
//! or keys (a map), and the second variable is bound to `target[first]` inside the predicate
//! or transform. `@keys`, `@to_map` and `@merge_entries` are the helper functions the
//! rewrite calls; no rule can name them, as `@` does not start an identifier.

use std::collections::HashMap;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue, operators,
};
use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, LIST_TYPE, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::{fail, list_elements};

/// The variable the rewritten target is bound to.
const TARGET: &str = "@target";
/// The accumulator of the rewritten comprehensions.
const RESULT: &str = "@result";

/// What a two-variable macro computes.
#[derive(Clone, Copy)]
enum Kind {
    All,
    Exists,
    ExistsOne,
    /// A list of the transformed values.
    List,
    /// A map from each key to its transformed value.
    Map,
    /// A map merged from the map each entry transforms into.
    MapEntry,
}

/// Declares the macros and their helper functions.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    for (name, kind, arities) in [
        ("all", Kind::All, &[3][..]),
        ("exists", Kind::Exists, &[3]),
        ("existsOne", Kind::ExistsOne, &[3]),
        ("transformList", Kind::List, &[3, 4]),
        ("transformMap", Kind::Map, &[3, 4]),
        ("transformMapEntry", Kind::MapEntry, &[3, 4]),
    ] {
        for &arity in arities {
            env.add_macro(Macro::receiver(name, arity, move |h, t, a| {
                expand(kind, h, t, a)
            }))?;
        }
    }
    env.add_overload("@keys", "two_var_keys_list", vec![LIST_TYPE], keys)?;
    env.add_overload("@keys", "two_var_keys_map", vec![MAP_TYPE], keys)?;
    env.add_overload("@to_map", "two_var_to_map", vec![LIST_TYPE], to_map)?;
    env.add_overload(
        "@merge_entries",
        "two_var_merge_entries",
        vec![LIST_TYPE],
        merge_entries,
    )?;
    Ok(())
}

fn expand(
    kind: Kind,
    h: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    let name = |i: usize| match args.get(i).map(|a| &a.expr) {
        Some(Expr::Ident(n)) => Some(n.clone()),
        _ => None,
    };
    let (Some(first), Some(second)) = (name(0), name(1)) else {
        let id = args.first().map(|a| a.id).unwrap_or_default();
        return Err(h.new_error(id, "argument must be a simple name"));
    };
    if first == second {
        let id = args.get(1).map(|a| a.id).unwrap_or_default();
        return Err(h.new_error(id, format!("duplicate variable name: {first}")));
    }
    let (Some(range), Some(body)) = (target.take(), args.pop()) else {
        return Ok(None);
    };
    let filter = if args.len() == 3 { args.pop() } else { None };
    // the second variable, bound to `@target[first]` around `e`
    let with_value = |h: &mut MacroExprHelper<'_>, e: IdedExpr| {
        let (t, i) = (ident(h, TARGET), ident(h, &first));
        let at = call(h, operators::INDEX, vec![t, i]);
        bind(h, &second, at, e)
    };
    let body = with_value(h, body);
    let filter = filter.map(|f| with_value(h, f));
    let t = ident(h, TARGET);
    let keys = call(h, "@keys", vec![t]);
    let loop_over = match kind {
        Kind::All => fold(h, keys, &first, Fold::All(body)),
        Kind::Exists => fold(h, keys, &first, Fold::Exists(body)),
        Kind::ExistsOne => fold(h, keys, &first, Fold::ExistsOne(body)),
        Kind::List => fold(h, keys, &first, Fold::Collect(filter, body)),
        Kind::Map => {
            let key = ident(h, &first);
            let entry = list(h, vec![key, body]);
            let pairs = fold(h, keys, &first, Fold::Collect(filter, entry));
            call(h, "@to_map", vec![pairs])
        }
        Kind::MapEntry => {
            let maps = fold(h, keys, &first, Fold::Collect(filter, body));
            call(h, "@merge_entries", vec![maps])
        }
    };
    Ok(Some(bind(h, TARGET, range, loop_over)))
}

/// How a comprehension accumulates.
enum Fold {
    All(IdedExpr),
    Exists(IdedExpr),
    ExistsOne(IdedExpr),
    /// Appends the second expression's value where the first (if any) holds.
    Collect(Option<IdedExpr>, IdedExpr),
}

/// A comprehension over `range` with `var` as its iteration variable.
fn fold(h: &mut MacroExprHelper<'_>, range: IdedExpr, var: &str, how: Fold) -> IdedExpr {
    let accu = |h: &mut MacroExprHelper<'_>| ident(h, RESULT);
    let (init, cond, step, result) = match how {
        Fold::All(p) => {
            let init = bool_lit(h, true);
            let a = accu(h);
            let cond = call(h, operators::NOT_STRICTLY_FALSE, vec![a]);
            let a = accu(h);
            let step = call(h, operators::LOGICAL_AND, vec![a, p]);
            (init, cond, step, accu(h))
        }
        Fold::Exists(p) => {
            let init = bool_lit(h, false);
            let a = accu(h);
            let not = call(h, operators::LOGICAL_NOT, vec![a]);
            let cond = call(h, operators::NOT_STRICTLY_FALSE, vec![not]);
            let a = accu(h);
            let step = call(h, operators::LOGICAL_OR, vec![a, p]);
            (init, cond, step, accu(h))
        }
        Fold::ExistsOne(p) => {
            let init = int_lit(h, 0);
            let cond = bool_lit(h, true);
            let (a, one) = (accu(h), int_lit(h, 1));
            let plus = call(h, operators::ADD, vec![a, one]);
            let a = accu(h);
            let step = call(h, operators::CONDITIONAL, vec![p, plus, a]);
            let (a, one) = (accu(h), int_lit(h, 1));
            let result = call(h, operators::EQUALS, vec![a, one]);
            (init, cond, step, result)
        }
        Fold::Collect(filter, value) => {
            let init = list(h, Vec::new());
            let cond = bool_lit(h, true);
            let (a, item) = (accu(h), list(h, vec![value]));
            let append = call(h, operators::ADD, vec![a, item]);
            let step = match filter {
                Some(f) => {
                    let a = accu(h);
                    call(h, operators::CONDITIONAL, vec![f, append, a])
                }
                None => append,
            };
            (init, cond, step, accu(h))
        }
    };
    h.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: var.into(),
        iter_var2: None,
        accu_var: RESULT.into(),
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })))
}

/// `body` with `name` bound to `value` (computed once), as `cel.bind` expands.
fn bind(h: &mut MacroExprHelper<'_>, name: &str, value: IdedExpr, body: IdedExpr) -> IdedExpr {
    let empty = list(h, Vec::new());
    let cond = bool_lit(h, false);
    let step = ident(h, name);
    h.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: empty,
        iter_var: "#unused".into(),
        iter_var2: None,
        accu_var: name.into(),
        accu_init: value,
        loop_cond: cond,
        loop_step: step,
        result: body,
    })))
}

fn ident(h: &mut MacroExprHelper<'_>, name: &str) -> IdedExpr {
    h.next_expr(Expr::Ident(name.into()))
}

fn call(h: &mut MacroExprHelper<'_>, function: &str, args: Vec<IdedExpr>) -> IdedExpr {
    h.next_expr(Expr::Call(CallExpr {
        func_name: function.into(),
        target: None,
        args,
    }))
}

fn list(h: &mut MacroExprHelper<'_>, elements: Vec<IdedExpr>) -> IdedExpr {
    h.next_expr(Expr::List(ListExpr::new(elements)))
}

fn bool_lit(h: &mut MacroExprHelper<'_>, b: bool) -> IdedExpr {
    h.next_expr(Expr::Literal(LiteralValue::Boolean(b.into())))
}

fn int_lit(h: &mut MacroExprHelper<'_>, i: i64) -> IdedExpr {
    h.next_expr(Expr::Literal(LiteralValue::Int(i.into())))
}

/// A list's indices, or a map's keys.
fn keys<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let target = args
        .first()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let is_list = target.get_type().name() == "list";
    let items = list_elements(&args, 0, 1, "comprehension")?;
    let out: Vec<Box<dyn Val + 'v>> = if is_list {
        (0..items.len())
            .map(|i| Box::new(CelInt::from(i as i64)) as Box<dyn Val + 'v>)
            .collect()
    } else {
        items.into_iter().map(|k| k.clone_as_boxed()).collect()
    };
    Ok(CowVal::Owned(Box::new(CelList::from(out))))
}

/// A map from a list of `[key, value]` pairs.
fn to_map<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for pair in list_elements(&args, 0, 1, "transformMap")? {
        let pair = pair
            .as_iterable()
            .map(|i| {
                let mut it = i.iter();
                let mut v = Vec::new();
                while let Some(x) = it.next() {
                    v.push(x.clone_as_boxed());
                }
                v
            })
            .unwrap_or_default();
        let [key, value]: [Box<dyn Val + 'v>; 2] = pair
            .try_into()
            .map_err(|_| fail("transformMap", "internal: not a key/value pair"))?;
        let key = CelMapKey::try_from(key)
            .map_err(|_| fail("transformMap", "unsupported map key type"))?;
        map.insert(key, value);
    }
    Ok(CowVal::Owned(Box::new(CelMap::from(map))))
}

/// One map merged from a list of maps; a key given twice is an error, as in cel-go.
fn merge_entries<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for entry in list_elements(&args, 0, 1, "transformMapEntry")? {
        let Some(m) = entry.downcast_ref::<CelMap>() else {
            return Err(fail(
                "transformMapEntry",
                format!("no such overload: {}", entry.get_type().name()),
            ));
        };
        for (k, v) in m.inner() {
            let key = k.clone();
            if map.contains_key(&key) {
                return Err(fail(
                    "transformMapEntry",
                    format!("insert failed: key {} already exists", describe(k.inner())),
                ));
            }
            map.insert(key, v.clone_as_boxed());
        }
    }
    Ok(CowVal::Owned(Box::new(CelMap::from(map))))
}

/// A key as cel-go prints it in an error.
fn describe(v: &dyn Val) -> String {
    match v.downcast_ref::<cel::common::types::CelString>() {
        Some(s) => s.inner().to_string(),
        None => format!("{v:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, no, yes};

    #[test]
    fn all_exists_and_exists_one_see_index_and_value() {
        yes("[1, 2, 3].all(i, v, v == i + 1)");
        no("[1, 2, 4].all(i, v, v == i + 1)");
        yes("['a', 'b'].exists(i, v, i == 1 && v == 'b')");
        no("['a', 'b'].exists(i, v, i == 0 && v == 'b')");
        yes("[5, 6, 7].existsOne(i, v, i > 1)");
        no("[5, 6, 7].existsOne(i, v, i > 0)");
    }

    #[test]
    fn over_a_map_the_variables_are_key_and_value() {
        yes("{'a': 1, 'b': 2}.all(k, v, (k == 'a' && v == 1) || (k == 'b' && v == 2))");
        yes("{'a': 1, 'b': 2}.exists(k, v, k == 'b' && v == 2)");
        no("{'a': 1, 'b': 2}.exists(k, v, k == 'b' && v == 1)");
        yes("{'a': 1, 'b': 2}.existsOne(k, v, v > 1)");
    }

    #[test]
    fn transforms_build_lists_and_maps() {
        yes("[1, 2, 3].transformList(i, v, v * i) == [0, 2, 6]");
        yes("[1, 2, 3].transformList(i, v, i != 1, v) == [1, 3]");
        yes("{'a': 1, 'b': 2}.transformMap(k, v, v * 10) == {'a': 10, 'b': 20}");
        yes("{'a': 1, 'b': 2}.transformMap(k, v, v > 1, k + 'x') == {'b': 'bx'}");
        yes("['x', 'y'].transformMap(i, v, v) == {0: 'x', 1: 'y'}");
        yes("{'a': 1}.transformMapEntry(k, v, {v: k}) == {1: 'a'}");
        yes("[1, 2].transformMapEntry(i, v, v > 1, {'k' + string(v): i}) == {'k2': 1}");
    }

    #[test]
    fn nested_and_one_variable_forms_still_work() {
        yes("[[1, 2], [3]].all(i, row, row.all(j, x, x > i))");
        yes("[1, 2].all(x, x > 0)");
        yes("[1, 2].exists(x, x == 2)");
        yes("[1, 2].map(x, x > 1, x * 2) == [4]");
    }

    #[test]
    fn bad_uses_fail_clearly() {
        let dup = eval("{'a': 1, 'b': 1}.transformMapEntry(k, v, {v: k})").unwrap_err();
        assert!(dup.contains("insert failed: key"), "{dup}");
        assert!(eval("[1].all(i, i, true)").is_err());
        assert!(eval("[1].all(a.b, v, true)").is_err());
    }
}
