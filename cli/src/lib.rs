#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// The commands' futures nest every store's: laying them out takes rustc past its default
// query depth of 128.
#![recursion_limit = "256"]

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

pub mod args;
pub mod commands;
pub mod exit;
pub mod open;
pub mod output;
pub mod progress;

pub use args::Cli;
pub use exit::Exit;
pub use open::{OpenedStore, SCHEMES, open_store};

/// Parses `args` (the program name first), runs the command on a multi-threaded runtime, prints
/// an error to stderr when it fails, and returns the exit code ([`Exit`]).
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help and --version, 2 for a usage error.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(Exit::BadInput.code()));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let result = runtime.block_on(commands::execute(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(e) if exit::is_broken_pipe(&e) => Exit::Ok.into(),
        Err(e) => {
            let code = exit::exit_for(&e);
            if e.downcast_ref::<exit::Reported>().is_none() {
                eprintln!("error: {}", exit::error_text(&e));
                if let Some(hint) = exit::hint(&e) {
                    eprintln!("hint: {hint}");
                }
            }
            code.into()
        }
    }
}
