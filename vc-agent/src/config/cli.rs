//! `vc-agent check-config` and `vc-agent export-config`.
use std::{fmt::Write as _, path::Path};

use super::{LoadError, export_toml, load, permissions};

/// Validates `path`: `Ok(summary)` when it is good (with a warning line per file that holds a
/// secret and is readable by others), else one line per fault (exit status 1).
pub fn check(path: &Path) -> Result<String, Vec<String>> {
    match load(path) {
        Ok(c) => {
            let tunnels: Vec<String> = c.terminated().map(|(id, _)| id.to_string()).collect();
            let mut text = format!(
                "{}: OK (region {}, mode {}, this CPE terminates {})",
                path.display(),
                c.region,
                if c.ipsec() { "ipsec" } else { "external-ipsec" },
                tunnels.join(" and ")
            );
            for exposed in permissions::exposed(path, &c) {
                let _ = write!(text, "\n{}: warning: {exposed}", path.display());
            }
            Ok(text)
        }
        Err(e) => Err(lines(e)),
    }
}

/// One line per fault (a parse error is one, multi-line, message).
fn lines(e: LoadError) -> Vec<String> {
    match e {
        LoadError::Invalid { path, faults } => {
            faults.0.iter().map(|f| format!("{path}: {f}")).collect()
        }
        e => vec![e.to_string()],
    }
}

/// The config of `path` without secrets (it must be valid).
pub fn export(path: &Path) -> Result<String, Vec<String>> {
    let config = load(path).map_err(lines)?;
    export_toml(&config).map_err(|e| vec![format!("cannot serialize: {e}")])
}
