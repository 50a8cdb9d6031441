fn main() {
    std::process::exit(sst1mflow::cli::main());
}
