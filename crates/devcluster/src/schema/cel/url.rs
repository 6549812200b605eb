//! Kubernetes' URL library: `url(<string>)`, `isURL(<string>)` and the getters `getScheme`,
//! `getHost`, `getHostname`, `getPort`, `getEscapedPath` and `getQuery`.
//!
//! A URL is what Go's `url.ParseRequestURI` accepts (an absolute URI or an absolute path; the
//! WHATWG parser of the `url` crate normalises hosts, ports and paths, which Go does not), and
//! its parts are those Go's `url.Parse` reports.

use std::collections::HashMap;

use cel::common::types::{CelBool, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

use super::env::fail;

/// A parsed URL (`kubernetes.URL`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Url {
    scheme: String,
    /// Unescaped host, with the port and IPv6 brackets.
    host: String,
    /// Unescaped path.
    path: String,
    /// The path as written, when that is a valid escaping of `path`.
    raw_path: String,
    query: String,
}

opaque_val!(Url, "kubernetes.URL");

/// Declares the URL functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn url: (CelString) -> Result<Url>, id = "string_to_url")?;
    cel::add_overload!(env, fn is_url: (CelString) -> CelBool, name = "isURL", id = "is_url_string")?;
    cel::add_member_overload!(env, fn get_scheme: (Url) -> CelString, id = "url_get_scheme")?;
    cel::add_member_overload!(env, fn get_host: (Url) -> CelString, id = "url_get_host")?;
    cel::add_member_overload!(env, fn get_hostname: (Url) -> CelString, id = "url_get_hostname")?;
    cel::add_member_overload!(env, fn get_port: (Url) -> CelString, id = "url_get_port")?;
    cel::add_member_overload!(env, fn get_escaped_path: (Url) -> CelString,
        id = "url_get_escaped_path")?;
    cel::add_member_overload!(env, fn get_query: (Url) -> CelMap, id = "url_get_query")?;
    Ok(())
}

fn url(s: &CelString<'_>) -> Result<Url, ExecutionError> {
    let s = s.inner();
    parse(s, true).map_err(|e| {
        fail(
            "url",
            format!("URL parse error during conversion from string: parse {s:?}: {e}"),
        )
    })?;
    // as the real server: checked as a request URI, read as a URL (fragment apart)
    let without_fragment = s.split_once('#').map_or(s, |(u, _)| u);
    parse(without_fragment, false).map_err(|e| {
        fail(
            "url",
            format!("URL parse error during conversion from string: parse {s:?}: {e}"),
        )
    })
}

fn is_url(s: &CelString<'_>) -> CelBool {
    CelBool::from(parse(s.inner(), true).is_ok())
}

fn get_scheme(u: &Url) -> CelString<'static> {
    u.scheme.clone().into()
}

fn get_host(u: &Url) -> CelString<'static> {
    u.host.clone().into()
}

fn get_hostname(u: &Url) -> CelString<'static> {
    let (host, _) = split_host_port(&u.host);
    host.to_string().into()
}

fn get_port(u: &Url) -> CelString<'static> {
    let (_, port) = split_host_port(&u.host);
    port.to_string().into()
}

fn get_escaped_path(u: &Url) -> CelString<'static> {
    if !u.raw_path.is_empty() {
        return u.raw_path.clone().into();
    }
    escape_path(&u.path).into()
}

fn get_query(u: &Url) -> CelMap<'static> {
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in u.query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (unescape(k, true), unescape(v, true)) else {
            continue;
        };
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vs)) => vs.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = values
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(list)) as Box<dyn Val>,
            )
        })
        .collect();
    CelMap::from(map)
}

/// Go's `url.ParseRequestURI` error for `s`, as Go prints it (`parse "<s>": ...`), if any.
pub(super) fn request_uri_error(s: &str) -> Option<String> {
    parse(s, true).err().map(|e| format!("parse {s:?}: {e}"))
}

/// Go's `url.Parse` (`request: false`) or `url.ParseRequestURI` (`request: true`) on a URL
/// without a fragment; the error is Go's, without its `parse "<url>": ` prefix.
fn parse(raw: &str, request: bool) -> Result<Url, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && request {
        return Err("empty url".into());
    }
    let mut url = Url {
        scheme: String::new(),
        host: String::new(),
        path: String::new(),
        raw_path: String::new(),
        query: String::new(),
    };
    if raw == "*" {
        url.path = "*".into();
        return Ok(url);
    }
    let (scheme, rest) = split_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    let mut rest = rest;
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((r, q)) = rest.split_once('?') {
        rest = r;
        url.query = q.to_string();
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            // an opaque URL such as `mailto:x`: no host, no path
            return Ok(url);
        }
        if request {
            return Err("invalid URI for request".into());
        }
        if let Some(colon) = rest.find(':')
            && rest.find('/').is_none_or(|slash| colon < slash)
        {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!url.scheme.is_empty() || !request && !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let end = after.find('/').unwrap_or(after.len());
        url.host = parse_authority(&after[..end])?;
        rest = &after[end..];
    }
    url.path = unescape(rest, false)?;
    if rest != escape_path(&url.path) && valid_encoded(rest) {
        url.raw_path = rest.to_string();
    }
    Ok(url)
}

/// Splits `scheme:rest`; no scheme when the first `:` comes after a character a scheme cannot
/// hold.
fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".into()),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// The host of `userinfo@host:port`, unescaped, the userinfo checked.
fn parse_authority(authority: &str) -> Result<String, String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let ok = userinfo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
        if !ok {
            return Err("net/url: invalid userinfo".into());
        }
    }
    if let Some(after_bracket) = host.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return Err("missing ']' in host".into());
        };
        let port = &after_bracket[close + 1..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    } else if let Some(colon) = host.rfind(':') {
        let port = &host[colon..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    }
    unescape(host, false)
}

/// `""` or `:` followed by digits only.
fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Go's `url.splitHostPort`: the host without brackets, and the port.
fn split_host_port(host_port: &str) -> (&str, &str) {
    let (mut host, mut port) = (host_port, "");
    if let Some(colon) = host_port.rfind(':')
        && valid_optional_port(&host_port[colon..])
    {
        (host, port) = (&host_port[..colon], &host_port[colon + 1..]);
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        host = inner;
    }
    (host, port)
}

/// Percent-decodes `s`; in a query, `+` is a space.
fn unescape(s: &str, query: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {bad:?}"));
                };
                out.push(b);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether Go leaves `b` alone in a path.
fn path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b)
}

/// Go's `url.PathEscape`-like escaping of a path (`/` kept).
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if path_safe(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's `validEncoded` for a path: only characters a path may hold unescaped, or escapes.
fn valid_encoded(s: &str) -> bool {
    s.bytes()
        .all(|b| path_safe(b) || b"!$&'()*+,;=:@[]%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::super::env::eval;
    use cel::Value;

    fn string(expr: &str) -> String {
        match eval(expr) {
            Ok(Value::String(s)) => s.to_string(),
            other => panic!("{expr}: {other:?}"),
        }
    }

    #[test]
    fn is_url() {
        for good in [
            "https://user:pass@example.com:80/path?query=val#fragment",
            "/absolute-path",
            "https://[::1]:80/",
        ] {
            assert_eq!(
                eval(&format!("isURL('{good}')")),
                Ok(Value::Bool(true)),
                "{good}"
            );
        }
        for bad in ["https://a:b:c/", "../relative-path", "", "http://[::1/"] {
            assert_eq!(
                eval(&format!("isURL('{bad}')")),
                Ok(Value::Bool(false)),
                "{bad}"
            );
        }
    }

    #[test]
    fn url_errors_name_the_string() {
        assert_eq!(
            eval("url('../relative-path')"),
            Err("URL parse error during conversion from string: parse \"../relative-path\": invalid URI for request".to_string())
        );
        assert_eq!(
            eval("url('https://a:b:c/')"),
            Err("URL parse error during conversion from string: parse \"https://a:b:c/\": invalid port \":c\" after host".to_string())
        );
    }

    #[test]
    fn getters() {
        assert_eq!(string("url('/path').getScheme()"), "");
        assert_eq!(string("url('HTTPS://example.com/').getScheme()"), "https");
        assert_eq!(
            string("url('https://example.com:80/').getHost()"),
            "example.com:80"
        );
        assert_eq!(
            string("url('https://example.com:443/').getHost()"),
            "example.com:443"
        );
        assert_eq!(string("url('https://[::1]:80/').getHost()"), "[::1]:80");
        assert_eq!(string("url('/path').getHost()"), "");
        assert_eq!(string("url('https://[::1]:80/').getHostname()"), "::1");
        assert_eq!(
            string("url('https://127.0.0.1:80/').getHostname()"),
            "127.0.0.1"
        );
        assert_eq!(string("url('https://example.com:80/').getPort()"), "80");
        assert_eq!(string("url('https://example.com/').getPort()"), "");
        assert_eq!(
            string("url('https://example.com/path').getEscapedPath()"),
            "/path"
        );
        assert_eq!(
            string("url('https://example.com/path with spaces/').getEscapedPath()"),
            "/path%20with%20spaces/"
        );
        assert_eq!(
            string("url('https://example.com/a%2Fb').getEscapedPath()"),
            "/a%2Fb"
        );
        assert_eq!(string("url('https://example.com').getEscapedPath()"), "");
        assert_eq!(
            string("url('https://example.com/p#frag').getEscapedPath()"),
            "/p"
        );
    }

    #[test]
    fn query() {
        assert_eq!(
            eval(
                "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}"
            ),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval(
                "url('https://example.com/path?key%20x=value+y').getQuery() == {'key x': ['value y']}"
            ),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("url('https://example.com/path?').getQuery() == {}"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("url('https://example.com/path').getQuery().size()"),
            Ok(Value::Int(0))
        );
    }
}
