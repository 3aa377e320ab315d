//! Template rendering with hostile payload values: the fixed templates of
//! `fuzz/rules/templates.yaml` (every helper, block helpers, every rendered
//! step field, a source's `response`) over a fuzzed delivery, through the
//! same dry run `explain` and `test` use and the reply the receiver renders.
//!
//! Input: headers and body as in `hookflow_fuzz::Request`. `X-Fuzz-Source`
//! picks the source (`fuzz`, `github`, `slack`), `X-Fuzz-Query` is the raw
//! query string. Besides "never panics", the `echo` rule must always match
//! and insert `payload.s` and the raw body verbatim: a payload value is data,
//! never a template.

#![no_main]

use std::sync::LazyLock;

use hookflow::delivery::{Delivery, parse_query};
use hookflow::dryrun::dry_run;
use hookflow::rules::RuleSet;
use hookflow::template::TemplateContext;
use hookflow_fuzz::{Request, fixed_rules};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static RULES: LazyLock<RuleSet> =
    LazyLock::new(|| fixed_rules("template", include_str!("../rules/templates.yaml")));

fuzz_target!(|data: &[u8]| {
    let req = Request::parse(data);
    let source_name = req
        .header("x-fuzz-source")
        .filter(|name| matches!(*name, "github" | "slack"))
        .unwrap_or("fuzz");
    let Some(source) = RULES.source(source_name) else {
        panic!("the fixed rules lost source {source_name}");
    };
    let query = parse_query(req.header("x-fuzz-query"));
    let Ok(delivery) = Delivery::local(source, req.text_headers(), query, req.body.to_vec(), None)
    else {
        return; // a body that claims to be JSON and is not: refused with 400
    };
    let dry = dry_run(&RULES, &delivery);

    // What the receiver answers, rendered as `receive.rs` does.
    if let Some(spec) = &source.response {
        let mut value = delivery.base_template_value();
        if let Value::Object(map) = &mut value {
            let matched: Vec<&str> = dry.trace.matched().collect();
            map.insert("matched".into(), json!(matched));
        }
        let ctx = TemplateContext::new(value);
        if let Some(body) = &spec.body {
            let _ = RULES.templates().render_text(body, &ctx);
        }
        for (_, t) in &spec.headers {
            if let Ok(v) = RULES.templates().render_text(t, &ctx) {
                let _ = http::HeaderValue::from_str(&v);
            }
        }
    }

    let Some(echo) = dry.runs.iter().find(|r| r.rule == "echo") else {
        panic!(
            "rule `echo` has no condition yet did not match: {:?}",
            dry.trace
        );
    };
    let Some(step) = echo.steps.first() else {
        panic!("rule `echo` lost its first step");
    };
    // The dry run's view has the rule set's secrets redacted (plain, URL-
    // and base64-encoded): a payload that spells one is shown with `***`.
    let shown = |text: &str| Value::String(RULES.secrets().redact(text));
    let raw = String::from_utf8_lossy(req.body);
    match (&step.rendered, delivery.payload.get("s")) {
        (Some(view), Some(Value::String(s))) => {
            let wrapped = format!("<{s}>");
            assert_eq!(view["json"]["s"], shown(s), "json.s");
            assert_eq!(view["json"]["wrapped"], shown(&wrapped));
            assert_eq!(view["headers"]["X-Wrapped"], shown(&wrapped));
            assert_eq!(view["json"]["raw"], shown(&raw));
        }
        (Some(view), _) => {
            assert_eq!(view["json"]["raw"], shown(&raw));
        }
        (None, Some(Value::String(s))) => {
            panic!(
                "`echo` failed to render a present payload.s {s:?}: {:?}",
                step.error
            );
        }
        (None, _) => {} // payload.s missing: strict mode refuses, as it should
    }
});
