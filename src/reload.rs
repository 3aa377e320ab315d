//! Hot reload: watch the rules directory, load and validate the whole set
//! on any change, and swap it in atomically only when it is fully valid.
//!
//! Requests read the set through an `ArcSwap`: they never wait for a reload,
//! and one that started on the old set finishes on it. An invalid set is
//! rejected whole; its errors are logged and kept for `GET /api/rules`.
//!
//! Every reload is appended to the audit trail ([`audit`]) with who
//! started it: the API or dashboard (`server/api`), SIGHUP (`signal`) or
//! the watcher on a changed file (`watcher`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer, new_debouncer_opt};
use serde::Serialize;

use crate::rules::{RuleSet, SharedRules};
use crate::shutdown::Shutdown;
use crate::store::{ActionKind, Actor, OperatorAction, Store};

/// How long the watcher waits for a burst of writes to settle.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// How often `--poll` looks at the files.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a reload re-reads files that were changing under it, and how
/// long it waits to see whether they still are.
const SETTLE_RETRIES: usize = 5;
/// A file modified this recently may still be being written.
const QUIET: Duration = Duration::from_millis(50);
/// A writer that never stops cannot hold a reload back longer than this.
const MAX_QUIET_WAIT: Duration = Duration::from_millis(500);

/// Waits (boundedly) until no file below `dir` was modified within `QUIET`.
fn wait_until_quiet(dir: &Path) {
    let started = Instant::now();
    while started.elapsed() < MAX_QUIET_WAIT {
        let newest = fingerprint(dir)
            .into_iter()
            .filter_map(|(_, _, modified)| modified)
            .max();
        let age = newest.and_then(|m| std::time::SystemTime::now().duration_since(m).ok());
        match age {
            Some(age) if age < QUIET => std::thread::sleep(QUIET - age),
            _ => return,
        }
    }
}

/// Size and modification time of each of `files`, a symlink's own and its
/// target's (a Kubernetes secret is a symlink swapped to a new target).
fn fingerprint_files(files: &[PathBuf]) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    for f in files {
        for meta in [std::fs::symlink_metadata(f), std::fs::metadata(f)]
            .into_iter()
            .flatten()
        {
            out.push((f.clone(), meta.len(), meta.modified().ok()));
        }
        if let Ok(target) = std::fs::canonicalize(f) {
            out.push((target, 0, None));
        }
    }
    out
}

/// Size and modification time of every file below `dir`: enough to see a
/// file change while it is read.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        // As deep as `rules::load` looks: 16 levels of directories.
        .max_depth(17)
        .into_iter()
        // Unreadable directories and dangling links have nothing to compare.
        .flatten()
        .filter(|entry| !entry.file_type().is_dir())
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            Some((entry.into_path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    out.sort();
    out
}

/// Logs a secret file's directory that cannot be watched (the rules still
/// reload on their own changes, SIGHUP and `POST /api/reload`).
fn watch_secret_dir(result: notify::Result<()>, dir: &Path) {
    match result {
        Ok(()) => tracing::info!(dir = %dir.display(), "watching a secret file's directory"),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a secret file's directory")
        }
    }
}

/// What happened at the last reload, for `GET /api/rules` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When the running set was loaded.
    pub loaded_at: DateTime<Utc>,
    pub last_reload_at: Option<DateTime<Utc>>,
    /// `ok` or `error`; `None` before the first reload.
    pub last_outcome: Option<&'static str>,
    /// The errors that kept the last attempted set out (`file:line:column: message`).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub succeeded: u64,
    pub failed: u64,
}

/// The outcome of one reload.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub rules: usize,
    pub sources: usize,
    pub duration_ms: u64,
}

/// Owns the running rule set and replaces it.
pub struct Reloader {
    dir: PathBuf,
    rules: SharedRules,
    status: Mutex<Status>,
    /// One reload at a time: a watcher event, SIGHUP and the API may race.
    loading: Mutex<()>,
    /// Refuse a set whose verifier secrets come from a public
    /// `${NAME:-default}` (SPEC §10: `serve` without `--dev`).
    refuse_defaulted_secrets: std::sync::atomic::AtomicBool,
    /// Notified after a new set is swapped in (the nodes registry's
    /// heartbeat reports the new hash at once).
    changed: Arc<tokio::sync::Notify>,
}

impl Reloader {
    pub fn new(dir: PathBuf, initial: RuleSet) -> Arc<Reloader> {
        let warnings = initial.warnings().iter().map(ToString::to_string).collect();
        Arc::new(Reloader {
            dir,
            rules: Arc::new(ArcSwap::from_pointee(initial)),
            status: Mutex::new(Status {
                loaded_at: Utc::now(),
                last_reload_at: None,
                last_outcome: None,
                errors: Vec::new(),
                warnings,
                succeeded: 0,
                failed: 0,
            }),
            loading: Mutex::new(()),
            refuse_defaulted_secrets: std::sync::atomic::AtomicBool::new(false),
            changed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// From now on, a reload that brings a verifier secret from its public
    /// default is rejected like an invalid set (`serve` without `--dev`
    /// refuses such a set at start, and a reload must not sneak one in).
    pub fn refuse_defaulted_secrets(&self, refuse: bool) {
        self.refuse_defaulted_secrets
            .store(refuse, std::sync::atomic::Ordering::Relaxed);
    }

    /// The shared handle every reader uses.
    pub fn rules(&self) -> SharedRules {
        self.rules.clone()
    }

    /// Notified (`notify_one`: a change is never lost) after every reload
    /// that swapped in a new set.
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the whole directory; swaps it in if valid. Blocking: call it
    /// from a blocking thread (`spawn_blocking`), not the async runtime.
    pub fn reload(&self) -> Report {
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        // A file written in place is briefly empty or half-written. Wait for
        // the files to be quiet, and if any changed while the set was being
        // read, read it again.
        let mut tries = 0;
        let result = loop {
            wait_until_quiet(&self.dir);
            let secrets = self.rules.load().secret_files().to_vec();
            let before = (fingerprint(&self.dir), fingerprint_files(&secrets));
            let result = crate::rules::load(&self.dir);
            tries += 1;
            let after = (fingerprint(&self.dir), fingerprint_files(&secrets));
            if after == before || tries > SETTLE_RETRIES {
                break result;
            }
        };
        let now = Utc::now();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_reload_at = Some(now);
        let refuse = self
            .refuse_defaulted_secrets
            .load(std::sync::atomic::Ordering::Relaxed);
        let result = result.map_err(|e| e.errors().map(ToString::to_string).collect::<Vec<_>>());
        let result = result.and_then(|set| match set.defaulted_secrets() {
            defaulted if refuse && !defaulted.is_empty() => Err(defaulted
                .iter()
                .map(|d| {
                    format!(
                        "{}: the verifier secret of source `{}` comes from the public default of ${{{}}}; set {} (without --dev, serve runs no rules with a defaulted secret)",
                        d.loc, d.source, d.variable, d.variable
                    )
                })
                .collect()),
            _ => Ok(set),
        });
        let report = match result {
            Ok(set) => {
                let warnings: Vec<String> =
                    set.warnings().iter().map(ToString::to_string).collect();
                let (rules, sources) = (set.rules().len(), set.sources().len());
                self.rules.store(Arc::new(set));
                self.changed.notify_one();
                status.loaded_at = now;
                status.last_outcome = Some("ok");
                status.errors.clear();
                status.warnings = warnings.clone();
                status.succeeded += 1;
                crate::metrics::reload(crate::metrics::ReloadOutcome::Ok);
                tracing::info!(rules, sources, "rules reloaded");
                Report {
                    ok: true,
                    errors: Vec::new(),
                    warnings,
                    rules,
                    sources,
                    duration_ms: 0,
                }
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!("{error}");
                }
                tracing::error!(
                    errors = errors.len(),
                    "rules not reloaded: the running rules stay in force"
                );
                status.last_outcome = Some("error");
                status.errors = errors.clone();
                status.failed += 1;
                crate::metrics::reload(crate::metrics::ReloadOutcome::Error);
                let current = self.rules.load();
                Report {
                    ok: false,
                    errors,
                    warnings: Vec::new(),
                    rules: current.rules().len(),
                    sources: current.sources().len(),
                    duration_ms: 0,
                }
            }
        };
        Report {
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..report
        }
    }

    /// Watches the directory until `shutdown`; every change reloads. With
    /// `poll`, files are compared by content on an interval instead (for
    /// NFS and container mounts where inotify sees nothing).
    ///
    /// The directory is watched, not files, and events are not filtered by
    /// name: editors save by renaming a temp file over the original, and a
    /// Kubernetes ConfigMap update only swaps the `..data` symlink.
    pub fn watch(
        self: &Arc<Self>,
        poll: bool,
        store: Arc<dyn Store>,
        mut shutdown: Shutdown,
    ) -> notify::Result<tokio::task::JoinHandle<()>> {
        let reloader = self.clone();
        // The handler runs on the watcher's thread; the trail is written on
        // the runtime.
        let runtime = tokio::runtime::Handle::current();
        let actor = Actor::watcher(&self.dir);
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) => {
                let relevant = events
                    .iter()
                    .any(|e| !matches!(e.event.kind, EventKind::Access(_)));
                if relevant {
                    let report = reloader.reload();
                    let (store, actor) = (store.clone(), actor.clone());
                    runtime.spawn(async move { audit(&store, &actor, &report).await });
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "rules watcher error");
                }
            }
        };
        let dir = self.dir.clone();
        let secret_dirs = self.secret_dirs();
        let guard: Box<dyn Send> = if poll {
            let config = notify::Config::default()
                .with_poll_interval(POLL_INTERVAL)
                .with_compare_contents(true);
            let mut debouncer = new_debouncer_opt::<_, notify::PollWatcher, _>(
                DEBOUNCE,
                None,
                handler,
                notify_debouncer_full::NoCache,
                config,
            )?;
            debouncer.watch(&dir, RecursiveMode::Recursive)?;
            for d in &secret_dirs {
                watch_secret_dir(debouncer.watch(d, RecursiveMode::NonRecursive), d);
            }
            Box::new(debouncer)
        } else {
            let mut debouncer = new_debouncer(DEBOUNCE, None, handler)?;
            debouncer.watch(&dir, RecursiveMode::Recursive)?;
            for d in &secret_dirs {
                watch_secret_dir(debouncer.watch(d, RecursiveMode::NonRecursive), d);
            }
            Box::new(debouncer)
        };
        tracing::info!(dir = %dir.display(), poll, "watching the rules for changes");
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            drop(guard); // stops the watcher
        }))
    }

    /// The directories of the running set's `${file:PATH}` secrets outside
    /// the rules directory: watched too, since Kubernetes rotates a secret
    /// by swapping a symlink beside it.
    fn secret_dirs(&self) -> Vec<PathBuf> {
        let rules = self.rules.load();
        let mut dirs: Vec<PathBuf> = rules
            .secret_files()
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|d| !d.starts_with(&self.dir))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Reloads on every SIGHUP until `shutdown`, each recorded in the
    /// audit trail.
    pub fn reload_on_sighup(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        mut shutdown: Shutdown,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let reloader = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    got = hup.recv() => {
                        if got.is_none() {
                            break;
                        }
                        tracing::info!("SIGHUP: reloading the rules");
                        let r = reloader.clone();
                        if let Ok(report) = tokio::task::spawn_blocking(move || r.reload()).await {
                            audit(&store, &Actor::sighup(), &report).await;
                        }
                    }
                }
            }
        }))
    }
}

/// Appends a reload to the audit trail: who started it and whether the
/// set was taken. The reload is done already, so a trail that cannot be
/// written is logged, not reported as the reload failing.
pub async fn audit(store: &Arc<dyn Store>, actor: &Actor, report: &Report) {
    let detail = serde_json::json!({
        "ok": report.ok,
        "rules": report.rules,
        "errors": report.errors.len(),
    });
    let entry = OperatorAction::new(ActionKind::Reload, None, actor, detail);
    if let Err(e) = store.record_operator_action(entry).await {
        tracing::error!(error = %e, via = actor.via.as_str(), "cannot record a reload in the audit trail");
    }
}
