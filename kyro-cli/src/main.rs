//! The `kyro` binary: parse the command line, run the command, turn an
//! error into a message on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use kyro_cli::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kyro: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kyro_cli::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kyro: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
