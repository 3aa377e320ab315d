//! The `shell` action: a command (argv, no shell) or a script run by
//! `/bin/sh -c`, in its own process group so that its timeout kills every
//! process it started, not only the first. stdout and stderr are read
//! concurrently (a chatty command never blocks on a full pipe) and kept up
//! to [`super::CAPTURE_LIMIT`].

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

use super::{Captured, Fault, Outcome};
use crate::rules::Secrets;
use crate::rules::model::ShellAction;

/// A `shell` step with its templates rendered.
#[derive(Debug, Clone)]
pub struct Command {
    /// argv, or `["/bin/sh", "-c", script]`.
    pub argv: Vec<String>,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// Written to the command's stdin, which is then closed.
    pub stdin: Option<String>,
}

/// After the command exits, how long its output may take to reach EOF: a
/// background child that inherited the pipes would otherwise hold the step
/// open until the deadline. What it writes later is not captured.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Read buffer per pipe.
const CHUNK: usize = 16 * 1024;

pub async fn execute(action: &ShellAction, cmd: Command, secrets: &Secrets) -> Outcome {
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
                group.leader_reaped();
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
/// when the step is abandoned (the future dropped at shutdown).
struct Group {
    /// `None` once the leader has been reaped: its pid (= the group id)
    /// may then be reused, so the group is not signalled any more.
    pgid: Option<libc::pid_t>,
}

impl Group {
    fn new(pid: Option<u32>) -> Group {
        Group {
            pgid: pid.and_then(|p| libc::pid_t::try_from(p).ok()),
        }
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

    fn leader_reaped(&mut self) {
        self.pgid = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}
