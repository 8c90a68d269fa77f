//! Secrets (the IKE PSK and the BGP password, R10/R17): written inline, or kept out of the
//! config file in a file or an environment variable.
//!
//! ```toml
//! ike_psk = "inline secret"
//! ike_psk = { file = "/etc/vc/psk-a" }
//! ike_psk = { env = "VC_PSK_A" }
//! ```
//!
//! Neither [`Secret`] nor [`SecretValue`] implements `Serialize`, and both print `<redacted>`,
//! so a secret cannot reach an exported config or a log line by accident. Both wipe their
//! bytes when dropped.
use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};
use zeroize::Zeroize;

/// Where a secret comes from. Resolved only when needed ([`Secret::resolve`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Source);

#[derive(Clone, PartialEq, Eq)]
enum Source {
    Inline(String),
    File(PathBuf),
    Env(String),
}

/// A resolved secret. Its bytes are reachable only through [`SecretValue::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl Drop for SecretValue {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        if let Source::Inline(value) = &mut self.0 {
            value.zeroize();
        }
    }
}

/// Why a secret could not be resolved. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the environment variable {0} is not set")]
    EnvMissing(String),
    #[error("the environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("the secret is empty")]
    Empty,
}

impl Secret {
    /// An inline secret (tests, and callers that got the value elsewhere).
    #[must_use]
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret(Source::Inline(value.into()))
    }

    /// A secret read from a file when resolved.
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Secret {
        Secret(Source::File(path.into()))
    }

    /// A secret read from an environment variable when resolved.
    #[must_use]
    pub fn env(name: impl Into<String>) -> Secret {
        Secret(Source::Env(name.into()))
    }

    /// Reads the secret now. A file's trailing newline (`echo secret > file`) is not part of
    /// it; an empty secret is an error.
    pub fn resolve(&self) -> Result<SecretValue, SecretError> {
        let value = match &self.0 {
            Source::Inline(v) => v.clone(),
            Source::File(path) => {
                let mut v = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                v
            }
            Source::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => SecretError::EnvMissing(name.clone()),
                std::env::VarError::NotUnicode(_) => SecretError::EnvNotUnicode(name.clone()),
            })?,
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(SecretValue(value))
    }

    /// The file the secret is read from, if it is kept in one.
    #[must_use]
    pub fn file_path(&self) -> Option<&Path> {
        match &self.0 {
            Source::File(path) => Some(path),
            Source::Inline(_) | Source::Env(_) => None,
        }
    }

    /// Whether the secret is written in the config file itself.
    #[must_use]
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Source::Inline(_))
    }

    /// Where the secret lives, for messages: `inline`, `file /path` or `env NAME` (never the
    /// value).
    #[must_use]
    pub fn origin(&self) -> String {
        match &self.0 {
            Source::Inline(_) => "inline".into(),
            Source::File(p) => format!("file {}", p.display()),
            Source::Env(n) => format!("env {n}"),
        }
    }
}

impl SecretValue {
    /// A secret known by value (tests, and callers that already resolved it).
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The secret itself. Call sites are few and obvious: VICI `load-shared`, TCP-MD5.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Debug and Display that never show the value, whatever formats it (logs, errors, `{:?}`).
macro_rules! redacted {
    ($($type:ty),+) => {$(
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    )+};
}

redacted!(Secret, SecretValue);

// A hand-written visitor instead of an untagged enum: serde's untagged errors say only "data
// did not match any variant", this one says what is allowed.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

const EXPECTING: &str = "a string, { file = \"/path\" } or { env = \"NAME\" }";

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::inline(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "empty table: expected {EXPECTING}"
            )));
        };
        let value: String = map.next_value()?;
        let secret = match key.as_str() {
            "file" => Secret::file(value),
            "env" => Secret::env(value),
            other => return Err(de::Error::unknown_field(other, &["file", "env"])),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "`{extra}` next to `{key}`: a secret has exactly one source"
            )));
        }
        Ok(secret)
    }
}
