//! hookflow's template helpers, and the comparison helpers that replace
//! handlebars' built-in ones.
//!
//! Every helper here computes a JSON value (`call_inner`), so it composes in
//! subexpressions and a lone `{{len payload.commits}}` keeps its number type.
//! Strict mode is enforced per argument: a missing argument is an error naming
//! its path, except where a helper exists to test for absence (`default`, and
//! the comparisons `eq`/`ne`/`gt`/`gte`/`lt`/`lte`/`not`, which see a missing
//! value as `null` so that `{{#if (eq payload.action "closed")}}` works on
//! payloads without `action`).

use std::borrow::Cow;
use std::cmp::Ordering;

use Missing::{Error as Strict, Null, NullButLast};
use base64::Engine as _;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// handlebars' built-in helpers we keep as they are; the other built-ins are
/// replaced by `OURS` (the comparisons, `len`) or removed (`raw`).
const KEPT_BUILTINS: &[&str] = &["if", "unless", "each", "with", "lookup", "log", "and", "or"];

/// Whether a template may call `name`: compilation rejects anything else.
pub(crate) fn is_helper(name: &str) -> bool {
    helper_names().any(|h| h == name)
}

/// Every helper name a template may call.
pub(crate) fn helper_names() -> impl Iterator<Item = &'static str> {
    KEPT_BUILTINS
        .iter()
        .copied()
        .chain(OURS.iter().map(|h| h.name))
}

/// Which arguments may name a missing value without failing the render.
#[derive(Clone, Copy)]
enum Missing {
    /// Strict: a missing argument is an error naming its path.
    Error,
    /// Missing arguments read as `null`, except the last one (`default`'s fallback).
    NullButLast,
    /// Every missing argument reads as `null` (predicates used in `#if`).
    Null,
}

type HelperFn = fn(&[&Value]) -> Result<Value, String>;

/// A helper as a plain function of its argument values.
#[derive(Clone, Copy)]
struct FnHelper {
    name: &'static str,
    /// How to call it, quoted in arity errors.
    usage: &'static str,
    min_args: usize,
    max_args: usize,
    missing: Missing,
    f: HelperFn,
}

static NULL: Value = Value::Null;

impl HelperDef for FnHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let params = h.params();
        if params.len() < self.min_args || params.len() > self.max_args {
            let got = params.len();
            return Err(other(format!(
                "{} expects {} ({}), got {got} argument{}",
                self.name,
                arity(self.min_args, self.max_args),
                self.usage,
                if got == 1 { "" } else { "s" }
            )));
        }
        let last = params.len().saturating_sub(1);
        let mut args = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            if p.is_value_missing() {
                let tolerated = match self.missing {
                    Missing::Error => false,
                    Missing::NullButLast => i < last,
                    Missing::Null => true,
                };
                if !tolerated {
                    return Err(
                        RenderErrorReason::MissingVariable(p.relative_path().cloned()).into(),
                    );
                }
                args.push(&NULL);
            } else {
                args.push(p.value());
            }
        }
        (self.f)(&args)
            .map(ScopedJson::Derived)
            .map_err(|msg| other(format!("{}: {msg}", self.name)))
    }

    // Written out (rather than the trait default) so that predicates also work
    // in block form, `{{#eq a b}}…{{else}}…{{/eq}}`, like the built-ins they replace.
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = self.call_inner(h, r, ctx, rc)?;
        if h.is_block() {
            let branch = if value.as_json().is_truthy(false) {
                h.template()
            } else {
                h.inverse()
            };
            return match branch {
                Some(t) => t.render(r, ctx, rc, out),
                None => Ok(()),
            };
        }
        out.write(&value.render())?;
        Ok(())
    }
}

const fn helper(
    name: &'static str,
    usage: &'static str,
    min_args: usize,
    max_args: usize,
    missing: Missing,
    f: HelperFn,
) -> FnHelper {
    FnHelper {
        name,
        usage,
        min_args,
        max_args,
        missing,
        f,
    }
}

fn other(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

fn arity(min: usize, max: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (min, max) {
        (a, b) if a == b => format!("{a} argument{}", plural(a)),
        (a, usize::MAX) => format!("at least {a} arguments"),
        (a, b) => format!("{a} to {b} arguments"),
    }
}

/// Registers our helpers on `registry`, replacing the built-ins they supersede
/// and removing `raw` (whose name would shadow the `raw` body in `{{raw}}`).
pub(crate) fn register(registry: &mut Handlebars<'static>) {
    registry.unregister_helper("raw");
    for helper in OURS {
        registry.register_helper(helper.name, Box::new(*helper));
    }
}

static OURS: &[FnHelper] = &[
    helper("json", "json value", 1, 1, Strict, json),
    helper(
        "default",
        "default value fallback",
        2,
        usize::MAX,
        NullButLast,
        default,
    ),
    helper("upper", "upper text", 1, 1, Strict, upper),
    helper("lower", "lower text", 1, 1, Strict, lower),
    helper("trim", "trim text", 1, 1, Strict, trim),
    helper("truncate", "truncate text count", 2, 2, Strict, truncate),
    helper("replace", "replace text from to", 3, 3, Strict, replace),
    helper("urlencode", "urlencode text", 1, 1, Strict, urlencode),
    helper("base64", "base64 text", 1, 1, Strict, base64),
    helper("len", "len text-or-list-or-object", 1, 1, Strict, len),
    helper("join", "join list separator", 1, 2, Strict, join),
    helper("now", "now", 0, 0, Strict, now),
    helper("eq", "eq a b", 2, 2, Null, eq),
    helper("ne", "ne a b", 2, 2, Null, ne),
    helper("gt", "gt a b", 2, 2, Null, gt),
    helper("gte", "gte a b", 2, 2, Null, gte),
    helper("lt", "lt a b", 2, 2, Null, lt),
    helper("lte", "lte a b", 2, 2, Null, lte),
    helper("not", "not value", 1, 1, Null, not),
];

/// A value as text: strings as they are, `null` as nothing, the rest as JSON.
fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn json(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(a[0].to_string()))
}

fn default(a: &[&Value]) -> Result<Value, String> {
    let chosen = a.iter().find(|v| !v.is_null()).copied().unwrap_or(&NULL);
    Ok(chosen.clone())
}

fn upper(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(text(a[0]).to_uppercase()))
}

fn lower(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(text(a[0]).to_lowercase()))
}

fn trim(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(text(a[0]).trim().to_string()))
}

fn truncate(a: &[&Value]) -> Result<Value, String> {
    let count = match a[1] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "the count must be a whole number of characters, got {}",
            a[1]
        )
    })?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(Value::String(text(a[0]).chars().take(count).collect()))
}

fn replace(a: &[&Value]) -> Result<Value, String> {
    let (s, from, to) = (text(a[0]), text(a[1]), text(a[2]));
    if from.is_empty() {
        // `str::replace` with an empty pattern inserts between every character.
        return Ok(Value::String(s.into_owned()));
    }
    Ok(Value::String(s.replace(from.as_ref(), &to)))
}

fn urlencode(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(
        utf8_percent_encode(&text(a[0]), URL_COMPONENT).to_string(),
    ))
}

fn base64(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text(a[0]).as_bytes()),
    ))
}

fn len(a: &[&Value]) -> Result<Value, String> {
    let n = match a[0] {
        Value::String(s) => s.chars().count(),
        Value::Array(v) => v.len(),
        Value::Object(m) => m.len(),
        Value::Null => 0,
        other => {
            return Err(format!(
                "expects text, a list or an object, got {}",
                kind(other)
            ));
        }
    };
    Ok(Value::from(n))
}

fn join(a: &[&Value]) -> Result<Value, String> {
    let Value::Array(items) = a[0] else {
        return Err(format!("expects a list, got {}", kind(a[0])));
    };
    let sep = a.get(1).map_or(Cow::Borrowed(","), |v| text(v));
    let parts: Vec<Cow<'_, str>> = items.iter().map(text).collect();
    Ok(Value::String(parts.join(sep.as_ref())))
}

fn now(_: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

/// Orders numbers by value, text lexically, and a number against numeric text
/// (headers and query parameters are text); anything else is unordered.
fn compare(x: &Value, y: &Value) -> Option<Ordering> {
    fn numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
            return Some(a.cmp(&b));
        }
        if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
            return Some(a.cmp(&b));
        }
        a.as_f64()?.partial_cmp(&b.as_f64()?)
    }
    fn parse(s: &str) -> Option<serde_json::Number> {
        s.trim().parse().ok()
    }
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => numbers(a, b),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::String(b)) => numbers(a, &parse(b)?),
        (Value::String(a), Value::Number(b)) => numbers(&parse(a)?, b),
        _ => None,
    }
}

/// Equal JSON values are equal, and so are numbers of equal value (`1` and `1.0`).
fn equal(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(_), Value::Number(_)) => compare(x, y) == Some(Ordering::Equal),
        _ => x == y,
    }
}

fn eq(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(equal(a[0], a[1])))
}

fn ne(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(!equal(a[0], a[1])))
}

fn gt(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(compare(a[0], a[1]) == Some(Ordering::Greater)))
}

fn gte(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(matches!(
        compare(a[0], a[1]),
        Some(Ordering::Greater | Ordering::Equal)
    )))
}

fn lt(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(compare(a[0], a[1]) == Some(Ordering::Less)))
}

fn lte(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(matches!(
        compare(a[0], a[1]),
        Some(Ordering::Less | Ordering::Equal)
    )))
}

fn not(a: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(!a[0].is_truthy(false)))
}
