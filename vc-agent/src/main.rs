//! `vc-agent`: a thin dispatcher into the library's modules.
//!
//! Exit statuses: 0 success; 1 a check failed (a config fault, a diagnose step, a tunnel
//! that did not come up, a reload refused, a stop that did not finish); 2 the running agent
//! could not be asked (`status`, `diagnose`, `stop`, `reload`) or, for them, the config could
//! not be read.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Result;
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use vc_agent::{
    agent, config,
    diagnose::{self, Diagnosis},
    ipsec, manual, purge, service, socket,
    status::AgentStatus,
};

/// Exit status 2: no answer from the agent (or no config to find it with).
const NO_AGENT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "vc-agent",
    version = env!("VC_LONG_VERSION"),
    about = "A Linux CPE for Webex Calling Dedicated Instance Virtual Connect",
    after_help = "Exit status: 0 success; 1 a check failed (config fault, diagnose step, \
                  tunnel not up, reload refused); 2 status, diagnose, stop or reload could not \
                  ask the agent.\n\
                  Logging: [agent] log_level in the config (default info); RUST_LOG \
                  (e.g. RUST_LOG=debug or info,vc_agent::bgp=debug) overrides it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `status` and `diagnose` ask the running agent.
#[derive(clap::Args)]
struct AskArgs {
    #[arg(short, long, default_value = "/etc/vc/vc.toml")]
    config: PathBuf,
    /// Only this tunnel (for diagnose, only its steps decide the exit status).
    #[arg(short, long)]
    tunnel: Option<Tunnel>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: IPsec, the datapath, BGP, keepalives, until SIGTERM. SIGTERM is a
    /// restart (BGP graceful restart): sessions close without a NOTIFICATION, and the
    /// datapath, vc's routes and charon keep running for the next run to adopt. SIGHUP
    /// reloads the config. Under systemd (Type=notify) it reports READY=1 once everything is
    /// up, and logs to the journal.
    Run {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Stop the running agent for good: Cease to each DC, vc's routes withdrawn, then it
    /// exits (the datapath and charon stay; `purge` removes them). Exit status 1 if it did not
    /// finish in time, 2 if no agent answers.
    Stop {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Make the running agent read its config again and apply the change: a tunnel's BGP
    /// password or ASNs reset that session only, its IKE/ESP settings or PSK reload its IKE
    /// connection; untouched tunnels carry on. An invalid config, or a change only a restart
    /// applies (interfaces, addresses, ...), is refused and the running one kept: exit status
    /// 1, with the reason. Exit status 2 if no agent answers.
    Reload {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Ask the running agent for the state of every tunnel: SAs, keepalives, BGP, routes,
    /// counters. Exit status 2 if no agent answers. Reads no secret.
    Status(AskArgs),
    /// Walk Cisco's troubleshooting tree for each tunnel (IKE SA, child SA, keepalives, ping,
    /// BGP, routes) on the running agent: the first failing step and its likely causes.
    /// Pings the DCs' tunnel IPs (run as root). Exit status 1 if a step fails, 2 if no agent
    /// answers. Reads no secret.
    Diagnose(AskArgs),
    /// The datapath by hand: tunnel interfaces, programs and maps, with the config's prefixes
    /// as static routes (no BGP, no IPsec).
    Datapath {
        #[command(subcommand)]
        action: DatapathAction,
        #[arg(short, long, default_value = "/etc/vc/vc.toml", global = true)]
        config: PathBuf,
    },
    /// Validate the config, secrets included: one line per fault, exit status 1 if there is
    /// any.
    CheckConfig {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
        /// Print JSON (the faults as a list) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the config without the IKE PSK and the BGP password (it reads neither).
    ExportConfig {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// IPsec by hand (bring-up, troubleshooting).
    Ipsec {
        #[command(subcommand)]
        action: IpsecAction,
        #[arg(short, long, default_value = "/etc/vc/vc.toml", global = true)]
        config: PathBuf,
    },
    /// Tear everything down (stop the agent first): vc's charon, the XFRM block policies,
    /// vc's routes, the datapath (programs, pins, tunnel interfaces; host settings restored)
    /// and the state directory. What uninstalling runs. Exit status 1 if a step failed.
    Purge {
        #[arg(short, long, default_value = "/etc/vc/vc.toml")]
        config: PathBuf,
    },
    /// Print a shell completion script (what the package installs).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page, roff (what the package installs).
    #[command(hide = true)]
    Man,
}

#[derive(Clone, Copy, Subcommand)]
enum DatapathAction {
    /// Create the tunnel interfaces, attach the programs, pin them, and route each DC's /25
    /// over its tunnel and the /24 over both. It all keeps running after this command.
    Up,
    /// Remove everything `up` made and restore the host settings it changed.
    Down,
    /// The tunnels, routes and counters of the running datapath.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Subcommand)]
enum IpsecAction {
    /// Block clear GRE, start vc's charon (or attach), load and initiate the tunnels, wait for
    /// their child SAs and print their state. charon keeps running.
    Up {
        /// Seconds to wait for the child SAs.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Print the state of the tunnels' SAs (and the last failure of those that are down).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete the tunnels' SAs and stop vc's charon; GRE stays blocked.
    Down,
}

/// A tunnel on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum Tunnel {
    /// Tunnel A, to DC1.
    A,
    /// Tunnel B, to DC2.
    B,
    /// The second region's tunnel A (`[[extra_region]]`).
    #[value(name = "r2-a")]
    R2A,
    /// The second region's tunnel B.
    #[value(name = "r2-b")]
    R2B,
}

impl From<Tunnel> for config::TunnelId {
    fn from(t: Tunnel) -> Self {
        let (region, side) = match t {
            Tunnel::A => (0, config::Side::A),
            Tunnel::B => (0, config::Side::B),
            Tunnel::R2A => (1, config::Side::A),
            Tunnel::R2B => (1, config::Side::B),
        };
        config::TunnelId::new(region, side)
    }
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Loads the config, resolving its secrets, and starts logging at its level.
fn load_and_log(path: &Path) -> Result<config::Config> {
    let config = config::load(path)?;
    service::init_logging(&config.agent.log_level);
    Ok(config)
}

/// Prints `value` as JSON, or as its text.
fn print(value: &(impl Serialize + std::fmt::Display), json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{value}");
    }
    Ok(())
}

/// Asks the running agent, with the config read without its secrets; when it cannot be
/// asked, says why and gives the exit status for that.
fn ask_agent<T, F>(path: &Path, ask: impl FnOnce(config::Config) -> F) -> Result<T, ExitCode>
where
    F: Future<Output = Result<T>>,
{
    config::load_without_secrets(path)
        .map_err(anyhow::Error::from)
        .and_then(|c| runtime()?.block_on(ask(c)))
        .map_err(|e| {
            eprintln!("vc-agent: {e:#}");
            ExitCode::from(NO_AGENT)
        })
}

/// `--tunnel`: whether a tunnel's part of the answer is shown.
fn shown(tunnel: Option<Tunnel>, id: config::TunnelId) -> bool {
    tunnel.is_none_or(|t| config::TunnelId::from(t) == id)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config: path } => {
            let config = load_and_log(&path)?;
            for exposed in config::permissions::exposed(&path, &config) {
                tracing::warn!("{exposed}");
            }
            runtime()?.block_on(agent::run(config, path))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop { config } => control_command(&config, Control::Stop),
        Command::Reload { config } => control_command(&config, Control::Reload),
        Command::Status(args) => answer_command(args, |c| async move { socket::query(&c).await }),
        Command::Diagnose(args) => answer_command(args, |c| async move { diagnose::run(&c).await }),
        Command::Datapath { action, config } => datapath_command(action, &config),
        Command::CheckConfig { config, json } => {
            if json {
                let report = config::cli::check_report(&config);
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(if report.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            } else {
                Ok(report(config::cli::check(&config)))
            }
        }
        Command::ExportConfig { config, json } => Ok(report(if json {
            config::cli::export_json(&config)
        } else {
            config::cli::export(&config)
        })),
        Command::Ipsec { action, config } => ipsec_command(action, &config),
        Command::Purge { config } => {
            let config = config::load_without_secrets(&config)?;
            service::init_logging(&config.agent.log_level);
            let done = runtime()?.block_on(purge::purge(&config))?;
            print!("{done}");
            Ok(if done.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vc-agent",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            // Section 8: a system administration command, installed as vc-agent.8.
            clap_mangen::Man::new(Cli::command())
                .section("8")
                .manual("System Manager's Manual")
                .render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `status` and `diagnose` print: the agent's answer, per tunnel.
trait Answer: Serialize + std::fmt::Display {
    fn keep(&mut self, tunnel: Option<Tunnel>);
    fn exit_code(&self) -> ExitCode;
}

#[derive(Clone, Copy)]
enum Control {
    Stop,
    Reload,
}

/// `stop` and `reload`: 0 done, 1 the agent refused (or did not finish), 2 no agent.
fn control_command(path: &Path, what: Control) -> Result<ExitCode> {
    let config = match config::load_without_secrets(path) {
        Ok(c) => c,
        // A file the agent will refuse still names where the agent answers: the agent names
        // the faults (as check-config does) and keeps its running config.
        Err(config::LoadError::Invalid { .. }) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
            config::parse(&text)?
        }
        Err(e) => {
            eprintln!("vc-agent: {e}");
            if matches!(what, Control::Reload) {
                eprintln!("vc-agent: the running agent (if any) keeps its config");
                return Ok(ExitCode::FAILURE);
            }
            return Ok(ExitCode::from(NO_AGENT));
        }
    };
    let socket_path = socket::path(&config);
    if !socket_path.exists() {
        eprintln!(
            "vc-agent: no agent answers on {} (is `vc-agent run` running, with this config?)",
            socket_path.display()
        );
        return Ok(ExitCode::from(NO_AGENT));
    }
    let runtime = runtime()?;
    let done = match what {
        Control::Stop => runtime
            .block_on(socket::stop(&config, agent::STOP_WITHIN * 2))
            .map(|()| "stopped: Cease sent, vc's routes withdrawn\n".to_string()),
        Control::Reload => runtime.block_on(socket::reload(&config)),
    };
    match done {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("vc-agent: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

impl Answer for AgentStatus {
    fn keep(&mut self, tunnel: Option<Tunnel>) {
        self.tunnels.retain(|s| shown(tunnel, s.ends.id));
    }

    fn exit_code(&self) -> ExitCode {
        ExitCode::SUCCESS
    }
}

impl Answer for Diagnosis {
    fn keep(&mut self, tunnel: Option<Tunnel>) {
        self.tunnels.retain(|d| shown(tunnel, d.ends.id));
    }

    /// A failed step is exit status 1.
    fn exit_code(&self) -> ExitCode {
        if self.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Asks, keeps the `--tunnel` asked for, prints, and exits by the answer (2: no answer).
fn answer_command<T: Answer, F>(
    AskArgs {
        config: path,
        tunnel,
        json,
    }: AskArgs,
    ask: impl FnOnce(config::Config) -> F,
) -> Result<ExitCode>
where
    F: Future<Output = Result<T>>,
{
    let mut answer = match ask_agent(&path, ask) {
        Ok(answer) => answer,
        Err(code) => return Ok(code),
    };
    answer.keep(tunnel);
    print(&answer, json)?;
    Ok(answer.exit_code())
}

fn datapath_command(action: DatapathAction, path: &Path) -> Result<ExitCode> {
    let runtime = runtime()?;
    match action {
        DatapathAction::Show { json } => {
            let config = config::load_without_secrets(path)?;
            runtime.block_on(manual::show(&config, json))?;
        }
        DatapathAction::Up => {
            let config = load_and_log(path)?;
            runtime.block_on(manual::up(&config))?;
        }
        DatapathAction::Down => {
            let config = config::load_without_secrets(path)?;
            service::init_logging(&config.agent.log_level);
            runtime.block_on(manual::down(&config))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ipsec_command(action: IpsecAction, path: &Path) -> Result<ExitCode> {
    let runtime = runtime()?;
    match action {
        IpsecAction::Up { wait } => {
            let config = load_and_log(path)?;
            let up = runtime.block_on(ipsec::cli::up(config, Duration::from_secs(wait)))?;
            Ok(if up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        IpsecAction::Status { json } => {
            let config = config::load_without_secrets(path)?;
            runtime.block_on(ipsec::cli::status(&config, json))?;
            Ok(ExitCode::SUCCESS)
        }
        IpsecAction::Down => {
            let config = config::load_without_secrets(path)?;
            service::init_logging(&config.agent.log_level);
            runtime.block_on(ipsec::cli::down(&config))?;
            Ok(ExitCode::SUCCESS)
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
