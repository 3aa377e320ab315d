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
/// faults of touching the memory again. Keeping up to 16 MiB of freed
/// memory per arena took the end-to-end run on the 7.6 KB push from
/// ~5,850 to ~7,800 actions/s, with peak RSS at 1,000 rules unchanged
/// (59–61 MiB); 256 MiB was no faster and held ~3 MiB more
/// (docs/PERFORMANCE.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const TRIM_THRESHOLD: libc::c_int = 16 << 20;
    // SAFETY: `mallopt` only sets one of glibc's malloc tunables; it is
    // called once, first thing in `main`, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
