//! `vc-agent check-config` and `vc-agent export-config`.
use std::{fmt::Write as _, path::Path};

use serde::Serialize;

use super::{LoadError, Mode, TunnelId, export_toml, load, load_without_secrets, permissions};

/// What `check-config` found: its text, or its JSON (`--json`).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub ok: bool,
    /// With a valid config: its region, mode and the tunnels this CPE terminates.
    pub region: Option<String>,
    pub mode: Option<Mode>,
    pub tunnels: Vec<TunnelId>,
    /// One line per fault (a parse error is one, multi-line, message).
    pub faults: Vec<String>,
    /// Files that hold a secret and are readable by group or others.
    pub warnings: Vec<String>,
}

/// Validates `path`, secrets included (they must resolve).
#[must_use]
pub fn check_report(path: &Path) -> CheckReport {
    let shown = path.display().to_string();
    match load(path) {
        Ok(c) => CheckReport {
            path: shown,
            ok: true,
            region: Some(c.regions()),
            mode: Some(c.mode),
            tunnels: c.terminated().map(|(id, _)| id).collect(),
            faults: Vec::new(),
            warnings: permissions::exposed(path, &c)
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        Err(e) => CheckReport {
            path: shown,
            ok: false,
            region: None,
            mode: None,
            tunnels: Vec::new(),
            faults: fault_lines(e),
            warnings: Vec::new(),
        },
    }
}

/// Validates `path`: `Ok(summary)` when it is good (with a warning line per file that holds a
/// secret and is readable by others), else one line per fault (exit status 1).
pub fn check(path: &Path) -> Result<String, Vec<String>> {
    let report = check_report(path);
    if !report.ok {
        return Err(report.faults);
    }
    let tunnels: Vec<String> = report.tunnels.iter().map(ToString::to_string).collect();
    let mut text = format!(
        "{}: OK (region {}, mode {}, this CPE terminates {})",
        report.path,
        report.region.unwrap_or_default(),
        report.mode.unwrap_or_default(),
        tunnels.join(" and ")
    );
    for exposed in &report.warnings {
        let _ = write!(text, "\n{}: warning: {exposed}", report.path);
    }
    Ok(text)
}

/// One line per fault (a parse error is one, multi-line, message): what `check-config`
/// prints, and what a refused reload answers.
#[must_use]
pub fn fault_lines(e: LoadError) -> Vec<String> {
    match e {
        LoadError::Invalid { path, faults } => {
            faults.0.iter().map(|f| format!("{path}: {f}")).collect()
        }
        e => vec![e.to_string()],
    }
}

/// The config of `path` without secrets (it must be valid; the secrets are not read).
pub fn export(path: &Path) -> Result<String, Vec<String>> {
    let config = load_without_secrets(path).map_err(fault_lines)?;
    export_toml(&config).map_err(|e| vec![format!("cannot serialize: {e}")])
}

/// [`export`] as JSON: the same fields, secrets left out by the same `skip_serializing`.
pub fn export_json(path: &Path) -> Result<String, Vec<String>> {
    let config = load_without_secrets(path).map_err(fault_lines)?;
    serde_json::to_string_pretty(&config).map_err(|e| vec![format!("cannot serialize: {e}")])
}
