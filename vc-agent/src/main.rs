//! `vc-agent`: a thin dispatcher into the library's modules.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Result;
use clap::{Parser, Subcommand};
use vc_agent::{agent, config, diagnose, ipsec, manual, socket};

#[derive(Parser)]
#[command(
    name = "vc-agent",
    version,
    about = "A Linux CPE for Webex Calling Dedicated Instance Virtual Connect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: IPsec, the datapath, BGP, keepalives, until SIGTERM. The datapath and
    /// charon keep running after it (a restarted agent adopts them).
    Run {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Ask the running agent for the state of every tunnel: SAs, keepalives, BGP, routes,
    /// counters.
    Status {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Walk Cisco's troubleshooting tree for each tunnel (IKE SA, child SA, keepalives, ping,
    /// BGP, routes) on the running agent: the first failing step and its likely causes.
    /// Pings the DCs' tunnel IPs (run as root). Exit status 1 if a step fails.
    Diagnose {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
        /// Print JSON instead of the checklist.
        #[arg(long)]
        json: bool,
    },
    /// The datapath by hand: tunnel interfaces, programs and maps, with the config's prefixes
    /// as static routes (no BGP, no IPsec).
    Datapath {
        #[command(subcommand)]
        action: DatapathAction,
        #[arg(short, long, default_value = "/etc/vc/vc.toml", global = true)]
        config: PathBuf,
    },
    /// Validate the config: one line per fault, exit status 1 if there is any.
    CheckConfig {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Print the config without the IKE PSK and the BGP password.
    ExportConfig {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// IPsec by hand (bring-up, troubleshooting).
    Ipsec {
        #[command(subcommand)]
        action: IpsecAction,
        #[arg(short, long, default_value = "/etc/vc/vc.toml", global = true)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DatapathAction {
    /// Create the tunnel interfaces, attach the programs, pin them, and route each DC's /25
    /// over its tunnel and the /24 over both. It all keeps running after this command.
    Up,
    /// Remove everything `up` made and restore the host settings it changed.
    Down,
    /// The tunnels, routes and counters of the running datapath.
    Show,
}

#[derive(Subcommand)]
enum IpsecAction {
    /// Block clear GRE, start vc's charon (or attach), load and initiate the tunnels, wait for
    /// their child SAs and print their state. charon keeps running.
    Up {
        /// Seconds to wait for the child SAs.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Print the state of the tunnels' SAs (and the last failure of those that are down).
    Status,
    /// Delete the tunnels' SAs and stop vc's charon; GRE stays blocked.
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // A report piped into `head` should end quietly, as other Unix tools do, not panic on
        // EPIPE. Not for the daemon: it writes to sockets whose peers may go away.
        // SAFETY: restoring the default disposition of a signal has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vc-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config: path } => {
            init_logging();
            let config = config::load(&path)?;
            for exposed in config::permissions::exposed(&path, &config) {
                tracing::warn!("{exposed}");
            }
            runtime()?.block_on(agent::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config, json } => {
            let config = config::load(&config)?;
            let status = runtime()?.block_on(socket::query(&config))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose { config, json } => {
            let config = config::load(&config)?;
            let diagnosis = runtime()?.block_on(diagnose::run(&config))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&diagnosis)?);
            } else {
                print!("{diagnosis}");
            }
            Ok(if diagnosis.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Datapath { action, config } => {
            init_logging();
            let config = config::load(&config)?;
            runtime()?.block_on(async {
                match action {
                    DatapathAction::Up => manual::up(&config).await,
                    DatapathAction::Down => manual::down(&config).await,
                    DatapathAction::Show => manual::show(&config).await,
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => Ok(report(config::cli::check(&config))),
        Command::ExportConfig { config } => Ok(report(config::cli::export(&config))),
        Command::Ipsec { action, config } => {
            init_logging();
            let config = config::load(&config)?;
            runtime()?.block_on(async {
                match action {
                    IpsecAction::Up { wait } => {
                        let up = ipsec::cli::up(config, Duration::from_secs(wait)).await?;
                        Ok(if up {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::FAILURE
                        })
                    }
                    IpsecAction::Status => ipsec::cli::status(&config)
                        .await
                        .map(|()| ExitCode::SUCCESS),
                    IpsecAction::Down => {
                        ipsec::cli::down(&config).await.map(|()| ExitCode::SUCCESS)
                    }
                }
            })
        }
    }
}

/// Prints a result (stdout) or its fault lines (stderr, exit status 1).
fn report(result: Result<String, Vec<String>>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(lines) => {
            for line in lines {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
