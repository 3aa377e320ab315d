//! `hookflow sink [--listen ADDR]`: a local catch-all that prints every
//! request it receives (method, path, headers, pretty body) and answers 200
//! `{"ok":true}` — somewhere for the example rules' actions to go (they
//! default to http://127.0.0.1:9000/…), and a way for a rule author to see
//! exactly what a step sends.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::IntoResponse;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    listen: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listen: SocketAddr = crate::config::SettingValue::parse(&args.listen)
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", args.listen))?;
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr().unwrap_or(listen);
        print(&format!(
            "hookflow sink listening on http://{address} (Ctrl-C to stop)\n"
        ));
        let app = axum::Router::new().fallback(show);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the sink failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn show(request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    // The sink is local and for people: 16 MiB is plenty.
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    print(&render(parts.method.as_str(), path, &parts.headers, &body));
    axum::Json(serde_json::json!({ "ok": true }))
}

/// One request as text: a separator line, the headers, a blank line and
/// the body (JSON pretty-printed; other text as is; bytes by count).
fn render(method: &str, path: &str, headers: &HeaderMap, body: &Bytes) -> String {
    let mut out = format!(
        "--- {} {method} {path}\n",
        chrono::Utc::now().format("%H:%M:%S%.3f")
    );
    for (name, value) in headers {
        out.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out.push('\n');
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        out.push_str(&serde_json::to_string_pretty(&json).unwrap_or_default());
        out.push('\n');
    } else if let Ok(text) = std::str::from_utf8(body) {
        out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str(&format!("({} bytes, not text)\n", body.len()));
    }
    out.push('\n');
    out
}

/// Stdout may be a closed pipe (`hookflow sink | head`): never panic.
fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_pretty_and_headers_listed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-test", "yes".parse().unwrap());
        let text = render(
            "POST",
            "/a?b=1",
            &headers,
            &Bytes::from_static(br#"{"k":[1,2]}"#),
        );
        assert!(text.contains("POST /a?b=1\n"), "{text}");
        assert!(text.contains("x-test: yes\n"), "{text}");
        assert!(text.contains("{\n  \"k\": [\n    1,"), "{text}");
        let text = render(
            "PUT",
            "/",
            &HeaderMap::new(),
            &Bytes::from_static(b"\xff\xfe"),
        );
        assert!(text.contains("(2 bytes, not text)"), "{text}");
    }
}
