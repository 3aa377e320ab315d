//! Body parsing as the receive pipeline does it: `parse_body` by content
//! type (JSON, form with a JSON `payload` field, anything else), `parse_form`
//! and `parse_query` on the same bytes, then the delivery views that read the
//! parsed body and headers for every sender kind (event name, dedupe key,
//! the template context).
//!
//! Input: headers and body as in `hookflow_fuzz::Request`.

#![no_main]

use std::sync::LazyLock;

use hookflow::delivery::{Delivery, dedupe_key, event_name, parse_body, parse_form, parse_query};
use hookflow::rules::RuleSet;
use hookflow_fuzz::{Request, fixed_rules};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// One source per sender kind, plus the two ways of naming the event and
/// the dedupe key explicitly.
const SOURCES: &str = r#"
sources:
  github: { verify: { github: { secret: s } } }
  stripe: { verify: { stripe: { secret: whsec_s } } }
  slack: { verify: { slack: { secret: s } } }
  standard: { verify: { standard: { secret: whsec_c2VjcmV0 } } }
  shopify: { verify: { shopify: { secret: s } } }
  twilio: { verify: { twilio: { secret: s, public_url: "https://h/t" } } }
  gitlab: { verify: { gitlab: { token: s } } }
  by-path:
    verify: { token: { header: X-Token, value: s } }
    event: { path: "$.meta.event" }
    dedupe: { path: "$..id" }
  by-header:
    verify: { basic: { username: u, password: p } }
    event: { header: X-Event }
    dedupe: { header: X-Delivery }
"#;

static RULES: LazyLock<RuleSet> = LazyLock::new(|| fixed_rules("body", SOURCES));

fuzz_target!(|data: &[u8]| {
    let req = Request::parse(data);
    let content_type = req.header("content-type");
    let parsed = parse_body(content_type, req.body);
    // A body the server accepted as JSON is exactly serde_json's reading.
    if let (Ok(value), Some(ct)) = (&parsed, content_type) {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let blank = req.body.iter().all(u8::is_ascii_whitespace);
        if !blank && (mime == "application/json" || mime.ends_with("+json")) {
            let direct: Value = match serde_json::from_slice(req.body) {
                Ok(v) => v,
                Err(e) => panic!("parse_body accepted JSON serde_json refuses: {e}"),
            };
            assert_eq!(&direct, value, "parse_body changed a JSON body");
        }
    }
    let _ = parse_form(req.body);
    let query = String::from_utf8_lossy(req.body);
    let _ = parse_query(Some(&query));

    let headers = req.text_headers();
    let payload = parsed.unwrap_or(Value::Null);
    for source in RULES.sources() {
        let _ = event_name(source, &headers, &payload);
        let _ = dedupe_key(source, &headers, &payload);
        // The same path `hookflow test`/`explain` take for a local body.
        if let Ok(delivery) = Delivery::local(
            source,
            headers.clone(),
            parse_query(Some(&query)),
            req.body.to_vec(),
            None,
        ) {
            let _ = delivery.template_value("rule", "run", Value::Null);
            let _ = RULES.evaluate(&source.name, &delivery.match_input());
        }
    }
});
