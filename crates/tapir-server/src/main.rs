//! `tapir`: the telephony call-control server (`tapir serve`) and its
//! command line client (`tapir lines`, `tapir call …`, `tapir admin …`);
//! everything lives in the `cli` module.

mod cli;

/// jemalloc rather than the system allocator: after an overload burst glibc
/// kept about 450 MiB of freed memory in its per-thread arenas for as long
/// as anyone watched (it gives a thread arena's free pages back only when
/// asked with `malloc_trim`), while jemalloc's background thread returns
/// pages unused for its decay time (10 s by default) on its own.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Purging runs on jemalloc's own thread, not on the loop's allocations.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("tapir: jemalloc's background thread did not start: {e}");
    }
    cli::main()
}
