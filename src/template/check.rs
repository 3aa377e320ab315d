//! What compilation adds to handlebars' parser: syntax errors as one clean
//! sentence with a position, a walk that rejects unknown helpers, partials and
//! decorators at load time instead of at the first delivery, and the
//! detection of lone `{{expr}}` templates that keep their value's JSON type.

use handlebars::template::{Parameter, Subexpression, Template as Parsed, TemplateElement};
use handlebars::{Path, PathSeg, TemplateErrorReason};

use super::TemplateError;
use super::helpers;

/// Handlebars' parse error, rephrased: its own text lists grammar rule names.
pub(super) fn syntax_error(source: &str, e: &handlebars::TemplateError) -> TemplateError {
    let (line, column) = e.pos().unzip();
    let message = match e.reason() {
        TemplateErrorReason::InvalidSyntax(expected) => describe_syntax(source, e.pos(), expected),
        TemplateErrorReason::MismatchingClosedHelper(open, close) => {
            format!("the block {{{{#{open}}}}} is closed by {{{{/{close}}}}}")
        }
        other => other.to_string(),
    };
    TemplateError {
        message,
        line,
        column,
    }
}

fn describe_syntax(source: &str, pos: Option<(usize, usize)>, expected: &str) -> String {
    let at = pos.and_then(|(line, col)| char_at(source, line, col));
    let message = if expected.contains("helper_block_end") {
        "a block opened with {{#…}} is not closed with {{/…}}"
    } else if expected.contains("invert_tag_item") {
        "{{else}} appears outside of a block"
    } else if expected.contains("path_inline") {
        match at {
            Some('/') => "a closing {{/…}} has no matching opening block",
            Some('!') => "a comment {{!…}} is not closed",
            Some('"' | '\'') => "a quoted string is not closed",
            Some('}') => "an expression {{}} is empty",
            Some(_) => "expected a value path or a helper name after {{",
            None => "the template ends right after {{",
        }
    } else if expected.contains("path_id") {
        "a path is malformed: expected a name after '.' or a closing ']'"
    } else if at.is_none() {
        "the template ends inside an expression: a closing }} or ) is missing"
    } else if expected.contains("helper_parameter") {
        "unexpected character in an expression: expected an argument, ) or }}"
    } else if expected.contains("trailing_tilde_to_omit_whitespace") {
        "expected }} to close the expression"
    } else {
        "invalid template syntax"
    };
    message.to_string()
}

/// The character at a 1-based line and (character) column, as pest counts them.
fn char_at(source: &str, line: usize, col: usize) -> Option<char> {
    let text = source.split('\n').nth(line.checked_sub(1)?)?;
    text.chars().nth(col.checked_sub(1)?)
}

/// Rejects what would only fail when a delivery is rendered: calls to helpers
/// that do not exist, partials (there are none to include) and decorators.
pub(super) fn check(t: &Parsed) -> Result<(), TemplateError> {
    for (i, element) in t.elements.iter().enumerate() {
        let at = |message: String| {
            let pos = t.mapping.get(i);
            TemplateError {
                message,
                line: pos.map(|m| m.0),
                column: pos.map(|m| m.1),
            }
        };
        match element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                let name_only = ht.params.is_empty() && ht.hash.is_empty();
                if name_only {
                    // A value (`{{payload.x}}`) or a helper called without arguments (`{{now}}`).
                    if let Parameter::Subexpression(s) = &ht.name {
                        check_subexpression(s).map_err(at)?;
                    }
                } else {
                    check_helper_name(&ht.name).map_err(at)?;
                }
                check_params(&ht.params, ht.hash.values()).map_err(at)?;
            }
            TemplateElement::HelperBlock(ht) => {
                if ht.name.as_name() == Some("raw") {
                    return Err(at(
                        "raw blocks {{{{raw}}}} are not supported: write \\{{ for a literal {{"
                            .to_string(),
                    ));
                }
                check_helper_name(&ht.name).map_err(at)?;
                check_params(&ht.params, ht.hash.values()).map_err(at)?;
                for nested in [&ht.template, &ht.inverse].into_iter().flatten() {
                    check(nested)?;
                }
            }
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(at("partials {{> …}} are not supported".to_string()));
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(at("decorators {{* …}} are not supported".to_string()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_params<'a>(
    params: &'a [Parameter],
    hash: impl Iterator<Item = &'a Parameter>,
) -> Result<(), String> {
    for p in params.iter().chain(hash) {
        if let Parameter::Subexpression(s) = p {
            check_subexpression(s)?;
        }
    }
    Ok(())
}

/// A subexpression always calls a helper, even without arguments.
fn check_subexpression(s: &Subexpression) -> Result<(), String> {
    match s.as_element() {
        TemplateElement::Expression(ht) => {
            check_helper_name(&ht.name)?;
            check_params(&ht.params, ht.hash.values())
        }
        _ => Ok(()),
    }
}

fn check_helper_name(name: &Parameter) -> Result<(), String> {
    match name {
        Parameter::Subexpression(s) => check_subexpression(s),
        _ => match name.as_name() {
            Some(n) if helpers::is_helper(n) => Ok(()),
            Some(n) => Err(unknown_helper(n)),
            None => Err("expected a helper name before the arguments".to_string()),
        },
    }
}

fn unknown_helper(name: &str) -> String {
    let closest = helpers::helper_names()
        .map(|h| (strsim::levenshtein(name, h), h))
        .min()
        .filter(|(distance, _)| *distance <= 2);
    match closest {
        Some((_, h)) => format!("unknown helper '{name}' (did you mean '{h}'?)"),
        None => format!("unknown helper '{name}'"),
    }
}

/// How a template that is exactly one `{{expr}}` yields its value's JSON type.
pub(super) enum ValueForm {
    /// `{{a.b.c}}`: looked up directly in the data (no JSON round trip);
    /// the segments, and the path as written for error messages.
    Path(Vec<String>, String),
    /// Anything else (`{{len a}}`, `{{this}}`, `{{@root.a}}`): the source of
    /// a template that renders it as JSON text, `{{json expr}}` for a value
    /// and `{{json (expr)}}` for a helper call.
    Json(String),
}

pub(super) fn value_form(source: &str, t: &Parsed) -> Option<ValueForm> {
    let [TemplateElement::Expression(ht)] = t.elements.as_slice() else {
        return None;
    };
    if ht.block || source.starts_with("{{{") {
        return None;
    }
    let inner = source.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let inner = inner.strip_prefix('~').unwrap_or(inner);
    let inner = inner.strip_suffix('~').unwrap_or(inner).trim();
    let is_helper_call = !(ht.params.is_empty() && ht.hash.is_empty())
        || ht.name.as_name().is_some_and(helpers::is_helper);
    if is_helper_call {
        return Some(ValueForm::Json(format!("{{{{json ({inner})}}}}")));
    }
    if let Parameter::Path(Path::Relative((segments, raw))) = &ht.name {
        let named: Option<Vec<String>> = segments
            .iter()
            .map(|seg| match seg {
                PathSeg::Named(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        if let Some(named) = named.filter(|n| !n.is_empty()) {
            return Some(ValueForm::Path(named, raw.clone()));
        }
    }
    Some(ValueForm::Json(format!("{{{{json {inner}}}}}")))
}
