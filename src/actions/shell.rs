//! The `shell` action: a command (argv, no shell) or a script run by
//! `/bin/sh -c`, in its own process group so that its timeout kills every
//! process it started, not only the first. stdout and stderr are read
//! concurrently (a chatty command never blocks on a full pipe) and kept up
//! to [`super::CAPTURE_LIMIT`]. Where payload text could become code is
//! decided at load, in [`injection`].

mod injection;

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

use super::http::object;
use super::{ActionEnv, ActionKind, Captured, Fault, Outcome, Renderer};
use crate::rules::Secrets;
use crate::rules::decode::{Decoder, Fields};
use crate::rules::model::RetryPolicy;
use crate::rules::node::{Kind, Node};
use crate::template::{RenderError, Template};

pub(crate) const SHELL_KEYS: &[&str] = &[
    "command", "script", "env", "workdir", "timeout", "stdin", "retry",
];

const SHELL_TIMEOUT: Duration = Duration::from_secs(60);

/// A `shell` step as decoded.
#[derive(Debug)]
pub struct ShellAction {
    pub program: ShellProgram,
    pub env: Vec<(String, Template)>,
    pub workdir: Option<String>,
    pub stdin: Option<Template>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum ShellProgram {
    /// argv, each element a template; no shell is involved.
    Argv(Vec<Template>),
    /// Run by `/bin/sh -c`, never templated: values come in through `env`.
    Script(String),
}

/// A `shell` step with its templates rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// argv, or `["/bin/sh", "-c", script]`.
    pub argv: Vec<String>,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// Written to the command's stdin, which is then closed.
    pub stdin: Option<String>,
}

impl ActionKind for ShellAction {
    const SETTINGS: &'static str = "`shell` settings (a mapping with command or script)";
    const KEYS: &'static [&'static str] = SHELL_KEYS;
    const RETRY: RetryPolicy = RetryPolicy::SHELL_DEFAULT;
    type Rendered = Command;

    fn decode(dec: &mut Decoder<'_>, node: &Node, f: &mut Fields<'_>) -> Option<Self> {
        let f_command = f.get("command");
        let program = match (f_command, f.get("script")) {
            (Some(n), None) => match &n.kind {
                Kind::Seq(items) if !items.is_empty() => {
                    let argv: Option<Vec<_>> = items.iter().map(|i| dec.template(i)).collect();
                    argv.map(ShellProgram::Argv)
                }
                _ => {
                    dec.expected(n, "a non-empty list (argv: program first, then its arguments; no shell is involved)");
                    None
                }
            },
            (None, Some(n)) => {
                let script = dec.string(n)?;
                if script.contains("{{") {
                    dec.error(
                        n,
                        "`script` is never templated (payload text in a shell script is an injection hole): pass values with `env:` and use them as \"$NAME\"",
                    );
                    None
                } else {
                    Some(ShellProgram::Script(script))
                }
            }
            _ => {
                dec.error(
                    node,
                    "`shell` needs exactly one of `command` (a list) or `script` (a string)",
                );
                None
            }
        };
        let env = dec.opt_template_map(f, "env");
        let workdir = match f.get("workdir") {
            Some(n) => dec.string(n).map(Some),
            None => Some(None),
        };
        let stdin_node = f.get("stdin");
        let stdin = match stdin_node {
            Some(n) => dec.template(n).map(Some),
            None => Some(None),
        };
        let timeout = dec.opt_duration(f, "timeout", SHELL_TIMEOUT);
        let (program, stdin) = (program?, stdin?);
        if !injection::check(dec, &program, f_command, stdin.as_ref(), stdin_node) {
            return None;
        }
        Some(ShellAction {
            program,
            env: env?,
            workdir: workdir?,
            stdin,
            timeout: timeout?,
        })
    }

    fn render(&self, r: &Renderer<'_>) -> Result<Command, RenderError> {
        Ok(Command {
            argv: match &self.program {
                ShellProgram::Argv(args) => args
                    .iter()
                    .enumerate()
                    .map(|(i, t)| r.text(&format!("command[{i}]"), t))
                    .collect::<Result<_, _>>()?,
                ShellProgram::Script(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
            },
            env: r.pairs("env", &self.env)?,
            workdir: self.workdir.clone(),
            stdin: r.opt("stdin", &self.stdin)?,
        })
    }

    fn view(cmd: &Command) -> Value {
        json!({
            "kind": "shell",
            "command": cmd.argv,
            "env": object(&cmd.env),
            "workdir": cmd.workdir,
            "stdin": cmd.stdin,
        })
    }

    async fn execute(&self, cmd: Command, env: &ActionEnv<'_>) -> Outcome {
        execute(self, cmd, env.secrets).await
    }
}

/// After the command exits, how long its output may take to reach EOF: a
/// background child that inherited the pipes would otherwise hold the step
/// open until the deadline. What it writes later is not captured.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Read buffer per pipe.
const CHUNK: usize = 16 * 1024;

async fn execute(action: &ShellAction, cmd: Command, secrets: &Secrets) -> Outcome {
    let summary = summary(&cmd, secrets);
    let Some((program, args)) = cmd.argv.split_first() else {
        return Outcome::failed(summary, Fault::Final, "the command is empty");
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group (pgid = its pid), so the deadline can kill all of it.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cmd.workdir {
        command.current_dir(dir);
    }
    let started = Instant::now();
    let deadline = started + action.timeout;
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let place = cmd
                .workdir
                .as_deref()
                .map(|d| format!(" in {d}"))
                .unwrap_or_default();
            return Outcome::failed(
                summary,
                Fault::Final,
                format!("cannot start {program:?}{place}: {e}"),
            );
        }
    };
    // Killed with the group if this future is dropped (engine shutdown).
    let mut group = Group::new(child.id());
    let feeder = match (cmd.stdin, child.stdin.take()) {
        (Some(text), Some(mut pipe)) => Some(tokio::spawn(async move {
            // A command that does not read its stdin makes this fail
            // (EPIPE): that is its business. Dropping the pipe closes it.
            let _ = pipe.write_all(text.as_bytes()).await;
        })),
        _ => None,
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut out, mut err) = (Captured::default(), Captured::default());
    let (mut out_buf, mut err_buf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut exit: Option<io::Result<ExitStatus>> = None;
    let mut timed_out = false;
    let mut stop_at = deadline;
    loop {
        if exit.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            read = read_from(stdout.as_mut(), &mut out_buf) => match read {
                Ok(n) if n > 0 => out.push(&out_buf[..n]),
                _ => stdout = None,
            },
            read = read_from(stderr.as_mut(), &mut err_buf) => match read {
                Ok(n) if n > 0 => err.push(&err_buf[..n]),
                _ => stderr = None,
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(status);
                if !timed_out {
                    stop_at = deadline.min(Instant::now() + OUTPUT_GRACE);
                }
            }
            () = sleep_until(stop_at) => {
                if exit.is_some() || timed_out {
                    break;
                }
                timed_out = true;
                group.kill();
                // Killed processes close their pipes at once; wait that long
                // for the exit status and the last output.
                stop_at = Instant::now() + OUTPUT_GRACE;
            }
        }
    }
    group.disarm();
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    let (status, fault, error) = match (timed_out, exit) {
        (true, _) | (false, None) => (
            None,
            Some(Fault::Timeout),
            Some(format!(
                "timed out after {}; its process group was killed",
                humantime::format_duration(action.timeout)
            )),
        ),
        (false, Some(Err(e))) => (
            None,
            Some(Fault::Final),
            Some(format!("waiting for {program:?}: {e}")),
        ),
        (false, Some(Ok(status))) => judge(status),
    };
    Outcome {
        request: summary,
        status,
        body: None,
        stdout: Some(out),
        stderr: Some(err),
        error,
        fault,
        duration: started.elapsed(),
    }
}

/// Exit code 0 is success; a signal reads as `128 + signal`, as in a shell.
fn judge(status: ExitStatus) -> (Option<i64>, Option<Fault>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => (Some(0), None, None),
        (Some(code), _) => (
            Some(i64::from(code)),
            Some(Fault::Exit(code)),
            Some(format!("exited with status {code}")),
        ),
        (None, signal) => {
            let signal = signal.unwrap_or(0);
            (
                Some(i64::from(128 + signal)),
                Some(Fault::Exit(128 + signal)),
                Some(format!("killed by signal {signal}")),
            )
        }
    }
}

/// Reads from a pipe still open; never resolves for a closed one.
async fn read_from<R: AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

/// What was run, secrets redacted: argv, workdir and the added variables.
fn summary(cmd: &Command, secrets: &Secrets) -> Value {
    let env: Map<String, Value> = cmd
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(secrets.redact(v))))
        .collect();
    json!({
        "argv": cmd.argv.iter().map(|a| secrets.redact(a)).collect::<Vec<_>>(),
        "workdir": cmd.workdir,
        "env": env,
    })
}

/// The command's process group, killed with SIGKILL at the deadline or
/// when the step is abandoned (the future dropped: the run was cancelled,
/// or shutdown). Killed by its id whether or not the leader is still
/// there: children started with `&` live on in the group after the leader
/// exits, and a cancel during the output grace must stop them too. (The
/// kernel keeps a group's id from being reused while any member lives; the
/// group is only signalled while this step is still in progress.)
struct Group {
    pgid: Option<libc::pid_t>,
    /// Killed when dropped: until the step has ended normally.
    armed: bool,
}

impl Group {
    fn new(pid: Option<u32>) -> Group {
        Group {
            pgid: pid.and_then(|p| libc::pid_t::try_from(p).ok()),
            armed: true,
        }
    }

    /// The step ended by itself: what it left running in the background
    /// (a daemon it started) is its business, as in a shell.
    fn disarm(&mut self) {
        self.armed = false;
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg has no memory effects; a group that is already
            // gone makes it fail with ESRCH, which is fine.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
    }
}
