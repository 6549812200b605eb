//! Sprig's `semver`, `semverCompare` (Masterminds/semver v3 rules), `urlParse` and `urlJoin`
//! (Go's `net/url`).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::gotmpl::{Func, FuncError, Typed, Value};

use super::go::{exactly, map_param, str_param, strval};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("semver", semver as Func),
    ("semverCompare", semver_compare as Func),
    ("urlParse", url_parse as Func),
    ("urlJoin", url_join as Func),
];

/// A semantic version as Masterminds/semver reads it (loosely: `v1`, `1.2` are 1.0.0, 1.2.0).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    meta: String,
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Version {
    fn parse(text: &str) -> Option<Self> {
        Self::parse_inner(text, true)
    }

    /// [`Version::parse`] with Masterminds semver's error texts.
    fn parse_or_error(text: &str) -> Result<Self, FuncError> {
        Self::parse(text).ok_or_else(|| {
            // the only check after semver's pattern: numeric pre-release parts
            if Self::parse_inner(text, false).is_some() {
                FuncError::Generic("Version segment starts with 0".into())
            } else {
                invalid_version()
            }
        })
    }

    fn parse_inner(text: &str, check_zero: bool) -> Option<Self> {
        let t = text.strip_prefix('v').unwrap_or(text);
        let (t, meta) = match t.split_once('+') {
            Some((a, m)) if ident_ok(m) => (a, m.to_string()),
            Some(_) => return None,
            None => (t, String::new()),
        };
        let (core, pre) = match t.split_once('-') {
            Some((a, p)) if ident_ok(p) => (a, p.to_string()),
            Some(_) => return None,
            None => (t, String::new()),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 {
            return None;
        }
        let mut v = [0u64; 3];
        for (i, n) in nums.iter().enumerate() {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            v[i] = n.parse().ok()?;
        }
        // numeric pre-release parts may not start with 0
        if check_zero
            && pre
                .split('.')
                .any(|p| p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        Some(Self {
            major: v[0],
            minor: v[1],
            patch: v[2],
            pre,
            meta,
        })
    }

    fn show(&self) -> String {
        let mut out = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            out.push('-');
            out.push_str(&self.pre);
        }
        if !self.meta.is_empty() {
            out.push('+');
            out.push_str(&self.meta);
        }
        out
    }

    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

fn invalid_version() -> FuncError {
    FuncError::Generic("Invalid Semantic Version".into())
}

fn semver(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "semver", 1)?;
    let v = Version::parse_or_error(&str_param(&args[0])?)?;
    Ok(version_value(&v, POINTER))
}

/// Go's type of what `semver` returns.
const POINTER: &str = "*semver.Version";

/// A version as a typed value (`*semver.Version`, or `semver.Version` from its `Inc*` methods).
fn version_value(v: &Version, type_name: &'static str) -> Value {
    let kind = if type_name == POINTER {
        "ptr"
    } else {
        "struct"
    };
    Typed::value(type_name, kind, v.show())
}

/// A `uint64` result.
fn uint64(n: u64) -> Value {
    Typed::value("uint64", "uint64", n.to_string())
}

/// The methods of Masterminds' `*semver.Version` (and `semver.Version`): `Major`, `Minor`,
/// `Patch`, `Prerelease`, `Metadata`, `String`, `Original`, `Compare`, `LessThan`,
/// `GreaterThan`, `Equal`, `IncMajor`, `IncMinor`, `IncPatch`. `None` when the value is no
/// version or has no such method.
pub(super) fn method(recv: &Value, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
    let text = Typed::is(recv, POINTER).or_else(|| Typed::is(recv, "semver.Version"))?;
    let v = Version::parse(text)?;
    let want = |n: usize| -> Result<(), FuncError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(FuncError::Generic(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )))
        }
    };
    let other = || -> Result<Version, FuncError> {
        want(1)?;
        Typed::is(&args[0], POINTER)
            .and_then(Version::parse)
            .ok_or_else(|| {
                FuncError::Generic(format!(
                    "wrong type for value; expected *semver.Version; got {}",
                    super::go::type_name(&args[0])
                ))
            })
    };
    let result = match name {
        "Major" => want(0).map(|()| uint64(v.major)),
        "Minor" => want(0).map(|()| uint64(v.minor)),
        "Patch" => want(0).map(|()| uint64(v.patch)),
        "Prerelease" => want(0).map(|()| Value::String(v.pre.clone())),
        "Metadata" => want(0).map(|()| Value::String(v.meta.clone())),
        "String" | "Original" => want(0).map(|()| Value::String(v.show())),
        "Compare" => other().map(|o| {
            Value::from(match v.cmp(&o) {
                Ordering::Less => -1i64,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })
        }),
        "LessThan" => other().map(|o| Value::Bool(v.cmp(&o) == Ordering::Less)),
        "GreaterThan" => other().map(|o| Value::Bool(v.cmp(&o) == Ordering::Greater)),
        "Equal" => other().map(|o| Value::Bool(v.cmp(&o) == Ordering::Equal)),
        "IncPatch" | "IncMinor" | "IncMajor" => want(0).map(|()| {
            let mut n = Version {
                meta: String::new(),
                ..v.clone()
            };
            match name {
                // a pre-release's patch is the release it leads to
                "IncPatch" if !v.pre.is_empty() => n.pre.clear(),
                "IncPatch" => n.patch += 1,
                "IncMinor" => {
                    n.minor += 1;
                    n.patch = 0;
                    n.pre.clear();
                }
                _ => {
                    n.major += 1;
                    n.minor = 0;
                    n.patch = 0;
                    n.pre.clear();
                }
            }
            version_value(&n, "semver.Version")
        }),
        _ => return None,
    };
    Some(result)
}

/// One constraint: an operator and a version that may end in wildcards (how many of its three
/// parts were given).
struct Constraint {
    op: String,
    v: Version,
    given: usize,
}

fn parse_constraint(text: &str) -> Option<Constraint> {
    let t = text.trim();
    let op_len = t
        .find(|c: char| c.is_ascii_alphanumeric() || c == '*')
        .unwrap_or(t.len());
    let (op, rest) = t.split_at(op_len);
    let op = op.trim().to_string();
    if ![
        "", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^",
    ]
    .contains(&op.as_str())
    {
        return None;
    }
    let rest = rest.trim();
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (core, tail) = match rest.find(['-', '+']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut given = 0;
    let mut nums = Vec::new();
    for p in &parts {
        if matches!(*p, "x" | "X" | "*") {
            break;
        }
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums.push(*p);
        given += 1;
    }
    while nums.len() < 3 {
        nums.push("0");
    }
    let v = Version::parse(&format!("{}{tail}", nums.join(".")))?;
    Some(Constraint { op, v, given })
}

/// The version one past the wildcard range (`1.x` → 2.0.0, `1.2.x` → 1.3.0).
fn bump(v: &Version, given: usize) -> Version {
    let mut b = Version {
        major: v.major,
        minor: v.minor,
        patch: v.patch,
        pre: String::new(),
        meta: String::new(),
    };
    match given {
        0 => b.major = u64::MAX,
        1 => {
            b.major += 1;
            b.minor = 0;
            b.patch = 0;
        }
        2 => {
            b.minor += 1;
            b.patch = 0;
        }
        _ => b.patch += 1,
    }
    b
}

fn check(c: &Constraint, v: &Version) -> bool {
    // a pre-release version only matches a constraint that names a pre-release
    if !v.pre.is_empty() && c.v.pre.is_empty() {
        return false;
    }
    let lo = &c.v;
    let ge_lo = v.cmp(lo) != Ordering::Less;
    let in_range = |hi: &Version| ge_lo && v.cmp(hi) == Ordering::Less;
    match c.op.as_str() {
        "" | "=" => {
            if c.given < 3 {
                in_range(&bump(lo, c.given))
            } else {
                v.cmp(lo) == Ordering::Equal
            }
        }
        "!=" => {
            if c.given < 3 {
                !in_range(&bump(lo, c.given))
            } else {
                v.cmp(lo) != Ordering::Equal
            }
        }
        ">" => {
            if c.given < 3 {
                v.cmp(&bump(lo, c.given)) != Ordering::Less
            } else {
                v.cmp(lo) == Ordering::Greater
            }
        }
        "<" => v.cmp(lo) == Ordering::Less,
        ">=" | "=>" => ge_lo,
        "<=" | "=<" => {
            if c.given < 3 {
                v.cmp(&bump(lo, c.given)) == Ordering::Less
            } else {
                v.cmp(lo) != Ordering::Greater
            }
        }
        "~" | "~>" => in_range(&bump(lo, if c.given >= 2 { 2 } else { 1 })),
        "^" => {
            let given = if lo.major > 0 || c.given <= 1 {
                1
            } else if lo.minor > 0 || c.given == 2 {
                2
            } else {
                3
            };
            in_range(&bump(lo, given))
        }
        _ => false,
    }
}

fn semver_compare(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "semverCompare", 2)?;
    let constraint = str_param(&args[0])?;
    let version = str_param(&args[1])?;
    let mut groups = Vec::new();
    for group in constraint.split("||") {
        let mut parts: Vec<Constraint> = Vec::new();
        let tokens: Vec<&str> = group
            .split([',', ' '])
            .filter(|t| !t.trim().is_empty())
            .collect();
        let mut i = 0;
        while i < tokens.len() {
            // a hyphen range: "1.2 - 1.4"
            if tokens.get(i + 1) == Some(&"-") {
                let (a, b) = (tokens[i], tokens.get(i + 2).copied().unwrap_or(""));
                parts.push(parse_constraint(&format!(">={a}")).ok_or_else(|| bad(&constraint))?);
                parts.push(parse_constraint(&format!("<={b}")).ok_or_else(|| bad(&constraint))?);
                i += 3;
                continue;
            }
            // an operator written apart from its version ("> 1.2")
            let token = if tokens[i].chars().all(|c| "<>=!~^".contains(c)) {
                i += 1;
                format!("{}{}", tokens[i - 1], tokens.get(i).copied().unwrap_or(""))
            } else {
                tokens[i].to_string()
            };
            parts.push(parse_constraint(&token).ok_or_else(|| bad(&constraint))?);
            i += 1;
        }
        if parts.is_empty() {
            return Err(bad(&constraint));
        }
        groups.push(parts);
    }
    let v = Version::parse_or_error(&version)?;
    Ok(Value::Bool(
        groups.iter().any(|g| g.iter().all(|c| check(c, &v))),
    ))
}

fn bad(constraint: &str) -> FuncError {
    FuncError::Generic(format!("improper constraint: {constraint}"))
}

/// Percent-decoding as Go's `url.PathUnescape`; `None` for a bad escape.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-encoding of what Go escapes in a path (or, with `userinfo`, in user info).
fn escape(s: &str, userinfo: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (!userinfo
                && matches!(
                    b,
                    b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
                ))
            || (userinfo
                && matches!(
                    b,
                    b'$' | b'&' | b'+' | b',' | b';' | b'=' | b'!' | b'*' | b'\'' | b'(' | b')'
                ));
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parts of a URL as Go's `url.Parse` finds them.
#[derive(Default)]
struct Url {
    scheme: String,
    opaque: String,
    user: Option<(String, Option<String>)>,
    host: String,
    path: String,
    query: String,
    fragment: String,
}

fn parse_url(raw: &str) -> Result<Url, String> {
    let err = |why: &str| format!("parse {raw:?}: {why}");
    let mut u = Url::default();
    let (rest, fragment) = match raw.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (raw, None),
    };
    if let Some(f) = fragment {
        u.fragment = unescape(f).ok_or_else(|| err("invalid URL escape"))?;
    }
    // scheme
    let mut rest = rest;
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if i == 0 {
            return Err(err("missing protocol scheme"));
        }
        if valid {
            u.scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    if let Some((a, q)) = rest.split_once('?') {
        u.query = q.to_string();
        rest = a;
    }
    if !u.scheme.is_empty() && !rest.starts_with('/') {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if let Some(auth_and_path) = rest.strip_prefix("//") {
        let (authority, path) = match auth_and_path.find('/') {
            Some(i) => auth_and_path.split_at(i),
            None => (auth_and_path, ""),
        };
        let host = match authority.rsplit_once('@') {
            Some((info, host)) => {
                let valid = info
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
                if !valid {
                    return Err(err("net/url: invalid userinfo"));
                }
                let (user, pass) = match info.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (info, None),
                };
                u.user = Some((
                    unescape(user).ok_or_else(|| err("invalid userinfo"))?,
                    pass.map(|p| unescape(p).unwrap_or_default()),
                ));
                host
            }
            None => authority,
        };
        u.host = unescape(host).ok_or_else(|| err("invalid URL escape"))?;
        rest = path;
    } else if u.scheme.is_empty() && rest.split('/').next().is_some_and(|s| s.contains(':')) {
        return Err(err("first path segment in URL cannot contain colon"));
    }
    u.path = unescape(rest).ok_or_else(|| err("invalid URL escape"))?;
    Ok(u)
}

fn userinfo_text(user: &(String, Option<String>)) -> String {
    match &user.1 {
        Some(p) => format!("{}:{}", escape(&user.0, true), escape(p, true)),
        None => escape(&user.0, true),
    }
}

fn url_parse(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "urlParse", 1)?;
    let raw = str_param(&args[0])?;
    let u = parse_url(&raw).map_err(|e| FuncError::Generic(format!("unable to parse url: {e}")))?;
    let hostname = match u.host.strip_prefix('[') {
        Some(h) => h.split(']').next().unwrap_or_default().to_string(),
        None => u.host.split(':').next().unwrap_or_default().to_string(),
    };
    let s = |v: &str| Value::String(v.to_string());
    Ok(super::go::map_value(HashMap::from([
        ("scheme".to_string(), s(&u.scheme)),
        ("host".to_string(), s(&u.host)),
        ("hostname".to_string(), s(&hostname)),
        ("path".to_string(), s(&u.path)),
        ("query".to_string(), s(&u.query)),
        ("opaque".to_string(), s(&u.opaque)),
        ("fragment".to_string(), s(&u.fragment)),
        (
            "userinfo".to_string(),
            s(&u.user.as_ref().map(userinfo_text).unwrap_or_default()),
        ),
    ])))
}

fn url_join(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "urlJoin", 1)?;
    let d = map_param(&args[0])?;
    let get = |k: &str| d.get(k).map(strval).unwrap_or_default();
    let (scheme, host, path, query, opaque, fragment, userinfo) = (
        get("scheme"),
        get("host"),
        get("path"),
        get("query"),
        get("opaque"),
        get("fragment"),
        get("userinfo"),
    );
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    if !opaque.is_empty() {
        out.push_str(&opaque);
    } else {
        if !scheme.is_empty() || !host.is_empty() || !userinfo.is_empty() {
            if !host.is_empty() || !path.is_empty() || !userinfo.is_empty() {
                out.push_str("//");
            }
            if !userinfo.is_empty() {
                let user = parse_url(&format!("proto://{userinfo}@host"))
                    .map_err(|e| {
                        FuncError::Generic(format!("unable to parse userinfo in dict: {e}"))
                    })?
                    .user;
                if let Some(user) = user {
                    out.push_str(&userinfo_text(&user));
                    out.push('@');
                }
            }
            out.push_str(&host);
        }
        if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        out.push_str(&escape(&path, false));
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&escape(&fragment, false));
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn yes(c: &str, v: &str) -> bool {
        matches!(semver_compare(&[s(c), s(v)]).unwrap(), Value::Bool(true))
    }

    #[test]
    fn versions_as_masterminds() {
        assert_eq!(strval(&semver(&[s("v1.2")]).unwrap()), "1.2.0");
        assert!(semver(&[s("notaversion")]).is_err());
        assert!(yes(">=1.2.0", "1.2.3"));
        assert!(!yes("^2", "1.9.9"));
        assert!(yes("~1.2", "1.2.9"));
        assert!(yes("1.x", "1.5.0"));
        assert!(!yes(">=1.0.0", "1.2.0-rc1"));
        assert!(yes("1.0 - 1.4", "1.3.0"));
        assert!(yes("<1 || >=3", "3.1.0"));
        assert!(semver_compare(&[s("bad constraint"), s("1.0.0")]).is_err());
    }

    #[test]
    fn urls_as_go() {
        let u = parse_url("https://user:pw@example.com:8443/path/x?q=1&r=2#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("example.com:8443", "/path/x")
        );
        assert!(parse_url("::bad").is_err());
        let joined = url_join(&[Value::Map(
            HashMap::from([
                ("scheme".to_string(), s("https")),
                ("host".to_string(), s("x.org")),
                ("path".to_string(), s("/a b")),
                ("query".to_string(), s("q=1")),
            ])
            .into(),
        )])
        .unwrap();
        assert_eq!(strval(&joined), "https://x.org/a%20b?q=1");
    }
}
