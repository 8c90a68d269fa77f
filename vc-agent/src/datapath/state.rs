//! What `up` changed on the host and `down` must undo, kept on disk so that a restarted
//! agent, or `vc-agent datapath down` after a crash, can undo it.
use std::{fs, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::attach::{AttachMode, Attachment};

const FILE: &str = "datapath.toml";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// `net.ipv4.ip_forward` before vc set it.
    pub ip_forward_before: Option<String>,
    pub attach_mode: Option<AttachMode>,
    /// Tunnel interfaces vc created.
    pub tunnel_devices: Vec<String>,
    pub attachments: Vec<Attachment>,
}

impl State {
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written before each change it records, so a crash midway leaves enough to undo.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        fs::write(
            &tmp,
            toml::to_string(self).context("serializing the datapath state")?,
        )
        .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn remove(dir: &Path) -> Result<()> {
        match fs::remove_file(dir.join(FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", dir.join(FILE).display()))
            }
            _ => Ok(()),
        }
    }
}
