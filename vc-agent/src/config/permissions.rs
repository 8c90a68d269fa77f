//! Who may read the secrets (R10, R17): the config file when secrets are written in it, and
//! each secret file, should be readable by their owner alone. `check-config` and
//! `vc-agent run` say so when they are not; a warning, not a fault (the file works, the
//! operator decides).
use std::{
    collections::BTreeMap,
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::{Config, TunnelId};

/// Group and others may read.
const READABLE_BY_OTHERS: u32 = 0o044;

/// A file holding secrets that group or others may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposed {
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The fields whose secrets it holds: `tunnel.a.ike_psk`.
    pub fields: Vec<String>,
}

impl fmt::Display for Exposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds {} and is readable by group or others (mode {:04o}): chmod 600 it",
            self.path.display(),
            self.fields.join(", "),
            self.mode & 0o7777
        )
    }
}

/// The files of `config` (read from `config_path`) that hold a secret and that group or
/// others may read. A file that cannot be looked at is left to the validation.
#[must_use]
pub fn exposed(config_path: &Path, config: &Config) -> Vec<Exposed> {
    let mut holders: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for id in TunnelId::ALL {
        let Some(t) = config.tunnel(id) else {
            continue;
        };
        for (name, secret) in [("ike_psk", &t.ike_psk), ("bgp_password", &t.bgp_password)] {
            let Some(secret) = secret else {
                continue;
            };
            let holder = if secret.is_inline() {
                config_path
            } else if let Some(file) = secret.file_path() {
                file
            } else {
                continue;
            };
            holders
                .entry(holder.to_path_buf())
                .or_default()
                .push(format!("{}.{name}", id.section()));
        }
    }
    holders
        .into_iter()
        .filter_map(|(path, fields)| {
            let mode = std::fs::metadata(&path).ok()?.permissions().mode();
            (mode & READABLE_BY_OTHERS != 0).then_some(Exposed { path, mode, fields })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt, path::Path};

    use super::exposed;
    use crate::config::{Secret, TunnelId, parse, tests::VALID};

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn secrets_readable_by_others_are_named_with_their_files() {
        let dir = std::env::temp_dir().join(format!("vc-perm-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let psk = dir.join("psk-a");
        fs::write(&psk, "s3cret\n").expect("psk");
        let config_path = dir.join("vc.toml");
        let text = VALID.replacen(
            "ike_psk = \"psk-a-0123456789\"",
            &format!("ike_psk = {{ file = \"{}\" }}", psk.display()),
            1,
        );
        fs::write(&config_path, &text).expect("config");
        let config = parse(&text).expect("config");
        let inline = config
            .tunnel(TunnelId::A)
            .and_then(|t| t.bgp_password.as_ref())
            .is_some_and(Secret::is_inline);
        assert!(inline, "the form keeps its inline BGP passwords");

        chmod(&psk, 0o644);
        chmod(&config_path, 0o640);
        let found = exposed(&config_path, &config);
        assert_eq!(found.len(), 2, "{found:?}");
        let file = found.iter().find(|e| e.path == psk).expect("psk file");
        assert_eq!(file.fields, ["tunnel.a.ike_psk"]);
        assert_eq!(
            file.to_string(),
            format!(
                "{} holds tunnel.a.ike_psk and is readable by group or others (mode 0644): \
                 chmod 600 it",
                psk.display()
            )
        );
        let config_file = found
            .iter()
            .find(|e| e.path == config_path)
            .expect("config");
        assert!(
            config_file
                .fields
                .contains(&"tunnel.a.bgp_password".to_string()),
            "{config_file}"
        );
        assert!(!config_file.to_string().contains("s3cret"));

        chmod(&psk, 0o600);
        chmod(&config_path, 0o600);
        assert_eq!(exposed(&config_path, &config), []);
        let _ = fs::remove_dir_all(&dir);
    }
}
