//! The `regbridge` binary: parse arguments, set up logging, load configuration, run.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regbridge::{app::App, config::Config, telemetry::Telemetry};

/// mimalloc rather than glibc's malloc: a webhook makes some 70 short-lived allocations on an HTTP
/// worker, several of them freed on another thread (the broker clients' own), and glibc's arenas
/// spent about a fifth of the CPU of a webhook on them. Built with `no_thp`: with transparent huge
/// pages, its arenas cost 10 MB of RSS at idle for no measurable gain.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Verified container-registry webhooks in, CloudEvents out.
///
/// Receives webhooks from Root (/webhooks/root), Harbor and MSR 4 (/webhooks/harbor), MSR 2.x/3.x
/// (/webhooks/msr) and named endpoints of the config file; verifies each request; normalizes it
/// to CloudEvents 1.0; and answers 2xx only after every routed sink (Kafka, NATS JetStream,
/// RabbitMQ, or the local file by default) has confirmed it.
///
/// All configuration comes from REGBRIDGE_* environment variables and the optional
/// REGBRIDGE_CONFIG file; see the README for the full reference.
#[derive(Parser)]
#[command(name = "regbridge", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the environment and files, print the effective configuration with secrets
    /// masked, and exit non-zero on any error.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Configuration errors go to stderr before any logging is set up, so they are never lost in
    // a JSON log stream.
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("regbridge: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            Telemetry::init_logging();
            let text = serde_json::to_string_pretty(&config.describe()).expect("JSON values serialize");
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Command::Serve => match actix_web::rt::System::new().block_on(serve(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("regbridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Inside the runtime: the OTLP exporters need one to start.
    let telemetry = Telemetry::init();
    let result = async { App::build(config).await?.run_until_stopped().await }.await;
    telemetry.shutdown();
    result
}
