//! The dashboard's access rules over HTTP (SPEC §8): where it is served,
//! the login (session cookie, never the token; at most 5 failures a minute
//! per client), CSRF token plus same-origin `Origin` on every
//! state-changing request in both modes, and the CSP on every page.
//! What a browser does with the pages is ui_browser.rs.

use std::time::Duration;

use crate::common::app::{TestApp, spawn_app, spawn_app_with};
use crate::common::sink::Reply;
use crate::common::wait;
use reqwest::header::{self, HeaderMap};
use serde_json::json;

const TOKEN: &str = "ui-http-t0ken";
const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const RULES: &str = r#"
sources:
  gh:
    verify:
      token: { header: X-Token, value: "tok-123" }
rules:
  - name: notify
    source: gh
    actions:
      - http: { url: "http://127.0.0.1:9/" }
"#;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `name=value` of the session cookie a response sets.
fn session_cookie(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("hookflow_session="))
        .map(|c| {
            let pair = c.split(';').next().unwrap_or("").to_owned();
            (pair, c.to_owned())
        })
}

/// The value of the page's hidden `csrf` field.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[at..].split('"').next().expect("its value").to_owned()
}

/// Opens the login page: (its session cookie, its CSRF token).
async fn login_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let page = client
        .get(format!("{base}/ui/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    let (cookie, _) = session_cookie(page.headers()).expect("a pre-login session");
    (cookie, csrf_of(&page.text().await.expect("html")))
}

async fn post_login(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_form(client, &format!("{base}/ui/login"), cookie, origin, form).await
}

/// A dashboard page's HTML, fetched with the session cookie.
async fn page_html(client: &reqwest::Client, url: &str, cookie: &str) -> String {
    client
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("the page answered")
        .text()
        .await
        .expect("html")
}

/// A dashboard form posted as a browser would: the session cookie, the
/// form URL-encoded, and `Origin` when given.
async fn post_form(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(form));
    if let Some(origin) = origin {
        req = req.header(header::ORIGIN, origin);
    }
    req.send().await.expect("the form answered")
}

#[tokio::test]
async fn with_a_token_the_dashboard_logs_in_once_into_a_session_cookie() {
    let app = spawn_app_with(&[("r.yaml", RULES)], |s| {
        s.admin_token = Some(hookflow::config::Secret::new(TOKEN));
    })
    .await;
    let client = no_redirects();
    let base = format!("http://{}", app.admin_addr);

    // No session: to the login page, remembering where to go; the API's
    // bearer header is not a dashboard login.
    let page = client
        .get(format!("{base}/ui/runs?status=failed"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()[header::LOCATION],
        "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dfailed"
    );

    let (cookie, csrf) = login_form(&client, &base).await;
    let good = [
        ("token", TOKEN),
        ("csrf", csrf.as_str()),
        ("next", "/ui/runs"),
    ];
    let no_csrf = [("token", TOKEN), ("next", "/ui/runs")];
    // Without Origin, from another origin, or without the CSRF token: refused.
    for (origin, form) in [
        (None, &good[..]),
        (Some("http://evil.example"), &good[..]),
        (Some(base.as_str()), &no_csrf[..]),
    ] {
        let r = post_login(&client, &base, &cookie, origin, form).await;
        assert_eq!(r.status(), 403, "origin {origin:?}, form {form:?}");
    }
    let r = post_login(&client, &base, &cookie, Some(&base), &good).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/ui/runs");
    let (session, set_cookie) = session_cookie(r.headers()).expect("a session cookie");
    assert_ne!(session, cookie, "a fresh session id on login");
    assert!(!set_cookie.contains(TOKEN), "the token is never the cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/ui"] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }

    // The session opens the pages, with the CSP; the pre-login one does not.
    let page = client
        .get(format!("{base}/ui/runs"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .expect("runs page");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    assert!(!page.text().await.expect("html").contains(TOKEN));
    let stale = client
        .get(format!("{base}/ui/runs"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("answer");
    assert_eq!(stale.status(), 303);

    // With a token the dashboard is on the webhook listener too.
    let on_main = client
        .get(app.url("/ui/rules"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .expect("answer");
    assert_eq!(on_main.status(), 200);
}

#[tokio::test]
async fn the_sixth_failed_login_within_a_minute_is_refused_even_with_the_right_token() {
    let app = spawn_app_with(&[("r.yaml", RULES)], |s| {
        s.admin_token = Some(hookflow::config::Secret::new(TOKEN));
    })
    .await;
    let client = no_redirects();
    let base = format!("http://{}", app.admin_addr);
    let (cookie, csrf) = login_form(&client, &base).await;
    for attempt in 1..=5 {
        let form = [("token", "guess"), ("csrf", csrf.as_str())];
        let r = post_login(&client, &base, &cookie, Some(&base), &form).await;
        assert_eq!(r.status(), 401, "attempt {attempt}");
    }
    let form = [("token", TOKEN), ("csrf", csrf.as_str())];
    let r = post_login(&client, &base, &cookie, Some(&base), &form).await;
    assert_eq!(r.status(), 429);
    assert!(session_cookie(r.headers()).is_none());
}

/// Opens a page without a token configured: (the session cookie, csrf).
async fn open_session(client: &reqwest::Client, app: &TestApp, path: &str) -> (String, String) {
    let page = client.get(app.admin_url(path)).send().await.expect("page");
    assert_eq!(page.status(), 200, "{path}");
    assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    let (cookie, set_cookie) = session_cookie(page.headers()).expect("a session");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    (cookie, csrf_of(&page.text().await.expect("html")))
}

#[tokio::test]
async fn without_a_token_replay_still_needs_the_csrf_token_and_a_same_origin_origin() {
    let app = spawn_app(&[("r.yaml", RULES)]).await;
    let client = no_redirects();
    // The webhook listener has no dashboard without a token.
    let absent = client.get(app.url("/ui/")).send().await.expect("answer");
    assert_eq!(absent.status(), 404);

    let response = app
        .post(
            "/hooks/gh",
            &[("X-Token", "tok-123")],
            json!({ "a": 1 }).to_string(),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<serde_json::Value>().await.expect("json")["delivery"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/ui/deliveries/{id}");
    let (cookie, csrf) = open_session(&client, &app, &path).await;
    let base = format!("http://{}", app.admin_addr);
    let replay_url = app.admin_url(&format!("{path}/replay"));
    let replay = |origin: Option<&str>, csrf: String| {
        let (client, url, cookie) = (client.clone(), replay_url.clone(), cookie.clone());
        let origin = origin.map(str::to_owned);
        async move {
            let form = [("csrf", csrf.as_str())];
            post_form(&client, &url, &cookie, origin.as_deref(), &form).await
        }
    };
    let evil = replay(Some("http://evil.example"), csrf.clone()).await;
    assert_eq!(evil.status(), 403);
    assert!(evil.text().await.expect("html").contains("another site"));
    assert_eq!(replay(None, csrf.clone()).await.status(), 403);
    let origin = base.as_str();
    let forged = replay(Some(origin), "0".repeat(64)).await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        app.store.runs_for_delivery(&id).await.expect("runs").len(),
        1
    );

    let done = replay(Some(origin), csrf).await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()[header::LOCATION],
        format!("/ui/deliveries/{id}?replayed=1").as_str()
    );
    assert_eq!(
        app.store.runs_for_delivery(&id).await.expect("runs").len(),
        2
    );
}

#[tokio::test]
async fn every_page_answers_with_the_csp_and_unknown_ids_are_404_pages() {
    let app = spawn_app(&[("r.yaml", RULES)]).await;
    let client = no_redirects();
    for path in [
        "/ui/",
        "/ui/deliveries",
        "/ui/runs",
        "/ui/rules",
        "/ui/nodes",
        "/ui/deliveries/nope",
        "/ui/runs/nope",
    ] {
        let page = client.get(app.admin_url(path)).send().await.expect("page");
        let expected = if path.ends_with("nope") { 404 } else { 200 };
        assert_eq!(page.status(), expected, "{path}");
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            CSP,
            "{path}"
        );
        assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY", "{path}");
        let html = page.text().await.expect("html");
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{path}: inline script or style"
        );
    }
    let js = client
        .get(app.admin_url("/ui/assets/htmx.min.js"))
        .send()
        .await
        .expect("asset");
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let bad = client
        .get(app.admin_url("/ui/deliveries?outcome=sideways"))
        .send()
        .await
        .expect("page");
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_on_the_runs_page_counts_first_then_requeues_every_failed_run_of_the_rule() {
    // Three deliveries: each queues `flaky`, whose step fails at the sink.
    let (app, sink, _) = crate::api::processed_app(3).await;
    let failed_of_flaky = || async {
        let (_, page) = crate::api::get_json(&app, "/api/runs?rule=flaky&status=failed").await;
        crate::api::ids(&page).len()
    };
    assert_eq!(failed_of_flaky().await, 3);
    let client = no_redirects();
    let path = "/ui/runs?rule=flaky&status=failed";
    let (cookie, csrf) = open_session(&client, &app, path).await;
    let page = page_html(&client, &app.admin_url(path), &cookie).await;
    // The count is of what a retry would take: nothing is queued by looking.
    assert!(page.contains("Retry all 3 failed runs"), "{page}");
    assert_eq!(failed_of_flaky().await, 3);

    let url = app.admin_url("/ui/runs/retry");
    let form = [("csrf", csrf.as_str()), ("rule", "flaky")];
    let evil = post_form(&client, &url, &cookie, Some("http://evil.example"), &form).await;
    assert_eq!(evil.status(), 403);
    assert_eq!(failed_of_flaky().await, 3);

    sink.answer("/fail", Reply::status(200));
    let base = format!("http://{}", app.admin_addr);
    let done = post_form(&client, &url, &cookie, Some(&base), &form).await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()[header::LOCATION],
        "/ui/runs?rule=flaky&status=failed&retried=3"
    );
    wait::for_ok(
        "the three retried runs to succeed",
        Duration::from_secs(30),
        || async {
            let (_, page) =
                crate::api::get_json(&app, "/api/runs?rule=flaky&status=succeeded").await;
            match crate::api::ids(&page).len() {
                3 => Ok(()),
                n => Err(format!("{n} succeeded")),
            }
        },
    )
    .await;
    // Recorded as operator actions from the dashboard.
    let (_, actions) = crate::api::get_json(&app, "/api/operator-actions").await;
    let from_ui = actions
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|a| {
                    a["via"] == "ui" && a["action"] == "retry" && a["detail"]["bulk"] == true
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(from_ui, 3, "{actions:#}");
}

/// The run page's second Retry button resumes with the rule as loaded
/// now (`hookflow retry --current`): after the rule's URL is fixed and
/// reloaded, a plain retry would call the old URL again; this one calls
/// the new one, and the audit trail says so.
#[tokio::test]
async fn retry_with_the_current_rule_from_the_run_page_uses_the_reloaded_step() {
    let (app, sink, _) = crate::api::processed_app(1).await;
    let (_, page) = crate::api::get_json(&app, "/api/runs?rule=flaky&status=failed").await;
    let run = crate::api::ids(&page).pop().expect("the failed run");
    let yaml = std::fs::read_to_string(app.rules_dir.join("rules.yaml")).expect("rules");
    assert!(yaml.contains("/fail\""), "{yaml}");
    app.write_rule_file("rules.yaml", &yaml.replace("/fail\"", "/fixed\""));
    let (status, _) = crate::api::post_json(&app, "/api/reload").await;
    assert_eq!(status, 200);

    let client = no_redirects();
    let path = format!("/ui/runs/{run}");
    let (cookie, csrf) = open_session(&client, &app, &path).await;
    let html = page_html(&client, &app.admin_url(&path), &cookie).await;
    assert!(html.contains("Retry with the rule as loaded now"), "{html}");
    let base = format!("http://{}", app.admin_addr);
    let form = [("csrf", csrf.as_str()), ("current", "true")];
    let url = app.admin_url(&format!("{path}/retry"));
    let done = post_form(&client, &url, &cookie, Some(&base), &form).await;
    assert_eq!(done.status(), 303);
    sink.wait_for("/fixed", 1, Duration::from_secs(30)).await;
    wait::for_ok("the run to succeed", Duration::from_secs(30), || async {
        let (_, got) = crate::api::get_json(&app, &format!("/api/runs/{run}")).await;
        match got["status"].as_str() {
            Some("succeeded") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (_, actions) = crate::api::get_json(&app, "/api/operator-actions").await;
    let current = actions
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["via"] == "ui" && a["action"] == "retry" && a["detail"]["current"] == true);
    assert!(current, "{actions:#}");
}

#[tokio::test]
async fn a_delivery_page_says_why_each_rule_excluded_by_event_missed() {
    const BY_EVENT: &str = r#"
sources:
  gh:
    verify:
      token: { header: X-Token, value: "tok-123" }
    event: { header: X-Event }
rules:
  - name: on-push
    source: gh
    event: push
    actions:
      - http: { url: "http://127.0.0.1:9/" }
  - name: on-pr
    source: gh
    event: pull_request
    actions:
      - http: { url: "http://127.0.0.1:9/" }
"#;
    let app = spawn_app(&[("r.yaml", BY_EVENT)]).await;
    let response = app
        .post(
            "/hooks/gh",
            &[("X-Token", "tok-123"), ("X-Event", "push")],
            json!({ "a": 1 }).to_string(),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<serde_json::Value>().await.expect("json")["delivery"]
        .as_str()
        .expect("id")
        .to_owned();
    // Stored by name only (SPEC §4) …
    let stored = app
        .store
        .get_delivery(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.trace["excluded"], json!(["on-pr"]));
    // … and the page works out why from the rule's `event:`.
    let page = no_redirects()
        .get(app.admin_url(&format!("/ui/deliveries/{id}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let row = html
        .split("<tr>")
        .find(|r| r.contains("on-pr"))
        .expect("a row for on-pr");
    assert!(
        row.contains(r#"is not one of: <span class="mono">pull_request</span>"#),
        "{row}"
    );
    assert!(
        html.split("<tr>")
            .any(|r| r.contains("on-push") && r.contains("matched")),
        "{html}"
    );
}

#[tokio::test]
async fn the_nodes_page_lists_this_node_with_its_roles_and_heartbeat() {
    let app = spawn_app(&[("r.yaml", RULES)]).await;
    let client = no_redirects();
    let api: serde_json::Value = client
        .get(app.admin_url("/api/nodes"))
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let id = api["this_node"]
        .as_str()
        .expect("this node's id")
        .to_owned();
    let hash = api["nodes"][0]["rule_set_hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    let page = client
        .get(app.admin_url("/ui/nodes"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let row_at = html
        .find(&format!(r#"data-node="{id}""#))
        .unwrap_or_else(|| panic!("a row for {id}: {html}"));
    let row = &html[row_at
        ..html[row_at..]
            .find("</tr>")
            .map_or(html.len(), |e| row_at + e)];
    assert!(row.contains("(this node)"), "{row}");
    assert!(row.contains(">alive<"), "{row}");
    assert!(row.contains(">receive<"), "roles: {row}");
    assert!(
        row.contains(&format!(">{}", &hash[..12])),
        "short hash: {row}"
    );
    assert!(row.contains(" s ago"), "heartbeat age: {row}");
    assert!(row.contains(env!("CARGO_PKG_VERSION")), "{row}");
    assert!(row.contains(&app.addr.to_string()), "{row}");
    assert!(
        !html.contains("rule-sets-differ"),
        "one node, one rule set: {html}"
    );
    assert!(
        html.contains(r#"href="/ui/nodes" aria-current="page""#),
        "the nav links here: {html}"
    );
}

/// The session cookie is `Secure` exactly when the browser came over
/// HTTPS: here, through a trusted proxy that says so. Plain HTTP, or an
/// untrusted client claiming `X-Forwarded-Proto: https`, gets no `Secure`
/// (a browser would then never send it back over plain HTTP). The
/// listener's own TLS is hardening.rs's case.
#[tokio::test]
async fn the_session_cookie_is_secure_only_behind_https() {
    let app = spawn_app_with(&[("r.yaml", RULES)], |s| {
        s.admin_token = Some(hookflow::config::Secret::new(TOKEN));
        s.trusted_proxies = vec!["127.0.0.2/32".parse().expect("cidr")];
    })
    .await;
    let client = no_redirects();
    let login_cookie = |proto: Option<&'static str>| {
        let client = client.clone();
        let url = app.admin_url("/ui/login");
        async move {
            let mut req = client.get(url);
            if let Some(proto) = proto {
                req = req.header("x-forwarded-proto", proto);
            }
            let page = req.send().await.expect("login page");
            assert_eq!(page.status(), 200);
            session_cookie(page.headers()).expect("a session cookie").1
        }
    };
    let plain = login_cookie(None).await;
    assert!(!plain.contains("Secure"), "{plain}");
    // 127.0.0.1 is not the trusted proxy: its claim is not believed.
    let claimed = login_cookie(Some("https")).await;
    assert!(!claimed.contains("Secure"), "{claimed}");

    // From the trusted proxy's address, its word is taken.
    let from_proxy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    for (proto, secure) in [("https", true), ("http", false), ("http, https", true)] {
        let page = from_proxy
            .get(app.admin_url("/ui/login"))
            .header("x-forwarded-proto", proto)
            .send()
            .await
            .expect("login page");
        let (_, cookie) = session_cookie(page.headers()).expect("a session cookie");
        assert_eq!(cookie.ends_with("; Secure"), secure, "{proto}: {cookie}");
    }
}
