//! The `hookflow` binary: everything lives in the library.

// glibc malloc showed up as ~15% of the ingest profile (arena contention
// and `malloc_consolidate` between tokio workers); see docs/PERFORMANCE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    hookflow::cli::main()
}

/// SQLite allocates through the C library's malloc, not Rust's allocator.
/// glibc gives the top of a thread's arena back to the kernel as soon as
/// 128 KiB of it is free, and SQLite's writer frees and reallocates its
/// page buffers at every commit: the profile of `bench/ingest.sh`'s
/// end-to-end run showed the writer thread spending ~15 % of its time in
/// `madvise`, the TLB shootdowns it sends the other core, and the page
/// faults of touching the memory again. Keeping up to 256 MiB of freed
/// memory per arena took the end-to-end run from ~8,200 to ~11,300
/// actions/s (docs/PERFORMANCE.md). Peak RSS is what the process used at
/// its peak either way; what changes is that it is not handed back between
/// commits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const TRIM_THRESHOLD: libc::c_int = 256 << 20;
    // SAFETY: `mallopt` only sets one of glibc's malloc tunables; it is
    // called once, first thing in `main`, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
