//! The `hookflow` binary: everything lives in the library.

// glibc malloc showed up as ~15% of the ingest profile (arena contention
// and `malloc_consolidate` between tokio workers); see docs/PERFORMANCE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookflow::cli::main()
}
