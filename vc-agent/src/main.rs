//! `vc-agent`: a thin dispatcher into the library's modules.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Result;
use clap::{Parser, Subcommand};
use vc_agent::{config, ipsec};

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
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vc-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => Ok(report(config::cli::check(&config))),
        Command::ExportConfig { config } => Ok(report(config::cli::export(&config))),
        Command::Ipsec { action, config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let config = config::load(&config)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
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
