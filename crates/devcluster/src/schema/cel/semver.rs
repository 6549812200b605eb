//! Kubernetes' semver library: `isSemver(<string>[, <bool> normalize])`,
//! `semver(<string>[, <bool> normalize])` and on a `kubernetes.Semver` `major()`, `minor()`,
//! `patch()`, `compareTo`, `isLessThan` and `isGreaterThan`. Versions are strict SemVer 2.0
//! (`MAJOR.MINOR.PATCH[-pre][+build]`, no leading zeros); with `normalize`, a leading `v`,
//! missing minor and patch numbers and their leading zeros are accepted first. Comparisons
//! follow SemVer precedence (build metadata ignored).

use std::cmp::Ordering;

use cel::common::types::{CelBool, CelInt, CelString};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::fail;

/// A parsed version (`kubernetes.Semver`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Semver(semver::Version);

opaque_val!(Semver, "kubernetes.Semver");

/// Declares the semver functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn semver: (CelString) -> Result<Semver>, id = "string_to_semver")?;
    cel::add_overload!(env, fn semver_normalized: (CelString, CelBool) -> Result<Semver>,
        name = "semver", id = "string_bool_to_semver")?;
    cel::add_overload!(env, fn is_semver: (CelString) -> CelBool, id = "is_semver_string")?;
    cel::add_overload!(env, fn is_semver_normalized: (CelString, CelBool) -> CelBool,
        name = "isSemver", id = "is_semver_string_bool")?;
    cel::add_member_overload!(env, fn major: (Semver) -> CelInt, id = "semver_major")?;
    cel::add_member_overload!(env, fn minor: (Semver) -> CelInt, id = "semver_minor")?;
    cel::add_member_overload!(env, fn patch: (Semver) -> CelInt, id = "semver_patch")?;
    cel::add_member_overload!(env, fn compare_to: (Semver, Semver) -> CelInt,
        id = "semver_compare_to")?;
    cel::add_member_overload!(env, fn is_less_than: (Semver, Semver) -> CelBool,
        id = "semver_is_less_than")?;
    cel::add_member_overload!(env, fn is_greater_than: (Semver, Semver) -> CelBool,
        id = "semver_is_greater_than")?;
    Ok(())
}

/// Leading `v` dropped, missing minor/patch added as 0, leading zeros of the three numbers
/// removed: what the library's `normalize` option accepts before strict parsing.
fn normalize(s: &str) -> String {
    let s = s.strip_prefix('v').unwrap_or(s);
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let mut parts: Vec<String> = core
        .split('.')
        .map(|p| {
            let t = p.trim_start_matches('0');
            if t.is_empty() && !p.is_empty() {
                "0".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    while parts.len() < 3 {
        parts.push("0".into());
    }
    format!("{}{rest}", parts.join("."))
}

fn parse(s: &str, normalized: bool) -> Result<Semver, String> {
    let s = if normalized {
        normalize(s)
    } else {
        s.to_string()
    };
    semver::Version::parse(&s)
        .map(Semver)
        .map_err(|e| format!("invalid semver {s:?}: {e}"))
}

fn semver(s: &CelString<'_>) -> Result<Semver, ExecutionError> {
    parse(s.inner(), false).map_err(|e| fail("semver", e))
}

fn semver_normalized(s: &CelString<'_>, n: &CelBool) -> Result<Semver, ExecutionError> {
    parse(s.inner(), *n.inner()).map_err(|e| fail("semver", e))
}

fn is_semver(s: &CelString<'_>) -> CelBool {
    CelBool::from(parse(s.inner(), false).is_ok())
}

fn is_semver_normalized(s: &CelString<'_>, n: &CelBool) -> CelBool {
    CelBool::from(parse(s.inner(), *n.inner()).is_ok())
}

fn number(n: u64) -> CelInt {
    CelInt::from(i64::try_from(n).unwrap_or(i64::MAX))
}

fn major(v: &Semver) -> CelInt {
    number(v.0.major)
}

fn minor(v: &Semver) -> CelInt {
    number(v.0.minor)
}

fn patch(v: &Semver) -> CelInt {
    number(v.0.patch)
}

fn compare_to(v: &Semver, other: &Semver) -> CelInt {
    CelInt::from(match v.0.cmp_precedence(&other.0) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

fn is_less_than(v: &Semver, other: &Semver) -> CelBool {
    CelBool::from(v.0.cmp_precedence(&other.0) == Ordering::Less)
}

fn is_greater_than(v: &Semver, other: &Semver) -> CelBool {
    CelBool::from(v.0.cmp_precedence(&other.0) == Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, no, yes};

    #[test]
    fn is_semver_is_strict_unless_normalized() {
        yes("isSemver('1.2.3')");
        yes("isSemver('1.2.3-rc.1+build.5')");
        no("isSemver('v1.2.3')");
        no("isSemver('1.2')");
        no("isSemver('01.2.3')");
        no("isSemver('1.2.3-')");
        yes("isSemver('v1.2', true)");
        yes("isSemver('01.02.03', true)");
        no("isSemver('v1.2', false)");
        no("isSemver('one', true)");
    }

    #[test]
    fn parts_and_comparisons() {
        yes(
            "semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3",
        );
        yes("semver('v2', true).major() == 2 && semver('v2', true).minor() == 0");
        yes("semver('1.2.3').isLessThan(semver('1.10.0'))");
        yes("semver('1.0.0-alpha').isLessThan(semver('1.0.0'))");
        yes("semver('1.0.0-alpha.10').isGreaterThan(semver('1.0.0-alpha.9'))");
        yes("semver('1.0.0+a').compareTo(semver('1.0.0+b')) == 0");
        yes("semver('2.0.0').compareTo(semver('1.9.9')) == 1");
        yes("semver('1.2.3') == semver('1.2.3')");
        assert!(eval("semver('1.2')").is_err());
    }
}
