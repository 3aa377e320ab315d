//! Where payload text could become code in a `shell` action: templates in
//! the argv of a shell or interpreter, after `-c`/`-e`, as the program
//! itself, or on the stdin of an interpreter (load errors), and templates
//! that could start with `-` and be read as an option (a warning).
//!
//! `command:` is argv: no shell sits between hookflow and the program, so a
//! payload value arrives as one argument and runs nothing — unless the
//! program is itself a shell or interpreter that runs its arguments (or its
//! input) as code. That is decided here, from the literal text of the rule,
//! before any payload is seen.

use super::ShellProgram;
use crate::rules::decode::{Decoder, Severity};
use crate::rules::node::{Kind, Node};
use crate::template::Template;

/// Programs that run their arguments or their input as code. Matched by
/// the file name of any literal argv element (so also behind `sudo`, `env`,
/// `nice`, `docker exec`, `kubectl exec`, …), ignoring a version suffix
/// (`python3.11`, `php8.2`).
const INTERPRETERS: &[&str] = &[
    // shells
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "ash", "csh", "tcsh", "busybox", "pwsh",
    // interpreters
    "python", "perl", "ruby", "node", "nodejs", "php", "lua", "awk", "gawk", "mawk", "nawk",
    // its `s///e` flag and `e` command run shell commands
    "sed",
];

/// Joins its arguments into a command line for a remote shell.
const REMOTE_SHELLS: &[&str] = &["ssh"];

/// Programs that run a program named by their arguments: after them, an
/// argument that could be anything could be the program to run.
const RUNNERS: &[&str] = &[
    "env",
    "sudo",
    "doas",
    "su",
    "runuser",
    "xargs",
    "nice",
    "nohup",
    "timeout",
    "setsid",
    "stdbuf",
    "chroot",
    "watch",
    "time",
    "flock",
    "ionice",
    "taskset",
    "unshare",
    "nsenter",
    "systemd-run",
    "exec",
    "command",
];

/// Container tools whose `exec` and `run` run a program named by their
/// arguments.
const CONTAINER_TOOLS: &[&str] = &["docker", "podman", "kubectl", "nerdctl"];

/// Options after which an argument is code for the program (`sh -c`,
/// `perl -e`, `psql --command`, `node --eval`).
const CODE_OPTIONS: &[&str] = &["-c", "-e", "--command", "--eval"];

/// Where a finding points: an argv element, or the action's `stdin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    Arg(usize),
    Stdin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub at: At,
    pub severity: Severity,
    pub message: String,
}

fn templated(text: &str) -> bool {
    text.contains("{{")
}

/// The interpreter `word` names, if any: its file name without a version
/// suffix, e.g. `/usr/bin/python3.11` → `python`.
fn interpreter(word: &str) -> Option<&'static str> {
    let name = word.rsplit('/').next().unwrap_or(word);
    let bare = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS
        .iter()
        .chain(REMOTE_SHELLS)
        .find(|known| **known == bare || **known == name)
        .copied()
}

/// The first interpreter named by the first word of an element, looking
/// only at literal text (a word holding a template names nothing yet).
fn first_interpreter<'a>(elements: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    elements.into_iter().find_map(|element| {
        let word = element.split_whitespace().next()?;
        if templated(word) {
            None
        } else {
            interpreter(word)
        }
    })
}

/// The runner at the head of `argv` (`sudo`, `env`, `docker exec`, …).
fn runner_of(argv: &[&str]) -> Option<String> {
    let program = argv.first()?;
    let name = program.rsplit('/').next().unwrap_or(program);
    if RUNNERS.contains(&name) {
        return Some(name.to_string());
    }
    let sub = argv[1..]
        .iter()
        .find(|a| matches!(**a, "exec" | "run"))
        .filter(|_| CONTAINER_TOOLS.contains(&name))?;
    Some(format!("{name} {sub}"))
}

fn runs_code(name: &str) -> String {
    if REMOTE_SHELLS.contains(&name) {
        format!("`{name}` (it joins its arguments into a remote shell command)")
    } else {
        format!("`{name}` (a shell or interpreter)")
    }
}

const USE_ENV: &str = "pass the value with `env:` and read it there as an environment variable (\"$NAME\" in a shell)";

/// The problems with a `command:` argv (each element's template source)
/// and whether `stdin` is templated.
pub(super) fn argv_findings(argv: &[&str], stdin_templated: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let runner = first_interpreter(argv.iter().copied());
    let wrapper = runner_of(argv);
    let mut code_option: Option<&str> = None;
    let mut end_of_options = false;
    for (i, element) in argv.iter().enumerate() {
        if !templated(element) {
            if let Some(option) = CODE_OPTIONS.iter().find(|o| **o == *element) {
                code_option.get_or_insert(option);
            }
            end_of_options |= *element == "--";
            continue;
        }
        let error = |message: String| Finding {
            at: At::Arg(i),
            severity: Severity::Error,
            message,
        };
        let inline_code_option = CODE_OPTIONS
            .iter()
            .filter(|o| o.starts_with("--"))
            .find(|o| element.starts_with(&format!("{o}=")));
        if i == 0 {
            out.push(error(
                "the program to run is a template, so the payload could choose what runs: name the program literally, and pass payload values as its arguments or with `env:`".to_string(),
            ));
        } else if let Some(name) = runner {
            out.push(error(format!(
                "a template in the argv of {} can turn payload text into code: {USE_ENV}",
                runs_code(name)
            )));
        } else if let Some(option) = code_option.or(inline_code_option.copied()) {
            out.push(error(format!(
                "a template after `{option}` is code for the program to run: {USE_ENV}"
            )));
        } else if let Some(wrapper) = wrapper.as_deref().filter(|_| element.starts_with("{{")) {
            out.push(error(format!(
                "this argument begins with a template, so the payload could name the program that `{wrapper}` runs, or pass it options: begin the argument with literal text (e.g. `--ref={{{{payload.ref}}}}`), or pass the value with `env:`"
            )));
        } else if element.starts_with("{{") && !end_of_options {
            out.push(Finding {
                at: At::Arg(i),
                severity: Severity::Warning,
                message: "this argument begins with a template, so a payload value starting with `-` would be read as an option (option injection): put a literal \"--\" before it if the program accepts one, or begin the argument with literal text".to_string(),
            });
        }
    }
    if stdin_templated && let Some(name) = runner {
        out.push(stdin_error(name));
    }
    out
}

/// The problems with a `script:` (never templated, checked elsewhere) fed
/// a templated `stdin`: an interpreter in the script may read it as code.
pub(super) fn script_findings(script: &str, stdin_templated: bool) -> Vec<Finding> {
    if !stdin_templated {
        return Vec::new();
    }
    let words = script.split(|c: char| c.is_whitespace() || ";|&()<>`$\"'".contains(c));
    first_interpreter(words.filter(|w| !w.is_empty()))
        .map(stdin_error)
        .into_iter()
        .collect()
}

fn stdin_error(name: &str) -> Finding {
    Finding {
        at: At::Stdin,
        severity: Severity::Error,
        message: format!(
            "a templated `stdin` feeds payload text to {}, which can read its input as code: {USE_ENV}",
            runs_code(name)
        ),
    }
}

/// Reports where payload text could become code in a decoded `shell`
/// action; false when that is an error.
pub(super) fn check(
    dec: &mut Decoder<'_>,
    program: &ShellProgram,
    command: Option<&Node>,
    stdin: Option<&Template>,
    stdin_node: Option<&Node>,
) -> bool {
    let stdin_templated = stdin.is_some_and(|t| templated(t.source()));
    let findings = match program {
        ShellProgram::Argv(argv) => {
            let sources: Vec<&str> = argv.iter().map(Template::source).collect();
            argv_findings(&sources, stdin_templated)
        }
        ShellProgram::Script(script) => script_findings(script, stdin_templated),
    };
    let items = match command.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items.as_slice(),
        _ => &[],
    };
    let mut ok = true;
    for finding in findings {
        let at = match finding.at {
            At::Arg(i) => items.get(i).or(command),
            At::Stdin => stdin_node,
        };
        let Some(at) = at else { continue };
        match finding.severity {
            Severity::Error => {
                ok = false;
                dec.error(at, finding.message);
            }
            Severity::Warning => dec.warning(at, finding.message),
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(argv: &[&str], stdin: bool) -> Vec<At> {
        argv_findings(argv, stdin)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.at)
            .collect()
    }

    fn warnings(argv: &[&str]) -> Vec<At> {
        argv_findings(argv, false)
            .into_iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(|f| f.at)
            .collect()
    }

    #[test]
    fn a_template_after_dash_c_is_an_error_whatever_the_program() {
        assert_eq!(
            errors(&["/bin/sh", "-c", "echo {{payload.x}}"], false),
            [At::Arg(2)]
        );
        assert_eq!(
            errors(&["git", "-c", "core.pager={{payload.p}}", "log"], false),
            [At::Arg(2)]
        );
        assert_eq!(
            errors(&["psql", "--command={{payload.sql}}"], false),
            [At::Arg(1)]
        );
        assert_eq!(
            errors(&["mytool", "--eval", "x", "{{payload.y}}"], false),
            [At::Arg(3)]
        );
    }

    #[test]
    fn any_template_in_an_interpreters_argv_is_an_error_also_behind_wrappers() {
        for argv in [
            &["bash", "deploy.sh", "{{payload.ref}}"][..],
            &["/usr/bin/python3.11", "x.py", "ref={{payload.ref}}"],
            &[
                "sudo",
                "-u",
                "deploy",
                "/bin/zsh",
                "run",
                "x{{payload.ref}}",
            ],
            &["env", "FOO=1", "node", "app.js", "a{{payload.ref}}"],
            &["nice", "-n", "5", "perl5.36", "x.pl", "a{{payload.ref}}"],
            &[
                "docker",
                "exec",
                "ctr",
                "php8.2",
                "x.php",
                "a{{payload.ref}}",
            ],
            &[
                "kubectl",
                "exec",
                "pod",
                "--",
                "ruby",
                "x.rb",
                "a{{payload.ref}}",
            ],
            &["ssh", "deploy@host", "a{{payload.ref}}"],
            &["env", "-S", "sh -x {{payload.ref}}"],
        ] {
            assert_eq!(errors(argv, false), [At::Arg(argv.len() - 1)], "{argv:?}");
        }
    }

    #[test]
    fn a_templated_stdin_into_an_interpreter_is_an_error() {
        assert_eq!(errors(&["/bin/sh"], true), [At::Stdin]);
        assert_eq!(errors(&["sudo", "python3", "-"], true), [At::Stdin]);
        assert!(errors(&["jq", "."], true).is_empty());
        assert_eq!(script_findings("cat | python3 -", true).len(), 1);
        assert!(script_findings("jq -r .ref > /tmp/ref", true).is_empty());
        assert!(script_findings("bash -s", false).is_empty());
    }

    #[test]
    fn a_templated_program_is_an_error_also_behind_a_runner() {
        assert_eq!(errors(&["{{payload.cmd}}", "x"], false), [At::Arg(0)]);
        assert_eq!(
            errors(&["sudo", "--", "{{payload.cmd}}"], false),
            [At::Arg(2)]
        );
        assert_eq!(
            errors(&["/usr/bin/env", "{{payload.cmd}}"], false),
            [At::Arg(1)]
        );
        assert_eq!(
            errors(&["docker", "exec", "ctr", "{{payload.cmd}}"], false),
            [At::Arg(3)]
        );
        assert!(
            argv_findings(
                &["sudo", "/opt/deploy.sh", "--sha={{payload.after}}"],
                false
            )
            .is_empty()
        );
        assert!(
            argv_findings(&["docker", "ps", "{{payload.x}}"], false)[0].severity
                == Severity::Warning
        );
    }

    #[test]
    fn plain_argv_templates_are_fine_and_leading_ones_warn_unless_after_dashdash() {
        assert!(argv_findings(&["echo", "release {{payload.ref}}"], false).is_empty());
        assert!(argv_findings(&["git", "--ref={{payload.ref}}"], false).is_empty());
        assert_eq!(warnings(&["echo", "{{payload.ref}}"]), [At::Arg(1)]);
        assert!(warnings(&["deploy", "--", "{{payload.ref}}"]).is_empty());
        assert!(errors(&["echo", "{{payload.ref}}"], false).is_empty());
    }

    #[test]
    fn interpreter_names_ignore_directories_and_versions_only() {
        assert_eq!(interpreter("/usr/bin/python3.11"), Some("python"));
        assert_eq!(interpreter("bash"), Some("bash"));
        assert_eq!(interpreter("shellcheck"), None);
        assert_eq!(interpreter("/opt/sh-tools/deploy"), None);
        assert_eq!(interpreter("crash"), None);
    }
}
