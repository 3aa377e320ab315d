//! The page shell every dashboard page shares (head, navigation, log out),
//! the login and error pages, and small pieces pages repeat: times,
//! status badges, the hidden CSRF field, `<pre>` blocks.
//!
//! Everything is maud markup, escaped by default: payloads and headers are
//! the sender's (an attacker's) text and only ever appear as text. No
//! inline script and no `style` attribute: the CSP allows neither.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::auth::Current;

/// htmx's settings, read from this meta tag (not from an inline script):
/// no `eval` (hx-on, `js:` values), no script tags from swapped content,
/// no injected `<style>` (the CSP would block it), and requests to this
/// origin only.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// The navigation: (path, label).
const NAV: [(&str, &str); 5] = [
    ("/ui/", "Overview"),
    ("/ui/deliveries", "Deliveries"),
    ("/ui/runs", "Runs"),
    ("/ui/rules", "Rules"),
    ("/ui/nodes", "Nodes"),
];

/// A full page: `title`, the navigation (with `active` marked), `body`.
pub fn shell(title: &str, active: &str, current: &Current, body: Markup) -> Markup {
    html! {
        (head(title))
        body {
            header.top {
                a.brand href="/ui/" { "hookflow" }
                nav {
                    @for (path, label) in NAV {
                        a href=(path) aria-current=[(path == active).then_some("page")] { (label) }
                    }
                }
                @if current.can_log_out {
                    form.logout method="post" action="/ui/logout" {
                        (csrf_field(current))
                        button type="submit" { "Log out" }
                    }
                }
            }
            main { (body) }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en";
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · hookflow" }
            link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/ui/assets/ui.css";
            script src="/ui/assets/htmx.min.js" {}
            script src="/ui/assets/sse.min.js" {}
            script src="/ui/assets/ui.js" {}
        }
    }
}

/// The login form. `next` is where to go after (already checked).
pub fn login_page(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        (head("Log in"))
        body {
            main.login {
                h1 { "hookflow" }
                p { "Log in with the admin token (" code { "admin_token" } " in hookflow.yaml)." }
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                }
            }
        }
    }
}

/// A page saying what went wrong, with a way back.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    html! {
        (head(status.canonical_reason().unwrap_or("Error")))
        body {
            main {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error role="alert" { (message) }
                p { a href="/ui/" { "Back to the dashboard" } }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(current: &Current) -> Markup {
    html! { input type="hidden" name="csrf" value=(current.csrf); }
}

/// A time (unix ms) in UTC; `ui.js` rewrites it into the viewer's zone.
pub fn time(ms: i64) -> Markup {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
                (t.format("%Y-%m-%d %H:%M:%S UTC"))
            }
        },
        None => html! { "?" },
    }
}

/// An RFC 3339 time as [`time`] shows it; other text as it is.
pub fn time_text(rfc3339: &str) -> Markup {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => time(t.timestamp_millis()),
        Err(_) => html! { (rfc3339) },
    }
}

/// A status word as a coloured badge (the class is the word itself, from
/// a closed set, never from the payload).
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "succeeded" | "accepted" | "matched" | "ok" => "badge ok",
        "failed" | "rejected" | "error" => "badge bad",
        "running" | "queued" | "retrying" => "badge busy",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

/// Preformatted text, escaped.
pub fn pre(text: &str) -> Markup {
    html! { pre { (text) } }
}

/// A definition list row, skipped when the value is absent.
pub fn row(label: &str, value: Option<Markup>) -> Markup {
    html! {
        @if let Some(value) = value {
            dt { (label) } dd { (value) }
        }
    }
}

/// A duration in milliseconds, short.
pub fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Ids and names in a URL path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_text_is_escaped_everywhere_it_goes() {
        let evil = r#""><img src=x onerror=alert(1)><script>alert(2)</script>"#;
        let html = pre(evil).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let page = login_page("c", evil, Some(evil)).into_string();
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }

    #[test]
    fn times_are_utc_with_a_machine_readable_datetime() {
        let t = time(1_767_323_045_000).into_string();
        assert!(t.contains(r#"datetime="2026-01-02T03:04:05.000Z""#), "{t}");
        assert!(t.contains("2026-01-02 03:04:05 UTC"), "{t}");
    }
}
