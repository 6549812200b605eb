//! `cel.bind(name, value, expr)` (cel-go's bindings extension, in kube-apiserver's base
//! environment): `expr` evaluated with `name` bound to `value`, which is computed once. As in
//! cel-go, a parse-time rewrite into a comprehension over an empty list whose accumulator is
//! `name`.

use cel::common::ast::{ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{DeclarationError, Env};

/// Declares the `cel.bind` macro.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_macro(Macro::receiver("bind", 3, expand))
}

fn expand(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    // only `cel.bind(..)`: a `bind` method on anything else stays a call
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(n)) if n == "cel") {
        return Ok(None);
    }
    let (Some(result), Some(value), Some(name)) = (args.pop(), args.pop(), args.pop()) else {
        return Ok(None);
    };
    let name = match name.expr {
        Expr::Ident(n) => n,
        _ => {
            return Err(helper.new_error(
                name.id,
                "cel.bind() variable names must be simple identifiers",
            ));
        }
    };
    let empty = helper.next_expr(Expr::List(ListExpr {
        elements: Vec::new(),
        optional_indices: Vec::new(),
    }));
    let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let step = helper.next_expr(Expr::Ident(name.clone()));
    Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(
        ComprehensionExpr {
            iter_range: empty,
            iter_var: "#unused".into(),
            iter_var2: None,
            accu_var: name,
            accu_init: value,
            loop_cond: cond,
            loop_step: step,
            result,
        },
    )))))
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, no, yes};

    #[test]
    fn binds_a_name_for_the_expression() {
        yes("cel.bind(x, 2 + 3, x * x == 25)");
        yes("cel.bind(a, 'he', cel.bind(b, a + 'llo', b == 'hello'))");
        no("cel.bind(xs, [1, 2, 3], xs.exists(x, x > 3))");
        // the bound name shadows an outer one only inside
        yes("[1, 2].all(x, cel.bind(x, 10, x == 10))");
        assert!(eval("cel.bind(a.b, 1, true)").is_err());
        assert!(eval("cel.bind(x, 1)").is_err());
    }
}
