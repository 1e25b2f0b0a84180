//! The `sekiban` command; everything lives in the `sekiban_cli` library.

fn main() -> std::process::ExitCode {
    sekiban_cli::main_with_args(std::env::args_os())
}
