//! `vc-agent export-config`: the config as TOML without the PSK and the BGP password (R23).
//!
//! The secret fields are `#[serde(skip_serializing)]` and [`super::Secret`] has no `Serialize`
//! impl, so a secret cannot be exported by mistake: it would not compile.
use super::Config;

/// The config as TOML, secrets left out (also their file/env references: the export is meant
/// to be shared, e.g. with Cisco support). Defaults are written out explicitly.
pub fn export_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(config)?;
    Ok(format!(
        "# Exported by vc-agent {}. ike_psk and bgp_password are left out on purpose:\n\
         # add them back (inline, {{ file = \"...\" }} or {{ env = \"...\" }}) before using this file.\n\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}
