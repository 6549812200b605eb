//! Kubernetes' regex library: `<string>.find(<regex>)`, the first match or `''`, and
//! `<string>.findAll(<regex>[, <limit>])`, the matches (at most `limit` when it is not
//! negative). A pattern that does not compile fails the rule with `Illegal regex: ...`.

use cel::common::types::{CelInt, CelList, CelString};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

use super::env::fail;

/// Declares `find` and `findAll` on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_member_overload!(env, fn find: (CelString, CelString) -> Result<CelString>,
        id = "string_find_string")?;
    cel::add_member_overload!(env, fn find_all: (CelString, CelString) -> Result<CelList>,
        id = "string_find_all_string")?;
    cel::add_member_overload!(env, fn find_all_n: (CelString, CelString, CelInt) -> Result<CelList>,
        name = "findAll", id = "string_find_all_string_int")?;
    Ok(())
}

fn compile(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| fail(function, format!("Illegal regex: {e}")))
}

fn find(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
) -> Result<CelString<'static>, ExecutionError> {
    let re = compile("find", pattern.inner())?;
    Ok(re
        .find(this.inner())
        .map(|m| m.as_str().to_string())
        .unwrap_or_default()
        .into())
}

fn matches_up_to(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
    limit: i64,
) -> Result<CelList<'static>, ExecutionError> {
    let re = compile("findAll", pattern.inner())?;
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let found: Vec<Box<dyn Val>> = re
        .find_iter(this.inner())
        .take(take)
        .map(|m| Box::new(CelString::from(m.as_str().to_string())) as Box<dyn Val>)
        .collect();
    Ok(CelList::from(found))
}

fn find_all(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
) -> Result<CelList<'static>, ExecutionError> {
    matches_up_to(this, pattern, -1)
}

fn find_all_n(
    this: &CelString<'_>,
    pattern: &CelString<'_>,
    limit: &CelInt,
) -> Result<CelList<'static>, ExecutionError> {
    matches_up_to(this, pattern, *limit.inner())
}

#[cfg(test)]
mod tests {
    use super::super::env::eval;
    use cel::Value;

    fn strings(items: &[&str]) -> Value {
        Value::from(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>())
    }

    #[test]
    fn find() {
        assert_eq!(eval("'abc 123'.find('[0-9]+')"), Ok(Value::from("123")));
        assert_eq!(eval("'abc 123'.find('xyz')"), Ok(Value::from("")));
        let err = eval("'abc'.find('[')").unwrap_err();
        assert!(err.starts_with("Illegal regex: "), "{err}");
    }

    #[test]
    fn find_all() {
        assert_eq!(
            eval("'123 abc 456'.findAll('[0-9]+')"),
            Ok(strings(&["123", "456"]))
        );
        assert_eq!(
            eval("'123 abc 456'.findAll('[0-9]+', 1)"),
            Ok(strings(&["123"]))
        );
        assert_eq!(eval("'123 abc 456'.findAll('[0-9]+', 0)"), Ok(strings(&[])));
        assert_eq!(eval("'123 abc 456'.findAll('xyz')"), Ok(strings(&[])));
        assert!(eval("'a'.findAll('(', -1)").is_err());
    }
}
