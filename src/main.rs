//! `pagi-server`: serves the built-in demo app (see `pagi_server::demo`).

/// The binary's allocator (feature `mimalloc`, on by default): per-request allocations of a
/// server (stream state, header maps, scope buffers) come and go in bursts of one size class,
/// which mimalloc's per-thread free lists serve without the system allocator's slow paths.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pagi_server::cli::main(pagi_server::demo::app)
}
