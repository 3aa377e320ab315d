//! Running binaries the way a user or CI does, and asserting on their exit
//! codes: the `hookflow` CLI (`hookflow(args)`), and this test binary itself
//! for a test that needs a process of its own (`in_own_process`).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `hookflow` command line: no `HOOKFLOW_*` variable of the test's own
/// environment leaks in, stdin is empty.
pub struct Cli {
    command: Command,
    shown: String,
}

/// What a finished command gave.
#[derive(Debug)]
pub struct Ran {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    shown: String,
}

/// `hookflow ARGS…`, run in the crate's root unless `cwd` says otherwise.
pub fn hookflow<I, S>(args: I) -> Cli
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookflow"));
    let mut shown = String::from("hookflow");
    for arg in args {
        shown.push(' ');
        shown.push_str(&arg.as_ref().to_string_lossy());
        command.arg(arg);
    }
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKFLOW_") {
            command.env_remove(name);
        }
    }
    Cli { command, shown }
}

impl Cli {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Cli {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Cli {
        self.command.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Cli {
        self.command.env_remove(name);
        self
    }

    /// Runs it to its end.
    pub fn run(mut self) -> Ran {
        let out = self
            .command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.shown));
        Ran::new(out, self.shown)
    }

    /// `run` off the async runtime's threads.
    pub async fn run_async(self) -> Ran {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("the command's thread")
    }
}

impl Ran {
    fn new(out: Output, shown: String) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            shown,
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn code(&self, expected: i32) -> &Ran {
        assert_eq!(
            self.code, expected,
            "`{}` exited {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.shown, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 0.
    pub fn success(&self) -> &Ran {
        self.code(0)
    }

    /// stdout then stderr, for checks that look at everything it said.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The variable naming the one test a re-executed copy of this binary runs.
const OWN_PROCESS: &str = "HOOKFLOW_IT_OWN_PROCESS";

/// For a test that changes process-wide state (descriptor limits, signal
/// handlers, the working directory) or eats a process-wide resource (~2,000
/// sockets): runs the calling test alone in a fresh copy of this test
/// binary and asserts that it passed there.
///
/// Call it first, with `module_path!()` and the test's function name: in
/// the test suite it runs the child and returns true (the test is done);
/// in the child it returns false, and the test goes on with its body.
pub fn in_own_process(module: &str, test: &str) -> bool {
    // `it::hardening` → `hardening::NAME`, the name libtest filters on.
    let name = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    };
    if std::env::var(OWN_PROCESS).is_ok_and(|v| v == name) {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(&exe)
        .args([
            name.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(OWN_PROCESS, &name)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot re-run {}: {e}", exe.display()));
    let ran = Ran::new(out, format!("{} {name} --exact", exe.display()));
    // What the child printed on stderr (its report lines) shows up here.
    eprint!("{}", ran.stderr);
    ran.success();
    // A filter that matched nothing would pass without testing anything.
    assert!(
        ran.stdout.contains("running 1 test") && ran.stdout.contains("1 passed"),
        "the child did not run exactly `{name}`:\n{}",
        ran.stdout
    );
    true
}
