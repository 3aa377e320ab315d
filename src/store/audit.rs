//! The audit trail (SPEC §5): every replay, retry, cancel and reload an
//! operator starts is recorded with who started it (through the CLI, the
//! API, a UI or a signal), from where, and when; so is a reload the rules
//! watcher starts on a changed file (a deployed rule change). Plain data
//! shared by every backend.

use serde::Serialize;
use serde_json::Value;

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Replay,
    Retry,
    Cancel,
    Reload,
}

/// Through what an operator acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Cli,
    Api,
    Ui,
    /// `kill -HUP` (a reload).
    Signal,
    /// The rules watcher saw a file change (a reload).
    Watcher,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

text_enum!(ActionKind { Replay => "replay", Retry => "retry", Cancel => "cancel", Reload => "reload" });
text_enum!(Via { Cli => "cli", Api => "api", Ui => "ui", Signal => "signal", Watcher => "watcher" });

/// Who acts: recorded with each action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub via: Via,
    /// The client's address (API, UI), `user@host` (CLI), the signal
    /// (`SIGHUP`) or the watched directory.
    pub client: String,
}

impl Actor {
    /// The person at this terminal: `$USER@hostname`.
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let client = if host.is_empty() {
            user
        } else {
            format!("{user}@{host}")
        };
        Actor {
            via: Via::Cli,
            client,
        }
    }
}

impl Actor {
    /// `kill -HUP`: the server's SIGHUP handler.
    pub fn sighup() -> Actor {
        Actor {
            via: Via::Signal,
            client: "SIGHUP".to_owned(),
        }
    }

    /// The rules watcher, on a change below `dir`.
    pub fn watcher(dir: &std::path::Path) -> Actor {
        Actor {
            via: Via::Watcher,
            client: dir.display().to_string(),
        }
    }
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorAction {
    /// ULID.
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    pub action: ActionKind,
    /// The delivery (replay) or run (retry, cancel); `None` for a reload.
    pub target: Option<String>,
    pub via: Via,
    pub client: String,
    /// What it did: the runs a replay queued, a cancel's outcome, a
    /// reload's result.
    pub detail: Value,
}

impl OperatorAction {
    /// A new record of `action` on `target` by `actor`, now.
    pub fn new(action: ActionKind, target: Option<&str>, actor: &Actor, detail: Value) -> Self {
        OperatorAction {
            id: ulid::Ulid::new().to_string(),
            at: chrono::Utc::now().timestamp_millis(),
            action,
            target: target.map(str::to_owned),
            via: actor.via,
            client: actor.client.clone(),
            detail,
        }
    }
}
