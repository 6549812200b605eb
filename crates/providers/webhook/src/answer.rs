//! What a JSON answer gives: one value (`get_secret` with `result.jsonPath`) or a key map
//! (`get_secret_map`, the Webhook generator), picked by `result.jsonPath` (RFC 9535 syntax).
//!
//! A path that can only select one value (no wildcard, filter, slice, union or `..`) gives
//! that value, others the array of what they select. For a key map a string result is parsed
//! as JSON again and must be an object; each member is one key: strings as they are, numbers
//! in plain decimal, `true`/`false`, null empty, objects and arrays as Go's `json.Marshal`
//! writes them. For one value, as upstream: numbers rounded to whole numbers, an array gives
//! its first element, an object its JSON. Messages name the path, never the answer.

use serde_json::Value;
use strongroom_provider_api::{ProviderError, SecretBytes, SecretMap};

fn malformed(msg: String) -> ProviderError {
    ProviderError::Malformed(msg)
}

/// Whether a JSONPath can select more than one value (its result is then an array).
pub fn selects_many(path: &str) -> bool {
    let mut in_quote: Option<char> = None;
    let mut depth = 0usize;
    let mut previous = '\0';
    for c in path.chars() {
        match in_quote {
            Some(q) => {
                if c == q && previous != '\\' {
                    in_quote = None;
                }
            }
            None => match c {
                '\'' | '"' => in_quote = Some(c),
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '*' | '?' => return true,
                '.' if previous == '.' => return true,
                ':' | ',' if depth > 0 => return true,
                _ => {}
            },
        }
        previous = c;
    }
    false
}

/// Go's `%T` of a value `json.Unmarshal` read into `interface{}`.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The JSON answer, or the part `json_path` picks (`key` names the remote key in a
/// [`ProviderError::NotFound`] when the path selects nothing).
fn pick(body: &[u8], json_path: &str, key: &str) -> Result<Value, ProviderError> {
    let data: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("failed to parse response json: {e}")))?;
    if json_path.is_empty() {
        return Ok(data);
    }
    use jsonpath_rust::JsonPath;
    let found = data
        .query(json_path)
        .map_err(|e| malformed(format!("failed to get response path {json_path}: {e}")))?;
    if selects_many(json_path) {
        return Ok(Value::Array(found.into_iter().cloned().collect()));
    }
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(ProviderError::not_found_in(
            key,
            format!("failed to get response path {json_path}: it selects nothing"),
        )),
    }
}

/// One key-map value, as upstream turns a JSON member into bytes.
fn member_bytes(value: &Value) -> Result<SecretBytes, String> {
    Ok(match value {
        Value::String(s) => SecretBytes::from(s.as_str()),
        Value::Null => SecretBytes::from(""),
        Value::Bool(b) => SecretBytes::from(b.to_string().as_str()),
        Value::Number(n) => {
            let f = n.as_f64().ok_or("a number does not fit a float64")?;
            SecretBytes::from(f.to_string().as_str())
        }
        other => SecretBytes::from(
            strongroom_core::template::go_json(other, true)
                .ok_or("a value cannot be written as JSON")?
                .as_str(),
        ),
    })
}

/// The keys of the answer `body` (the part `json_path` picks when set).
pub fn secret_map(body: &[u8], json_path: &str, key: &str) -> Result<SecretMap, ProviderError> {
    let mut data = pick(body, json_path, key)?;
    if let Value::String(text) = &data {
        data = serde_json::from_str(text)
            .map_err(|e| malformed(format!("failed to parse response json from jsonpath: {e}")))?;
    }
    let Value::Object(members) = &data else {
        return Err(malformed(format!(
            "failed to get response (wrong type: {})",
            go_type(&data)
        )));
    };
    members
        .iter()
        .map(|(k, v)| {
            member_bytes(v)
                .map(|b| (k.clone(), b))
                .map_err(|e| malformed(format!("failed to get response for key '{k}': {e}")))
        })
        .collect()
}

/// One value of the answer `body`: the body itself without `json_path`, else the part the
/// path picks, converted as upstream's `GetSecret` does.
pub fn single_value(
    body: Vec<u8>,
    json_path: &str,
    key: &str,
) -> Result<SecretBytes, ProviderError> {
    if json_path.is_empty() {
        return Ok(SecretBytes::new(body));
    }
    let data = pick(&body, json_path, key)?;
    scalar_bytes(&data)
}

fn scalar_bytes(value: &Value) -> Result<SecretBytes, ProviderError> {
    Ok(match value {
        Value::Bool(b) => SecretBytes::from(b.to_string().as_str()),
        Value::Null => SecretBytes::from(""),
        Value::Number(n) => {
            let f = n
                .as_f64()
                .ok_or_else(|| malformed("a number does not fit a float64".into()))?;
            SecretBytes::from(format!("{f:.0}").as_str())
        }
        Value::String(s) => SecretBytes::from(s.as_str()),
        Value::Array(items) => match items.first() {
            Some(first) => scalar_bytes(first)?,
            None => {
                return Err(malformed("filter worked but didn't get any result".into()));
            }
        },
        Value::Object(_) => SecretBytes::from(
            strongroom_core::template::go_json(value, true)
                .ok_or_else(|| malformed("a value cannot be written as JSON".into()))?
                .as_str(),
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(m: &SecretMap, k: &str) -> String {
        String::from_utf8_lossy(m[k].expose()).into_owned()
    }

    fn one(body: &str, path: &str) -> Result<String, ProviderError> {
        single_value(body.as_bytes().to_vec(), path, "k")
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
    }

    #[test]
    fn maps_convert_members_as_upstream() {
        let body = br#"{"s": "x", "n": 42, "f": 1.5, "big": 1e21, "b": true, "z": null,
            "o": {"b": 1, "a": "<&>"}, "l": [1, "two"]}"#;
        let m = secret_map(body, "", "k").unwrap();
        assert_eq!(text(&m, "s"), "x");
        assert_eq!(text(&m, "n"), "42");
        assert_eq!(text(&m, "f"), "1.5");
        assert_eq!(text(&m, "big"), "1000000000000000000000");
        assert_eq!(text(&m, "b"), "true");
        assert_eq!(text(&m, "z"), "");
        assert_eq!(text(&m, "o"), r#"{"a":"\u003c\u0026\u003e","b":1}"#);
        assert_eq!(text(&m, "l"), r#"[1,"two"]"#);
    }

    #[test]
    fn json_paths_pick_one_value_or_many() {
        let body = br#"{"data": {"token": "t"}, "wrapped": "{\"k\": \"v\"}", "list": [{"a": 1}]}"#;
        assert_eq!(
            text(&secret_map(body, "$.data", "k").unwrap(), "token"),
            "t"
        );
        assert_eq!(text(&secret_map(body, "$.wrapped", "k").unwrap(), "k"), "v");
        assert_eq!(text(&secret_map(body, "$.list[0]", "k").unwrap(), "a"), "1");
        let e = secret_map(body, "$.list[*]", "k").err().unwrap();
        assert_eq!(
            e,
            ProviderError::Malformed("failed to get response (wrong type: []interface {})".into())
        );
        let e = secret_map(body, "$.nope", "k").err().unwrap();
        assert!(e.is_not_found() && e.to_string().contains("$.nope"), "{e}");
        let e = secret_map(b"not json canary", "", "k")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("failed to parse response json:") && !e.contains("canary"),
            "{e}"
        );
        assert!(selects_many("$..a") && selects_many("$.a[0:2]") && selects_many("$['a','b']"));
        assert!(!selects_many("$['a.b*']") && !selects_many("$.a[0].b"));
    }

    #[test]
    fn single_values_are_the_body_or_the_picked_scalar() {
        assert_eq!(one("plain text", "").unwrap(), "plain text");
        let body = r#"{"s": "v", "n": 1.5, "i": 5432, "b": false, "z": null,
            "l": ["first", "second"], "o": {"b": 2, "a": 1}, "e": []}"#;
        assert_eq!(one(body, "$.s").unwrap(), "v");
        assert_eq!(one(body, "$.n").unwrap(), "2");
        assert_eq!(one(body, "$.i").unwrap(), "5432");
        assert_eq!(one(body, "$.b").unwrap(), "false");
        assert_eq!(one(body, "$.z").unwrap(), "");
        assert_eq!(one(body, "$.l").unwrap(), "first");
        assert_eq!(one(body, "$.l[*]").unwrap(), "first");
        assert_eq!(one(body, "$.o").unwrap(), r#"{"a":1,"b":2}"#);
        assert!(
            one(body, "$.e")
                .unwrap_err()
                .to_string()
                .contains("didn't get any result")
        );
        assert!(one(body, "$['missing']").unwrap_err().is_not_found());
        assert_eq!(
            one("[no json", "$.a").unwrap_err().category(),
            "malformed_answer"
        );
    }
}
