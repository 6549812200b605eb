//! Kubernetes' format library: `format.named(<string>)` (an optional format) and
//! `format.<name>()`, whose `validate(<string>)` is `optional.none()` for a valid string, else
//! the list of the problems, worded as the real server's validators word them.

use cel::common::types::{CelList, CelOptional, CelString};
use cel::common::value::Val;
use cel::{DeclarationError, Env};

/// A named format (`kubernetes.NamedFormat`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Format(&'static str);

opaque_val!(Format, "kubernetes.NamedFormat");

/// The names `format.named` knows.
const NAMES: [&str; 13] = [
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
];

/// Declares `format.named`, `format.<name>()` and `validate` on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn named: (CelString) -> CelOptional, name = "format.named",
        id = "format-named")?;
    cel::add_member_overload!(env, fn validate: (Format, CelString) -> CelOptional,
        id = "format-validate")?;
    macro_rules! constant {
        ($($f:ident = $name:literal),* $(,)?) => {$(
            fn $f() -> Format {
                Format($name)
            }
            cel::add_overload!(env, fn $f: () -> Format, name = concat!("format.", $name),
                id = concat!("format.", $name))?;
        )*};
    }
    constant!(
        dns1123_label = "dns1123Label",
        dns1123_subdomain = "dns1123Subdomain",
        dns1035_label = "dns1035Label",
        qualified_name = "qualifiedName",
        dns1123_label_prefix = "dns1123LabelPrefix",
        dns1123_subdomain_prefix = "dns1123SubdomainPrefix",
        dns1035_label_prefix = "dns1035LabelPrefix",
        label_value = "labelValue",
        uri = "uri",
        uuid = "uuid",
        byte = "byte",
        date = "date",
        datetime = "datetime",
    );
    Ok(())
}

fn named(name: &CelString<'_>) -> CelOptional<'static> {
    match NAMES.iter().find(|n| **n == name.inner()) {
        Some(n) => CelOptional::of(Box::new(Format(n))),
        None => CelOptional::none(),
    }
}

fn validate(format: &Format, s: &CelString<'_>) -> CelOptional<'static> {
    let problems = problems(format.0, s.inner());
    if problems.is_empty() {
        return CelOptional::none();
    }
    let list: Vec<Box<dyn Val>> = problems
        .into_iter()
        .map(|p| Box::new(CelString::from(p)) as Box<dyn Val>)
        .collect();
    CelOptional::of(Box::new(CelList::from(list)))
}

const LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Whether all of `s` matches `pattern`.
fn whole(pattern: &str, s: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(s))
}

/// apimachinery's `RegexError`: the message, examples and the pattern.
fn regex_error(msg: &str, pattern: &str, examples: &[&str]) -> String {
    let examples: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    if examples.is_empty() {
        format!("{msg} (regex used for validation is '{pattern}')")
    } else {
        format!("{msg} (e.g. {examples}regex used for validation is '{pattern}')")
    }
}

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// A generated-name prefix is checked with a trailing `-` read as a letter.
fn mask_trailing_dash(s: &str) -> String {
    match s.strip_suffix('-') {
        Some(rest) if s.len() > 1 => format!("{rest}a"),
        _ => s.to_string(),
    }
}

fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !whole(LABEL, s) {
        if whole(SUBDOMAIN, s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                LABEL,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if !whole(SUBDOMAIN, s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            SUBDOMAIN,
            &["example.com"],
        ));
    }
    errs
}

fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !whole(DNS1035, s) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_MSG, QUALIFIED, &["MyName", "my.name", "123-abc"])
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len(63)));
    }
    if !whole(QUALIFIED, name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_MSG, QUALIFIED, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    let pattern = format!("({QUALIFIED})?");
    if !whole(&pattern, s) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            &pattern,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// What is wrong with `s` as the format `name`.
fn problems(name: &str, s: &str) -> Vec<String> {
    let check = |format: &str, message: &str| {
        if super::super::validate::format_ok(format, s) {
            Vec::new()
        } else {
            vec![message.to_string()]
        }
    };
    match name {
        "dns1123Label" => dns1123_label(s),
        "dns1123LabelPrefix" => dns1123_label(&mask_trailing_dash(s)),
        "dns1123Subdomain" => dns1123_subdomain(s),
        "dns1123SubdomainPrefix" => dns1123_subdomain(&mask_trailing_dash(s)),
        "dns1035Label" => dns1035_label(s),
        "dns1035LabelPrefix" => dns1035_label(&mask_trailing_dash(s)),
        "qualifiedName" => qualified_name(s),
        "labelValue" => label_value(s),
        "uri" => super::url::request_uri_error(s).into_iter().collect(),
        "uuid" => check("uuid", "does not match the UUID format"),
        "byte" => check("byte", "invalid base64"),
        "date" => check("date", "invalid date"),
        "datetime" => check("date-time", "invalid datetime"),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, yes};
    use cel::Value;

    #[test]
    fn valid_strings_validate_to_none() {
        yes("!format.dns1123Label().validate('my-label-name').hasValue()");
        yes("!format.dns1123Subdomain().validate('apiextensions.k8s.io').hasValue()");
        yes("!format.dns1035Label().validate('my-label-name').hasValue()");
        yes("!format.qualifiedName().validate('apiextensions.k8s.io/v1beta1').hasValue()");
        yes("!format.dns1123LabelPrefix().validate('my-label-prefix-').hasValue()");
        yes("!format.dns1035LabelPrefix().validate('my-label-prefix-').hasValue()");
        yes("!format.labelValue().validate('').hasValue()");
        yes("!format.uri().validate('http://example.com').hasValue()");
        yes("!format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()");
        yes("!format.byte().validate('aGVsbG8=').hasValue()");
        yes("!format.date().validate('2021-01-01').hasValue()");
        yes("!format.datetime().validate('2021-01-01T00:00:00Z').hasValue()");
    }

    #[test]
    fn invalid_strings_list_their_problems() {
        assert_eq!(
            eval("format.dns1123Label().validate('My_Name').value()"),
            Ok(Value::from(vec![Value::from(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )]))
        );
        assert_eq!(
            eval("format.dns1123Label().validate('a.b').value()"),
            Ok(Value::from(vec![Value::from("must not contain dots")]))
        );
        assert_eq!(
            super::dns1123_label(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert_eq!(
            eval("format.qualifiedName().validate('/x').value()"),
            Ok(Value::from(vec![Value::from(
                "prefix part must be non-empty"
            )]))
        );
        assert_eq!(
            eval("format.uri().validate('x').value()"),
            Ok(Value::from(vec![Value::from(
                "parse \"x\": invalid URI for request"
            )]))
        );
        assert_eq!(
            eval("format.uuid().validate('nope').value()"),
            Ok(Value::from(vec![Value::from(
                "does not match the UUID format"
            )]))
        );
        yes("format.date().validate('2021-13-01').hasValue()");
    }

    #[test]
    fn named() {
        yes("format.named('dns1123Label').hasValue()");
        yes("!format.named('nope').hasValue()");
        yes("format.named('labelValue').value().validate('bad value!').hasValue()");
    }
}
