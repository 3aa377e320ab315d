//! What an attempt of a step did: its [`Outcome`] (with a [`Fault`] when it
//! did not succeed) and the [`Captured`] bytes of a reply or a pipe. Shared
//! by every action kind; the engine stores and judges it.

use std::time::Duration;

use serde_json::Value;

use crate::rules::Secrets;

/// Stored texts (response bodies, stdout, stderr) are cut to this many
/// bytes (SPEC §5).
pub const TEXT_LIMIT: usize = 64 * 1024;

/// How much of a body or stdout is kept in memory: more than is shown, so
/// a JSON reply a bit over [`TEXT_LIMIT`] still parses into `steps.<id>.json`.
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// Why a step did not succeed. Whether that is worth another attempt is
/// the engine's decision (`engine::retry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Could not connect, or the connection broke mid-exchange.
    Connection,
    /// The step's `timeout` passed (a command's process group was killed).
    Timeout,
    /// An HTTP status outside what the step expects.
    Status {
        status: u16,
        /// The reply's `Retry-After` header as sent (seconds or HTTP date).
        retry_after: Option<String>,
    },
    /// The command exited non-zero (or `128 + signal`).
    Exit(i32),
    /// Never worth retrying: an invalid URL or header, a command that
    /// cannot start, Slack's `ok: false`.
    Final,
}

/// What one attempt of a step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What was sent (method, URL, chosen headers; argv), secrets already
    /// shown as `***`, credentials left out.
    pub request: Value,
    /// The HTTP status or the exit code.
    pub status: Option<i64>,
    /// The reply's body (http, slack).
    pub body: Option<Captured>,
    pub stdout: Option<Captured>,
    pub stderr: Option<Captured>,
    /// What went wrong, for people (not yet redacted: the engine does that
    /// with everything it stores).
    pub error: Option<String>,
    /// `None`: the step succeeded.
    pub fault: Option<Fault>,
    pub duration: Duration,
}

impl Outcome {
    /// A failure before anything was sent or started.
    pub fn failed(request: Value, fault: Fault, error: impl Into<String>) -> Outcome {
        Outcome {
            request,
            status: None,
            body: None,
            stdout: None,
            stderr: None,
            error: Some(error.into()),
            fault: Some(fault),
            duration: Duration::ZERO,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.fault.is_none()
    }
}

/// Bytes read from a body or a pipe: the first [`CAPTURE_LIMIT`] kept, the
/// rest only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    kept: Vec<u8>,
    total: usize,
}

impl Captured {
    pub fn push(&mut self, bytes: &[u8]) {
        let room = CAPTURE_LIMIT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.total += bytes.len();
    }

    /// Every byte read, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The text as stored: at most [`TEXT_LIMIT`] bytes (lossy UTF-8), then
    /// `\n[… truncated N bytes]` when there was more.
    pub fn text(&self) -> String {
        self.shown(self.kept.len().min(TEXT_LIMIT), &Secrets::default())
    }

    /// [`Captured::text`] with the secrets replaced by `***`, the cut moved
    /// past a secret that straddles it (so no prefix of one is kept).
    pub fn redacted_text(&self, secrets: &Secrets) -> String {
        self.shown(secrets.cut_point(&self.kept, TEXT_LIMIT), secrets)
    }

    /// The first `end` bytes kept, redacted, and how many more there were.
    fn shown(&self, end: usize, secrets: &Secrets) -> String {
        let shown = &self.kept[..end.min(self.kept.len())];
        let mut text = secrets
            .redact_cow(&String::from_utf8_lossy(shown))
            .into_owned();
        let cut = self.total - shown.len();
        if cut > 0 {
            text.push_str(&format!("\n[… truncated {cut} bytes]"));
        }
        text
    }

    /// The bytes parsed as JSON, if all of them were kept and they are JSON.
    pub fn json(&self) -> Option<Value> {
        if self.total != self.kept.len() || self.kept.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        serde_json::from_slice(&self.kept).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_text_keeps_no_part_of_a_secret_at_its_cut() {
        let secret = "0123456789abcdef";
        let secrets = Secrets::new([secret.to_string()].into_iter().collect());
        let mut captured = Captured::default();
        // The secret straddles the 64 KiB cut.
        captured.push(&vec![b'x'; TEXT_LIMIT - 5]);
        captured.push(secret.as_bytes());
        captured.push(b"tail");
        let plain = captured.text();
        assert!(plain.contains("01234"), "the unredacted cut keeps a prefix");
        let stored = captured.redacted_text(&secrets);
        assert!(
            !stored.contains("01234"),
            "{}",
            &stored[stored.len() - 40..]
        );
        assert!(
            stored.ends_with("***\n[… truncated 4 bytes]"),
            "{}",
            &stored[stored.len() - 40..]
        );
    }
}
