//! The `hookflow` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    hookflow::cli::main()
}
