//! One module per subcommand; [`run`] dispatches.

mod export;
mod import;
mod keys;
mod search;
mod snapshot;
mod stats;

use crate::cli::{Cli, Command};
use crate::client::Connection;
use crate::error::CliError;
use crate::http::Gateway;
use crate::output::Output;

/// Runs the command the command line names.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let output = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let connection = Connection {
        url: cli.url.clone(),
        key: cli.key.clone(),
        tenant: cli.tenant.clone(),
    };
    let gateway = Gateway {
        url: cli.gateway_url.clone(),
        key: cli.gateway_key.clone().or_else(|| cli.key.clone()),
    };
    match cli.command {
        Command::Import(args) => import::run(&connection, output, args).await,
        Command::Export(args) => export::run(&connection, output, args).await,
        Command::Snapshot { action } => snapshot::run(&connection, output, action).await,
        Command::Stats(args) => stats::run(&connection, output, args).await,
        Command::Search(args) => search::run(&connection, &gateway, output, args).await,
        Command::Keys { action } => keys::run(&gateway, output, action),
    }
}
