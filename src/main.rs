//! The `sst1mflow` binary: everything lives in the library (`sst1mflow::cli` parses and
//! dispatches); this only turns its result into the process exit code.
fn main() {
    std::process::exit(sst1mflow::cli::main());
}
