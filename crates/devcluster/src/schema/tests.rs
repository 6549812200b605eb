use serde_json::json;

use super::*;

fn rt(schema: Value) -> ResourceType {
    ResourceType {
        group: "test.strongroom.dev".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        singular: "widget".into(),
        namespaced: true,
        short_names: Vec::new(),
        categories: Vec::new(),
        status_subresource: false,
        tracks_generation: true,
        schema: Some(Arc::new(schema)),
        printer_columns: None,
        selectable_fields: Vec::new(),
    }
}

fn widget_schema() -> Value {
    json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "when": {"type": "string", "format": "date-time"},
            "port": {"x-kubernetes-int-or-string": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "note": {"type": "string", "nullable": true},
        }, "x-kubernetes-validations": [{"rule": "self.size != 7", "message": "seven is unlucky"}]}
    }})
}

fn admit_new(obj: Value, mode: FieldValidation) -> (Result<Value, ApiError>, Vec<String>) {
    let rt = rt(widget_schema());
    let warnings = Warnings::default();
    let mut obj = obj;
    let r = admit(&rt, None, &mut obj, mode, &warnings).map(|()| obj);
    (r, warnings.take())
}

#[test]
fn valid_objects_are_defaulted_and_pruned_with_warnings() {
    let (r, warnings) = admit_new(
        json!({"apiVersion": "test.strongroom.dev/v1", "kind": "Widget",
               "metadata": {"name": "w", "bogus": 1},
               "spec": {"size": 3, "port": "http", "extra": {"any": {"thing": 1}}, "note": null, "junk": true},
               "top": 1}),
        FieldValidation::Warn,
    );
    let obj = r.unwrap();
    assert_eq!(obj["spec"]["mode"], "a", "default applied");
    assert_eq!(obj["spec"]["extra"]["any"]["thing"], 1, "preserved");
    assert!(obj["spec"].get("junk").is_none() && obj.get("top").is_none());
    assert!(obj["metadata"].get("bogus").is_none());
    assert!(obj["spec"]["note"].is_null());
    assert_eq!(
        warnings,
        [
            "unknown field \"metadata.bogus\"",
            "unknown field \"spec.junk\"",
            "unknown field \"top\""
        ]
    );
}

#[test]
fn strict_refuses_unknown_fields() {
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {"size": 3, "junk": 1}}),
        FieldValidation::Strict,
    );
    let e = r.unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.junk\""
    );
}

#[test]
fn each_rule_is_a_cause() {
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {
            "size": "big", "mode": "c", "name": "ABCDEFG", "when": "yesterday",
            "port": 1.5, "tags": ["a", "b", "c"]}}),
        FieldValidation::Warn,
    );
    let e = r.unwrap_err();
    assert_eq!(e.code, 422);
    let causes: Vec<(String, String)> = e.details.unwrap()["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        (
            "spec.mode",
            "Unsupported value: \"c\": supported values: \"a\", \"b\"",
        ),
        ("spec.name", "Too long: may not be more than 5 bytes"),
        (
            "spec.name",
            "Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
        ),
        (
            "spec.port",
            "Invalid value: \"number\": spec.port in body must be of type integer or string: \"number\"",
        ),
        (
            "spec.size",
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        ),
        ("spec.tags", "Too many: 3: must have at most 2 items"),
        (
            "spec.when",
            "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        ),
    ];
    for (field, message) in want {
        assert!(
            causes.iter().any(|(f, m)| f == field && m == message),
            "{field}: {message} not in {causes:#?}"
        );
    }
    assert!(
        e.message
            .starts_with("Widget.test.strongroom.dev \"w\" is invalid: [")
    );
}

#[test]
fn limits_required_and_cel() {
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {"size": 7}}),
        FieldValidation::Warn,
    );
    assert_eq!(
        r.unwrap_err().message,
        "Widget.test.strongroom.dev \"w\" is invalid: spec: Invalid value: \"object\": seven is unlucky"
    );
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {}}),
        FieldValidation::Warn,
    );
    assert_eq!(
        r.unwrap_err().message,
        "Widget.test.strongroom.dev \"w\" is invalid: [spec.size: Required value, <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {"size": 0}}),
        FieldValidation::Warn,
    );
    assert_eq!(
        r.unwrap_err().message,
        "Widget.test.strongroom.dev \"w\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    let (r, _) = admit_new(
        json!({"metadata": {"name": "w"}, "spec": {"size": 3_000_000_000_i64}}),
        FieldValidation::Warn,
    );
    let msg = r.unwrap_err().message;
    assert!(msg.contains("must be of type int32"), "{msg}");
}

#[test]
fn unchanged_invalid_fields_ratchet_on_update() {
    let rt = rt(widget_schema());
    let old = json!({"metadata": {"name": "w"}, "spec": {"size": 3, "name": "BAD", "mode": "a"}});
    let mut new =
        json!({"metadata": {"name": "w"}, "spec": {"size": 4, "name": "BAD", "mode": "a"}});
    admit(
        &rt,
        Some(&old),
        &mut new,
        FieldValidation::Warn,
        &Warnings::default(),
    )
    .unwrap();
    let mut worse =
        json!({"metadata": {"name": "w"}, "spec": {"size": 4, "name": "WORSE", "mode": "a"}});
    assert!(
        admit(
            &rt,
            Some(&old),
            &mut worse,
            FieldValidation::Warn,
            &Warnings::default()
        )
        .is_err()
    );
}

#[test]
fn embedded_resources_keep_their_identity() {
    let rt = rt(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                     "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}),
    );
    let mut obj = json!({"metadata": {"name": "w"}, "spec": {"template": {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"a": "b"}, "junk": 1}}});
    admit(
        &rt,
        None,
        &mut obj,
        FieldValidation::Ignore,
        &Warnings::default(),
    )
    .unwrap();
    assert_eq!(obj["spec"]["template"]["kind"], "Secret");
    assert!(obj["spec"]["template"].get("junk").is_none());
    let mut no_kind = json!({"metadata": {"name": "w"}, "spec": {"template": {"data": {}}}});
    let e = admit(
        &rt,
        None,
        &mut no_kind,
        FieldValidation::Ignore,
        &Warnings::default(),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("spec.template.apiVersion: Required value: must not be empty"),
        "{}",
        e.message
    );
}

#[test]
fn junctors_any_one_all_and_not_as_the_real_server() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {
            "a": {"type": "string"}, "b": {"type": "string"},
            "size": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 2}]},
            "name": {"type": "string", "allOf": [{"minLength": 2}, {"maxLength": 4}],
                     "not": {"enum": ["root"]}}
        },
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}});
    let check = |spec: Value| {
        let mut causes = Vec::new();
        validate::validate(
            &schema,
            &json!({"spec": spec}),
            &Path::default(),
            true,
            &mut causes,
        );
        causes.iter().map(Cause::text).collect::<Vec<_>>()
    };
    assert!(check(json!({"a": "x", "size": 1, "name": "abc"})).is_empty());
    assert!(check(json!({"b": "x", "size": 11})).is_empty());
    assert_eq!(
        check(json!({"a": "x", "b": "y"})),
        [
            r#"<nil>: Invalid value: "null": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    assert_eq!(
        check(json!({})),
        [
            r#"<nil>: Invalid value: "null": "spec" must validate one and only one schema (oneOf). Found none valid"#,
            "spec.a: Required value"
        ]
    );
    assert_eq!(
        check(json!({"a": "x", "size": 5})),
        [
            r#"<nil>: Invalid value: "null": "spec.size" must validate at least one schema (anyOf)"#,
            "spec.size: Invalid value: 5: spec.size in body should be greater than or equal to 10"
        ]
    );
    assert_eq!(
        check(json!({"a": "x", "name": "toolong"})),
        [
            "spec.name: Too long: may not be more than 4 bytes",
            r#"<nil>: Invalid value: "null": "spec.name" must validate all the schemas (allOf)"#
        ]
    );
    assert_eq!(
        check(json!({"a": "x", "name": "root"})),
        [r#"<nil>: Invalid value: "null": "spec.name" must not validate the schema (not)"#]
    );
}
