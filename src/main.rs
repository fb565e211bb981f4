//! The `regbridge` binary: parse arguments, set up logging, load configuration, run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use regbridge::outbox::{self, cli, Action, Request};
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
    /// Show what a payload becomes at an endpoint: its CloudEvents, where each is routed and the
    /// headers each sink sends; publishes nothing.
    Normalize {
        /// The payload file (`-`: standard input).
        file: PathBuf,
        /// The endpoint it is posted to (`harbor`, `github`, a configured one).
        #[arg(long, short)]
        endpoint: String,
        /// A request header, `Name: value` (repeatable), e.g. `-H 'X-GitHub-Event: package'`;
        /// `Content-Type` defaults to application/json.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The query string (`token=...`).
        #[arg(long, default_value = "")]
        query: String,
        /// Also check the credentials (the headers and query must carry them).
        #[arg(long)]
        verify: bool,
    },
    /// Look at the outbox and act on its dead letters (safe beside a running service).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Events waiting per sink, their bytes and age, dead letters.
    Status(Dir),
    /// List the dead letters with their last error.
    DeadLetters {
        #[command(flatten)]
        dir: Dir,
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Include each event (CloudEvents JSON).
        #[arg(long)]
        events: bool,
    },
    /// Send dead letters again (all, or those with the given event ids).
    Requeue(Selection),
    /// Delete dead letters for good (those with the given ids, or `--all`).
    Discard {
        #[command(flatten)]
        selection: Selection,
        /// Every dead letter of the selected sinks.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Args)]
struct Dir {
    /// The outbox directory (default: the configured one, REGBRIDGE_OUTBOX_DIR).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct Selection {
    #[command(flatten)]
    dir: Dir,
    /// Only this sink's dead letters.
    #[arg(long)]
    sink: Option<String>,
    /// Event ids to select (repeatable); none: all.
    #[arg(long)]
    id: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Outbox { command }) = cli.command {
        return outbox_command(command);
    }
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
            // A misspelled variable is a configuration error here: what it meant to set is not.
            for unknown in &config.unknown_variables {
                eprintln!("regbridge: configuration error: {unknown}");
            }
            match config.unknown_variables.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(2),
            }
        }
        Command::Outbox { .. } => unreachable!("handled before the configuration is loaded"),
        Command::Normalize { file, endpoint, headers, query, verify } => {
            Telemetry::init_logging();
            let body = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map(|_| b)
            } else {
                std::fs::read(&file)
            };
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("regbridge normalize: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let payload = regbridge::explain::Payload {
                endpoint: &endpoint,
                body: body.into(),
                headers: &headers,
                query: &query,
                verify,
            };
            match regbridge::explain::explain(&config, &payload) {
                Ok(v) => {
                    let text = serde_json::to_string_pretty(&v).expect("JSON values serialize");
                    let _ = writeln!(std::io::stdout(), "{text}");
                    if v["outcome"] == "refused" || v.get("reason").is_some() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("regbridge normalize: {e}");
                    ExitCode::from(2)
                }
            }
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
    // Not fatal for the service (a stale variable in a manifest must not stop a rollout), but said.
    for unknown in &config.unknown_variables {
        tracing::warn!(variable = %unknown.name, nearest = unknown.nearest.as_deref(), "{unknown}: ignored");
    }
    let result = async { App::build(config).await?.run_until_stopped().await }.await;
    telemetry.shutdown();
    result
}

/// `regbridge outbox …`. The directory comes from `--dir`, else from the configuration (which
/// then has to load).
fn outbox_command(command: OutboxCommand) -> ExitCode {
    Telemetry::init_logging();
    let dir_of = |d: Dir| -> Result<(PathBuf, u64), String> {
        let config = Config::from_env();
        let configured = config.as_ref().ok().and_then(|c| c.outbox.as_ref());
        let max = configured.map_or(outbox::DEFAULT_MAX_BYTES, |o| o.max_bytes);
        match (d.dir, configured) {
            (Some(dir), _) => Ok((dir, max)),
            (None, Some(o)) => Ok((o.dir.clone(), max)),
            (None, None) => match config {
                Err(e) => Err(format!("configuration error: {e} (or name the directory with --dir)")),
                Ok(_) => Ok((
                    PathBuf::from(
                        std::env::var("REGBRIDGE_OUTBOX_DIR").unwrap_or_else(|_| outbox::DEFAULT_DIR.into()),
                    ),
                    max,
                )),
            },
        }
    };
    let run = || -> Result<serde_json::Value, String> {
        let apply = |s: Selection, action: Action| -> Result<serde_json::Value, String> {
            let (dir, max) = dir_of(s.dir)?;
            let req = Request { action, ids: s.id, nonce: 0 };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(cli::apply(&dir, s.sink.as_deref(), &req, max))
        };
        match command {
            OutboxCommand::Status(d) => cli::status(&dir_of(d)?.0),
            OutboxCommand::DeadLetters { dir, sink, events } => {
                cli::dead_letters(&dir_of(dir)?.0, sink.as_deref(), events)
            }
            OutboxCommand::Requeue(s) => apply(s, Action::Requeue),
            OutboxCommand::Discard { selection, all } => {
                if selection.id.is_empty() && !all {
                    return Err("name the dead letters to discard with --id, or pass --all".into());
                }
                apply(selection, Action::Discard)
            }
        }
    };
    match run() {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).expect("JSON values serialize");
            let _ = writeln!(std::io::stdout(), "{text}");
            let failed = v["results"].as_array().is_some_and(|r| r.iter().any(|a| !a["error"].is_null()));
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("regbridge outbox: {e}");
            ExitCode::FAILURE
        }
    }
}
