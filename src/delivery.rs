//! A delivery: one received webhook, with its body parsed, its event name
//! and dedupe key read the way its source's sender writes them, and the
//! views conditions and templates see.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::rules::model::{Extract, Source};
use crate::rules::{MatchInput, PayloadNeeds};
use crate::store::DeliveryRecord;

/// A received webhook, verified and parsed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub method: String,
    /// Request headers; names lower-case, repeated headers kept in order.
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// The body as received (shared with the request's buffer, not copied).
    pub raw: bytes::Bytes,
    /// The parsed body; `null` when it was neither JSON nor a form. While
    /// a delivery is received, a JSON object holds only the members its
    /// source reads ([`parse_body_for`]); everywhere else, all of it.
    pub payload: Value,
    pub event: String,
    pub source_ip: Option<IpAddr>,
}

/// A body that claims to be JSON but is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON body at line {line}, column {column}: {message}")]
pub struct BodyError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a body by its content type: JSON, or a form (whose lone `payload`
/// field holding JSON — GitHub's form deliveries, Slack interactivity — is
/// that JSON). Anything else is `null` and stays available as `raw`.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, BodyError> {
    parse_with(content_type, body, |body| serde_json::from_slice(body))
}

/// [`parse_body`] for the receiving path: of a JSON object, only the
/// top-level members `needs` names are built into the payload. The others
/// are walked exactly as the full parse walks them — a body it refuses is
/// refused with the same error — and dropped. The stored body is the
/// whole one; workers parse it in full.
pub fn parse_body_for(
    content_type: Option<&str>,
    body: &[u8],
    needs: &PayloadNeeds,
) -> Result<Value, BodyError> {
    match needs {
        PayloadNeeds::All => parse_body(content_type, body),
        PayloadNeeds::Members(members) => {
            parse_with(content_type, body, |body| json_members(body, members))
        }
    }
}

fn parse_with(
    content_type: Option<&str>,
    body: &[u8],
    parse_json: impl Fn(&[u8]) -> Result<Value, serde_json::Error>,
) -> Result<Value, BodyError> {
    let mime = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let json = |body: &[u8]| {
        parse_json(body).map_err(|e| BodyError {
            line: e.line(),
            column: e.column(),
            message: strip_serde_position(&e.to_string()),
        })
    };
    match mime.as_deref() {
        _ if body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
        Some(m) if m == "application/json" || m.ends_with("+json") => json(body),
        Some("application/x-www-form-urlencoded") => Ok(parse_form(body)),
        // No content type: take JSON if it is JSON, quietly.
        None => Ok(json(body).unwrap_or(Value::Null)),
        Some(_) => Ok(Value::Null),
    }
}

/// A JSON body with only `members` of a top-level object built. Anything
/// but an object is parsed whole.
fn json_members(body: &[u8], members: &BTreeSet<String>) -> Result<Value, serde_json::Error> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return serde_json::from_slice(body);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde::Deserializer::deserialize_any(&mut de, partial::Members(members))?;
    de.end()?;
    Ok(value)
}

/// The visitors of [`json_members`].
mod partial {
    use std::collections::BTreeSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    /// A top-level object, keeping the members named.
    pub(super) struct Members<'a>(pub(super) &'a BTreeSet<String>);

    impl<'de> Visitor<'de> for Members<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key_seed(Wanted(self.0))? {
                match key {
                    // Like `Value`: a repeated key keeps its last value.
                    Some(name) => {
                        let value: Value = map.next_value()?;
                        out.insert(name, value);
                    }
                    None => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            Ok(Value::Object(out))
        }
    }

    /// A key: its name if it is wanted.
    struct Wanted<'a>(&'a BTreeSet<String>);

    impl<'de> DeserializeSeed<'de> for Wanted<'_> {
        type Value = Option<String>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Wanted<'_> {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string key")
        }

        fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
            Ok(self.0.contains(key).then(|| key.to_owned()))
        }
    }

    /// Any JSON value, read the way `Value` reads it (`deserialize_any`:
    /// numbers converted and range-checked, strings unescaped and UTF-8
    /// checked, nesting counted against the same limit) and kept nowhere.
    struct Skip;

    impl<'de> de::Deserialize<'de> for Skip {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
            d.deserialize_any(Skip)
        }
    }

    impl<'de> Visitor<'de> for Skip {
        type Value = Skip;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_unit<E>(self) -> Result<Skip, E> {
            Ok(Skip)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Skip)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            Ok(Skip)
        }
    }
}

fn strip_serde_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(pos) => message[..pos].to_string(),
        None => message.to_string(),
    }
}

/// A form body as an object of strings; a lone JSON `payload` field is parsed.
pub fn parse_form(body: &[u8]) -> Value {
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        map.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    if let Some(Value::String(p)) = map.get("payload")
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(p)
    {
        return parsed;
    }
    Value::Object(map)
}

/// Query parameters as pairs, in order.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn extract(rule: &Extract, headers: &[(String, String)], payload: &Value) -> Option<String> {
    match rule {
        Extract::Header(name) => header(headers, name).map(str::to_string),
        Extract::Path(path, _) => path.query(payload).first().and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }),
    }
}

/// The delivery's event name, as SPEC §2.1 defines it: the source's
/// `event:` rule, else what its sender's scheme says, else empty.
pub fn event_name(source: &Source, headers: &[(String, String)], payload: &Value) -> String {
    if let Some(rule) = &source.event {
        return extract(rule, headers, payload).unwrap_or_default();
    }
    let delivered = crate::verify::Delivered { headers, payload };
    source
        .verifier
        .as_ref()
        .and_then(|scheme| scheme.event(&delivered))
        .unwrap_or_default()
}

/// The key that recognises a resend of the same delivery, if any: the
/// source's `dedupe:` rule, else its sender's, else `Idempotency-Key`.
pub fn dedupe_key(
    source: &Source,
    headers: &[(String, String)],
    payload: &Value,
) -> Option<String> {
    if let Some(rule) = &source.dedupe {
        return extract(rule, headers, payload);
    }
    let delivered = crate::verify::Delivered { headers, payload };
    let key = source
        .verifier
        .as_ref()
        .and_then(|scheme| scheme.dedupe_key(&delivered));
    key.or_else(|| header(headers, "idempotency-key").map(str::to_string))
        .filter(|k| !k.is_empty())
}

impl Delivery {
    /// A delivery made up locally (rule tests, `explain`): headers as given,
    /// the body parsed by its content type, or guessed (JSON, then form)
    /// when there is none; the event from `event` or as the sender's.
    pub fn local(
        source: &Source,
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        raw: Vec<u8>,
        event: Option<String>,
    ) -> Result<Delivery, BodyError> {
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let payload = match header(&headers, "content-type") {
            Some(ct) => parse_body(Some(ct), &raw)?,
            None => match parse_body(None, &raw)? {
                Value::Null if raw.contains(&b'=') => parse_form(&raw),
                v => v,
            },
        };
        let event = event.unwrap_or_else(|| event_name(source, &headers, &payload));
        Ok(Delivery {
            id: "local".to_string(),
            source: source.name.clone(),
            received_at: Utc::now(),
            method: "POST".to_string(),
            headers,
            query,
            raw: raw.into(),
            payload,
            event,
            source_ip: None,
        })
    }

    /// The delivery as the server saw it, from its stored record (workers,
    /// replay, `explain DELIVERY_ID`): the body is parsed again by its
    /// content type, as the server parsed it.
    pub fn from_record(record: &DeliveryRecord) -> Delivery {
        let raw = record.body.clone().unwrap_or_default();
        let content_type = record
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        // It parsed when it was accepted; a body that no longer does is kept
        // raw, as any unparsable body is.
        let payload = parse_body(content_type, &raw).unwrap_or(Value::Null);
        let source_ip = record.remote_addr.parse::<IpAddr>().ok().or_else(|| {
            record
                .remote_addr
                .parse::<SocketAddr>()
                .ok()
                .map(|a| a.ip())
        });
        Delivery {
            id: record.id.clone(),
            source: record.source.clone(),
            received_at: DateTime::from_timestamp_millis(record.received_at).unwrap_or_default(),
            method: record.method.clone(),
            query: parse_query(record.query.as_deref()),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            raw: raw.into(),
            payload,
            event: record.event.clone(),
            source_ip,
        }
    }

    /// What conditions look at.
    pub fn match_input(&self) -> MatchInput<'_> {
        MatchInput {
            payload: &self.payload,
            headers: &self.headers,
            query: &self.query,
            event: &self.event,
            source_ip: self.source_ip,
        }
    }

    /// The template context of SPEC §2.2, for one run of `rule`.
    pub fn template_value(&self, rule: &str, run_id: &str, steps: Value) -> Value {
        with_run(self.context_with(self.payload.clone()), rule, run_id, steps)
    }

    /// [`template_value`](Self::template_value) with the payload moved into
    /// it, not copied (a worker's, which parsed the body for it): the
    /// delivery's own payload is `null` afterwards.
    pub fn take_template_value(&mut self, rule: &str, run_id: &str, steps: Value) -> Value {
        let payload = std::mem::take(&mut self.payload);
        with_run(self.context_with(payload), rule, run_id, steps)
    }

    /// The context without rule, run and steps (for a source's `response`).
    pub fn base_template_value(&self) -> Value {
        self.context_with(self.payload.clone())
    }

    /// The context without rule, run and steps, around `payload`.
    fn context_with(&self, payload: Value) -> Value {
        let mut headers = Map::new();
        for (k, v) in &self.headers {
            match headers.get_mut(k) {
                // Repeated headers read as one, joined like HTTP does.
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(v);
                }
                _ => {
                    headers.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        let mut query = Map::new();
        for (k, v) in &self.query {
            query
                .entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        // Built field by field: `json!` would copy the payload through the
        // serializer, twice the cost of a clone (docs/PERFORMANCE.md).
        let mut context = Map::new();
        context.insert("payload".into(), payload);
        context.insert(
            "raw".into(),
            Value::String(String::from_utf8_lossy(&self.raw).into_owned()),
        );
        context.insert("headers".into(), Value::Object(headers));
        context.insert("query".into(), Value::Object(query));
        context.insert("event".into(), Value::String(self.event.clone()));
        context.insert("source".into(), Value::String(self.source.clone()));
        context.insert(
            "delivery".into(),
            json!({
                "id": self.id,
                "received_at": self.received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            }),
        );
        Value::Object(context)
    }
}

/// `value` (a delivery's context) with `rule`, `run` and `steps`.
fn with_run(mut value: Value, rule: &str, run_id: &str, steps: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("rule".into(), json!({ "name": rule }));
        map.insert("run".into(), json!({ "id": run_id }));
        map.insert("steps".into(), steps);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> PayloadNeeds {
        PayloadNeeds::Members(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn a_body_built_in_part_holds_exactly_the_members_read() {
        let body = include_bytes!("../benches/payloads/github-push.json");
        let ct = Some("application/json");
        let full = parse_body(ct, body).unwrap();
        let part = parse_body_for(ct, body, &members(&["ref", "commits", "absent"])).unwrap();
        assert_eq!(
            part,
            json!({"ref": full["ref"], "commits": full["commits"]}),
            "members in body order, a missing one absent, the rest dropped"
        );
        assert_eq!(parse_body_for(ct, body, &members(&[])).unwrap(), json!({}));
        assert_eq!(parse_body_for(ct, body, &PayloadNeeds::All).unwrap(), full);
        // An escaped key is the key; a repeated key keeps its last value.
        let tricky = br#"{"r\u0065f": 1, "x": [1, {"y": "z"}], "ref": 2}"#;
        assert_eq!(
            parse_body_for(ct, tricky, &members(&["ref"])).unwrap(),
            parse_body(ct, tricky)
                .unwrap()
                .as_object()
                .map(|m| json!({"ref": m["ref"]}))
                .unwrap(),
        );
        // Not an object: parsed whole.
        assert_eq!(
            parse_body_for(ct, b" [1, 2]", &members(&[])).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn a_body_built_in_part_is_refused_exactly_when_the_full_parse_refuses_it() {
        let deep = format!("{{\"skip\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        let mut bad_utf8 = br#"{"skip": "caf"#.to_vec();
        bad_utf8.extend_from_slice(&[0xC3, 0x28]);
        bad_utf8.extend_from_slice(br#"", "keep": 1}"#);
        let bodies: Vec<Vec<u8>> = vec![
            br#"{"skip": 1e400, "keep": 1}"#.to_vec(),
            deep.into_bytes(),
            bad_utf8,
            br#"{"skip": "\ud800", "keep": 1}"#.to_vec(),
            b"{\"skip\": \"a\x01b\", \"keep\": 1}".to_vec(),
            br#"{"skip": tru, "keep": 1}"#.to_vec(),
            br#"{"skip": [1, 2,], "keep": 1}"#.to_vec(),
            br#"{"skip": {"a" 1}, "keep": 1}"#.to_vec(),
            br#"{"keep": 1} trailing"#.to_vec(),
            br#"{"keep": 1"#.to_vec(),
            br#"{"skip": 0.5e-3, "keep": [true, null, -0, "\n\u00e9"]}"#.to_vec(),
        ];
        let ct = Some("application/json");
        for (i, body) in bodies.iter().enumerate() {
            let full = parse_body(ct, body);
            let part = parse_body_for(ct, body, &members(&["keep"]));
            // Every body but the last is refused by the full parse.
            assert_eq!(full.is_err(), i + 1 < bodies.len(), "{full:?}");
            match (&full, &part) {
                (Err(f), Err(p)) => assert_eq!(f, p, "{}", String::from_utf8_lossy(body)),
                (Ok(f), Ok(p)) => assert_eq!(
                    p,
                    &json!({"keep": f["keep"]}),
                    "{}",
                    String::from_utf8_lossy(body)
                ),
                _ => panic!(
                    "{}: full {full:?}, in part {part:?}",
                    String::from_utf8_lossy(body)
                ),
            }
        }
    }

    #[test]
    fn json_bodies_parse_and_errors_carry_line_and_column() {
        let v = parse_body(Some("application/json; charset=utf-8"), br#"{"a":1}"#).unwrap();
        assert_eq!(v, json!({"a": 1}));
        let e = parse_body(Some("application/json"), b"{\n  \"a\": }").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8));
    }

    #[test]
    fn form_bodies_become_objects_of_strings() {
        let v = parse_body(
            Some("application/x-www-form-urlencoded"),
            b"command=%2Fdeploy&text=a+b",
        )
        .unwrap();
        assert_eq!(v, json!({"command": "/deploy", "text": "a b"}));
    }

    #[test]
    fn a_form_payload_field_holding_json_is_that_json() {
        let body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
        let v = parse_body(Some("application/x-www-form-urlencoded"), body).unwrap();
        assert_eq!(v, json!({"ref": "refs/heads/main"}));
    }

    #[test]
    fn other_content_types_are_kept_raw_with_a_null_payload() {
        assert_eq!(
            parse_body(Some("text/plain"), b"hello").unwrap(),
            Value::Null
        );
        assert_eq!(parse_body(None, b"not json").unwrap(), Value::Null);
        assert_eq!(
            parse_body(None, br#"{"x":true}"#).unwrap(),
            json!({"x": true})
        );
    }
}
