use serde_json::{Value, json};

use super::*;

fn ctx() -> TemplateContext {
    TemplateContext::new(json!({
        "payload": {
            "commits": [{"id": "a1"}, {"id": "b2"}],
            "n": 42,
            "ok": true,
            "nothing": null,
            "name": "  Hook Flow  ",
            "html": "<b>&</b>",
            "tags": ["x", "y", 3],
            "repo": {"name": "hookflow", "stars": 7},
            "emoji": "héllo wörld 🎉",
            "action": "opened"
        },
        "raw": "{\"a\":1}",
        "headers": {"x-count": "10"}
    }))
}

fn text(source: &str) -> Result<String, RenderError> {
    let mut templates = Templates::new();
    let t = templates.compile(source).expect("compiles");
    templates.render_text(&t, &ctx())
}

fn value(source: &str) -> Value {
    let mut templates = Templates::new();
    let t = templates.compile(source).expect("compiles");
    templates.render_value(&t, &ctx()).expect("renders")
}

fn compile_error(source: &str) -> TemplateError {
    Templates::new()
        .compile(source)
        .expect_err("should not compile")
}

#[test]
fn literal_string_renders_as_itself() {
    assert_eq!(text("just text }} here").unwrap(), "just text }} here");
    assert_eq!(value("42"), json!("42"));
}

#[test]
fn lone_path_keeps_array_number_bool_and_null() {
    assert_eq!(
        value("{{payload.commits}}"),
        json!([{"id": "a1"}, {"id": "b2"}])
    );
    assert_eq!(value("{{payload.n}}"), json!(42));
    assert_eq!(value("{{ payload.ok }}"), json!(true));
    assert_eq!(value("{{payload.nothing}}"), Value::Null);
    assert_eq!(
        value("{{payload.repo}}"),
        json!({"name": "hookflow", "stars": 7})
    );
    assert_eq!(value("{{~payload.n~}}"), json!(42));
    assert_eq!(value("{{payload.commits.1.id}}"), json!("b2"));
    assert_eq!(value("{{payload.commits.[0]}}"), json!({"id": "a1"}));
    assert_eq!(value("{{this.payload.n}}"), json!(42));
    assert_eq!(value("{{@root.payload.ok}}"), json!(true));
}

#[test]
fn lone_string_value_stays_a_string() {
    assert_eq!(value("{{payload.action}}"), json!("opened"));
    assert_eq!(value("{{raw}}"), json!("{\"a\":1}"));
}

#[test]
fn expression_with_surrounding_text_is_a_string() {
    assert_eq!(value("x {{payload.n}}"), json!("x 42"));
    assert_eq!(value("{{payload.n}} "), json!("42 "));
    assert_eq!(value("{{payload.n}}{{payload.n}}"), json!("4242"));
    assert_eq!(value("{{{payload.n}}}"), json!("42"));
}

#[test]
fn lone_helper_expression_keeps_its_type() {
    assert_eq!(value("{{len payload.commits}}"), json!(2));
    assert_eq!(value("{{eq payload.n 42}}"), json!(true));
    assert_eq!(value("{{default payload.missing 5}}"), json!(5));
    assert_eq!(value("{{upper payload.action}}"), json!("OPENED"));
    assert_eq!(value("{{json payload.n}}"), json!("42"));
}

#[test]
fn block_template_renders_as_text() {
    assert_eq!(value("{{#if payload.ok}}1{{/if}}"), json!("1"));
}

#[test]
fn json_structure_renders_leaf_by_leaf() {
    let mut templates = Templates::new();
    let source = json!({
        "ref": "refs/heads/{{payload.action}}",
        "count": "{{payload.n}}",
        "commits": "{{payload.commits}}",
        "fixed": 1.5,
        "flag": false,
        "none": null,
        "nested": {"list": ["{{payload.ok}}", "plain", ["{{len payload.tags}}"]]}
    });
    let t = templates.compile_json(&source).unwrap();
    assert_eq!(
        templates.render_json(&t, &ctx()).unwrap(),
        json!({
            "ref": "refs/heads/opened",
            "count": 42,
            "commits": [{"id": "a1"}, {"id": "b2"}],
            "fixed": 1.5,
            "flag": false,
            "none": null,
            "nested": {"list": [true, "plain", [3]]}
        })
    );
}

#[test]
fn json_structure_built_by_hand_renders() {
    let mut templates = Templates::new();
    let t = JsonTemplate::Object(vec![
        (
            "a".into(),
            JsonTemplate::String(templates.compile("{{payload.n}}").unwrap()),
        ),
        (
            "b".into(),
            JsonTemplate::Array(vec![JsonTemplate::Null, JsonTemplate::Bool(true)]),
        ),
    ]);
    assert_eq!(
        templates.render_json(&t, &ctx()).unwrap(),
        json!({"a": 42, "b": [null, true]})
    );
}

#[test]
fn compile_json_error_names_the_leaf() {
    let err = Templates::new()
        .compile_json(&json!({"items": ["ok", {"text": "{{#if x}}"}]}))
        .unwrap_err();
    assert!(err.message.starts_with("in items[1].text: "), "{err}");
}

#[test]
fn json_helper_writes_compact_json() {
    assert_eq!(
        text("{{json payload.repo}}").unwrap(),
        r#"{"name":"hookflow","stars":7}"#
    );
    assert_eq!(text("{{json payload.action}}").unwrap(), r#""opened""#);
    assert_eq!(text("{{json payload.html}}").unwrap(), r#""<b>&</b>""#);
}

#[test]
fn default_helper_uses_fallback_for_missing_or_null() {
    assert_eq!(text("{{default payload.missing \"n/a\"}}").unwrap(), "n/a");
    assert_eq!(text("{{default payload.a.b.c \"n/a\"}}").unwrap(), "n/a");
    assert_eq!(text("{{default payload.nothing \"n/a\"}}").unwrap(), "n/a");
    assert_eq!(
        text("{{default payload.action \"n/a\"}}").unwrap(),
        "opened"
    );
    assert_eq!(
        text("{{default payload.x payload.y \"last\"}}").unwrap(),
        "last"
    );
}

#[test]
fn default_helper_fallback_must_exist() {
    let err = text("{{default payload.x payload.y}}").unwrap_err();
    assert_eq!(err.0, "missing value payload.y");
}

#[test]
fn case_and_trim_helpers() {
    assert_eq!(text("{{upper payload.emoji}}").unwrap(), "HÉLLO WÖRLD 🎉");
    assert_eq!(text("{{lower \"ÀB\"}}").unwrap(), "àb");
    assert_eq!(text("[{{trim payload.name}}]").unwrap(), "[Hook Flow]");
    assert_eq!(text("{{upper (trim payload.name)}}").unwrap(), "HOOK FLOW");
}

#[test]
fn truncate_counts_characters_not_bytes() {
    assert_eq!(text("{{truncate payload.emoji 2}}").unwrap(), "hé");
    assert_eq!(
        text("{{truncate payload.emoji 13}}").unwrap(),
        "héllo wörld 🎉"
    );
    assert_eq!(
        text("{{truncate payload.emoji 100}}").unwrap(),
        "héllo wörld 🎉"
    );
    assert_eq!(text("{{truncate \"🎉🎉🎉\" 1}}").unwrap(), "🎉");
    assert_eq!(text("{{truncate payload.action 0}}").unwrap(), "");
}

#[test]
fn truncate_rejects_a_bad_count() {
    let err = text("{{truncate payload.action -1}}").unwrap_err();
    assert!(err.0.starts_with("truncate: the count must be"), "{err}");
    let err = text("{{truncate payload.action}}").unwrap_err();
    assert_eq!(
        err.0,
        "truncate expects 2 arguments (truncate text count), got 1 argument"
    );
}

#[test]
fn replace_helper() {
    assert_eq!(
        text("{{replace payload.action \"pen\" \"PEN\"}}").unwrap(),
        "oPENed"
    );
    assert_eq!(text("{{replace \"a-b-c\" \"-\" \"\"}}").unwrap(), "abc");
    assert_eq!(text("{{replace \"abc\" \"\" \"x\"}}").unwrap(), "abc");
}

#[test]
fn urlencode_helper_encodes_a_component() {
    assert_eq!(
        text("{{urlencode \"a b/c?d=é&e~f_g.h-i\"}}").unwrap(),
        "a%20b%2Fc%3Fd%3D%C3%A9%26e~f_g.h-i"
    );
}

#[test]
fn base64_helper_is_standard_with_padding() {
    assert_eq!(
        text("{{base64 \"user:pa ss\"}}").unwrap(),
        "dXNlcjpwYSBzcw=="
    );
    assert_eq!(text("{{base64 \"é\"}}").unwrap(), "w6k=");
}

#[test]
fn len_helper_counts_chars_items_and_keys() {
    assert_eq!(text("{{len payload.emoji}}").unwrap(), "13");
    assert_eq!(text("{{len payload.tags}}").unwrap(), "3");
    assert_eq!(text("{{len payload.repo}}").unwrap(), "2");
    assert!(
        text("{{len payload.n}}")
            .unwrap_err()
            .0
            .contains("got a number")
    );
}

#[test]
fn join_helper() {
    assert_eq!(text("{{join payload.tags \", \"}}").unwrap(), "x, y, 3");
    assert_eq!(text("{{join payload.tags}}").unwrap(), "x,y,3");
    assert!(
        text("{{join payload.action \",\"}}")
            .unwrap_err()
            .0
            .contains("expects a list")
    );
}

#[test]
fn now_helper_is_rfc3339_utc() {
    let now = text("{{now}}").unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(&now).expect("RFC 3339");
    assert_eq!(parsed.offset().local_minus_utc(), 0);
    assert!(now.ends_with('Z'), "{now}");
    assert!(value("{{now}}").is_string());
}

#[test]
fn comparison_helpers_work_in_if() {
    let cases = [
        ("(eq payload.action \"opened\")", true),
        ("(eq payload.n 42.0)", true),
        ("(ne payload.action \"closed\")", true),
        ("(gt payload.n 41)", true),
        ("(gt headers.x-count 9)", true),
        ("(lt payload.n 41)", false),
        ("(gte payload.n 42)", true),
        ("(lte \"a\" \"b\")", true),
        ("(and payload.ok (eq payload.n 42))", true),
        ("(and payload.ok payload.nothing)", false),
        ("(or payload.nothing payload.ok)", true),
        ("(not payload.ok)", false),
        ("(not payload.nothing)", true),
    ];
    for (condition, expected) in cases {
        let got = text(&format!(
            "{{{{#if {condition}}}}}yes{{{{else}}}}no{{{{/if}}}}"
        ))
        .unwrap();
        assert_eq!(got, if expected { "yes" } else { "no" }, "{condition}");
    }
}

#[test]
fn comparisons_treat_missing_values_as_null_in_strict_mode() {
    assert_eq!(
        text("{{#if (eq payload.missing \"x\")}}y{{else}}n{{/if}}").unwrap(),
        "n"
    );
    assert_eq!(
        text("{{#if (not payload.missing)}}y{{else}}n{{/if}}").unwrap(),
        "y"
    );
    assert_eq!(
        text("{{#if (gt payload.missing 1)}}y{{else}}n{{/if}}").unwrap(),
        "n"
    );
    assert_eq!(
        text("{{#if (and payload.ok payload.missing)}}y{{else}}n{{/if}}").unwrap(),
        "n"
    );
    assert_eq!(
        text("{{#if (or payload.missing payload.ok)}}y{{else}}n{{/if}}").unwrap(),
        "y"
    );
}

#[test]
fn comparison_helpers_work_as_blocks_and_values() {
    assert_eq!(
        text("{{#eq payload.n 42}}same{{else}}diff{{/eq}}").unwrap(),
        "same"
    );
    assert_eq!(text("{{eq payload.n 1}}").unwrap(), "false");
}

#[test]
fn strict_missing_value_error_names_the_path() {
    assert_eq!(
        text("x {{payload.nope}}").unwrap_err().0,
        "missing value payload.nope"
    );
    assert_eq!(
        text("{{payload.nope.deeper}}").unwrap_err().0,
        "missing value payload.nope.deeper"
    );
    assert_eq!(
        text("{{upper payload.nope}}").unwrap_err().0,
        "missing value payload.nope"
    );
    let mut templates = Templates::new();
    let t = templates.compile("{{payload.nope}}").unwrap();
    assert_eq!(
        templates.render_value(&t, &ctx()).unwrap_err().0,
        "missing value payload.nope"
    );
    for source in [
        "{{payload.commits.9}}",
        "{{payload.commits.x}}",
        "{{payload.n.x}}",
    ] {
        let t = templates.compile(source).unwrap();
        let message = templates.render_value(&t, &ctx()).unwrap_err().0;
        assert_eq!(
            message,
            format!("missing value {}", &source[2..source.len() - 2])
        );
    }
}

#[test]
fn missing_value_in_multiline_template_gives_its_position() {
    let err = text("line one\n  {{payload.nope}}").unwrap_err();
    assert_eq!(err.0, "missing value payload.nope (line 2, column 3)");
}

#[test]
fn if_and_unless_tolerate_missing_values() {
    assert_eq!(
        text("{{#if payload.missing}}yes{{else}}no{{/if}}").unwrap(),
        "no"
    );
    assert_eq!(text("{{#if payload.a.b.c}}yes{{/if}}").unwrap(), "");
    assert_eq!(
        text("{{#unless payload.missing}}absent{{/unless}}").unwrap(),
        "absent"
    );
    assert_eq!(
        text("{{#if payload.ok}}{{payload.n}}{{/if}}").unwrap(),
        "42"
    );
}

#[test]
fn each_iterates_with_strict_items() {
    assert_eq!(
        text("{{#each payload.commits}}{{this.id}};{{/each}}").unwrap(),
        "a1;b2;"
    );
    assert_eq!(
        text("{{#each payload.commits}}{{this.nope}}{{/each}}")
            .unwrap_err()
            .0,
        "missing value this.nope"
    );
}

#[test]
fn html_is_not_escaped() {
    assert_eq!(text("{{payload.html}} & <i>").unwrap(), "<b>&</b> & <i>");
    assert_eq!(value("{{payload.html}}"), json!("<b>&</b>"));
}

#[test]
fn raw_is_the_body_not_the_raw_block_helper() {
    assert_eq!(text("body={{raw}}").unwrap(), "body={\"a\":1}");
}

#[test]
fn syntax_error_reports_line_and_column() {
    let err = compile_error("first line\nsecond {{payload.a");
    assert_eq!((err.line, err.column), (Some(2), Some(19)));
    assert_eq!(
        err.message,
        "the template ends inside an expression: a closing }} or ) is missing"
    );
    assert!(!err.message.contains('\n'));

    let err = compile_error("a\n{{#if x}}\n{{/each}}");
    assert_eq!((err.line, err.column), (Some(3), Some(1)));
    assert_eq!(err.message, "the block {{#if}} is closed by {{/each}}");
}

#[test]
fn syntax_errors_read_as_sentences() {
    let cases = [
        (
            "{{#if x}}open",
            "a block opened with {{#…}} is not closed with {{/…}}",
        ),
        (
            "x {{/if}}",
            "a closing {{/…}} has no matching opening block",
        ),
        ("{{}}", "an expression {{}} is empty"),
        ("{{else}}", "{{else}} appears outside of a block"),
        (
            "{{a.b.}}",
            "a path is malformed: expected a name after '.' or a closing ']'",
        ),
        ("{{", "the template ends right after {{"),
    ];
    for (source, message) in cases {
        let err = compile_error(source);
        assert_eq!(err.message, message, "{source}");
        assert!(err.line.is_some() && err.column.is_some(), "{source}");
        assert!(
            !err.message.contains('_'),
            "rule names leak: {}",
            err.message
        );
    }
}

#[test]
fn unknown_helper_is_a_compile_error_with_a_suggestion() {
    let err = compile_error("x\n {{uper payload.action}}");
    assert_eq!(err.message, "unknown helper 'uper' (did you mean 'upper'?)");
    assert_eq!((err.line, err.column), (Some(2), Some(2)));
    let err = compile_error("{{#if (frobnicate payload.a)}}x{{/if}}");
    assert_eq!(err.message, "unknown helper 'frobnicate'");
    let err = compile_error("{{#each payload.commits}}{{zzz this}}{{/each}}");
    assert_eq!(err.message, "unknown helper 'zzz'");
}

#[test]
fn partials_and_raw_blocks_are_compile_errors() {
    assert!(compile_error("{{> header}}").message.contains("partials"));
    assert!(
        compile_error("{{{{raw}}}}{{x}}{{{{/raw}}}}")
            .message
            .contains("raw blocks")
    );
}

#[test]
fn rendering_twice_gives_the_same_result() {
    let mut templates = Templates::new();
    let t = templates
        .compile("{{upper payload.action}}: {{join payload.tags \"/\"}}")
        .unwrap();
    let v = templates.compile("{{payload.commits}}").unwrap();
    let context = ctx();
    let first = templates.render_text(&t, &context).unwrap();
    assert_eq!(first, "OPENED: x/y/3");
    assert_eq!(templates.render_text(&t, &context).unwrap(), first);
    assert_eq!(
        templates.render_value(&v, &context).unwrap(),
        templates.render_value(&v, &context).unwrap()
    );
}

#[test]
fn same_source_compiled_twice_is_registered_once() {
    let mut templates = Templates::new();
    let a = templates.compile("{{payload.n}}").unwrap();
    let b = templates.compile("{{payload.n}}").unwrap();
    assert_eq!(templates.next_id, 1);
    assert_eq!(a.source(), b.source());
    assert_eq!(templates.render_value(&b, &ctx()).unwrap(), json!(42));
}

#[test]
fn context_exposes_its_value() {
    let context = TemplateContext::new(json!({"a": 1}));
    assert_eq!(context.value(), &json!({"a": 1}));
}

#[test]
fn templates_is_send_and_sync() {
    const fn assert_send_sync<T: Send + Sync>() {}
    const _: () = assert_send_sync::<Templates>();
    const _: () = assert_send_sync::<Template>();
    const _: () = assert_send_sync::<TemplateContext>();
    assert_eq!(
        std::mem::size_of::<Template>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn odd_inputs_do_not_panic() {
    let mut templates = Templates::new();
    for source in [
        "{{",
        "}}",
        "{{{",
        "{{{{",
        "{{#",
        "{{/}}",
        "{{!",
        "{{!--",
        "{{\"",
        "{{a.[",
        "{{~",
        "é{{é",
        "{{lookup payload \"zz\"}}",
        "{{#each payload.nope}}x{{/each}}",
        "{{#with payload.n}}{{this}}{{/with}}",
        "{{len}}",
        "{{json}}",
        "{{truncate payload.emoji 99999999999999999999}}",
        "\n\n{{a\n",
    ] {
        if let Ok(t) = templates.compile(source) {
            let _ = templates.render_text(&t, &ctx());
            let _ = templates.render_value(&t, &ctx());
        }
    }
}
