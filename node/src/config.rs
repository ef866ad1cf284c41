//! Node configuration: the roster (genesis) file, the TOML file written by `accord
//! init`/`accord testnet`, and the settings `run` needs once command-line flags and environment
//! variables are applied.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use accord_protocol::roster::{Network, Roster};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keyfile::Passphrase;

/// Default libp2p listen address.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7600";
/// Default HTTP API address (loopback only).
pub const DEFAULT_API: &str = "127.0.0.1:7700";

/// The node's TOML configuration file. Relative paths are relative to the file's directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The network's roster (genesis), JSON.
    pub roster: PathBuf,
    /// This member's identity key file (Ed25519 seed; also its libp2p identity).
    pub identity: PathBuf,
    /// Directory of the database (and, by default, the key share).
    pub data_dir: PathBuf,
    /// The FROST key share file; default `<data_dir>/share.key`.
    #[serde(default)]
    pub key_share: Option<PathBuf>,
    /// libp2p listen multiaddress.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP API socket address.
    #[serde(default = "default_api")]
    pub api: String,
    /// The operator's bearer token file; default `<data_dir>/operator.token` (created 0600 at
    /// the first start if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_token: Option<PathBuf>,
    /// Refresh the key shares after closing every k-th period (`docs/protocol.md` §22.5); at
    /// least 1; none by default. Members that receive a newer refresh join it, so the schedule
    /// of one member suffices, and members with the same k start the same ceremony.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_every: Option<u64>,
    /// This roster is a successor epoch that decides from this period on
    /// (`docs/protocol.md` §22.7): the node runs its DKG but closes no period until its operator
    /// adopts the co-signed succession (`accord succession adopt`). None for a genesis network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_start: Option<u64>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

fn default_api() -> String {
    DEFAULT_API.into()
}

/// A configuration problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The roster file could not be read or is invalid.
    #[error("roster {path}: {message}")]
    Roster {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A setting out of its range.
    #[error("bad {what}: {message}")]
    Setting {
        /// Which setting.
        what: &'static str,
        /// Why.
        message: &'static str,
    },
    /// An address does not parse.
    #[error("bad {what} address {value:?}: {message}")]
    Address {
        /// Which address.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        message: String,
    },
}

/// Reads and validates a roster file (JSON).
///
/// # Errors
/// I/O, JSON or roster-rule errors.
pub fn load_roster(path: &Path) -> Result<Arc<Network>, ConfigError> {
    let err = |message: String| ConfigError::Roster {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let roster: Roster = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    Network::new(roster).map_err(|e| err(e.to_string()))
}

impl FileConfig {
    /// Reads a config file and makes its paths absolute (relative to the file).
    ///
    /// # Errors
    /// I/O or parse errors.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        c.roster = abs(&c.roster);
        c.identity = abs(&c.identity);
        c.data_dir = abs(&c.data_dir);
        c.key_share = c.key_share.as_deref().map(abs);
        c.operator_token = c.operator_token.as_deref().map(abs);
        Ok(c)
    }

    /// Writes the config as TOML.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Everything [`crate::daemon::run`] needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The roster file.
    pub roster: PathBuf,
    /// The identity key file.
    pub identity: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The key share file.
    pub key_share: PathBuf,
    /// libp2p listen address.
    pub listen: libp2p::Multiaddr,
    /// HTTP API address.
    pub api: SocketAddr,
    /// Passphrase for sealed secret files (and for sealing the key share the DKG produces).
    pub passphrase: Option<Passphrase>,
    /// The operator's bearer token file.
    pub operator_token: PathBuf,
    /// The share-refresh schedule (every k periods), if any.
    pub refresh_every: Option<u64>,
    /// A successor epoch's first period, if this roster is one.
    pub epoch_start: Option<u64>,
}

impl NodeConfig {
    /// Resolves a file config (with overrides already applied).
    ///
    /// # Errors
    /// Unparseable addresses, or a refresh schedule of 0 periods.
    pub fn from_file(c: &FileConfig, passphrase: Option<Passphrase>) -> Result<Self, ConfigError> {
        let listen =
            c.listen
                .parse()
                .map_err(|e: libp2p::multiaddr::Error| ConfigError::Address {
                    what: "listen",
                    value: c.listen.clone(),
                    message: e.to_string(),
                })?;
        let api = c
            .api
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Address {
                what: "api",
                value: c.api.clone(),
                message: e.to_string(),
            })?;
        if c.refresh_every == Some(0) {
            return Err(ConfigError::Setting {
                what: "refresh_every",
                message: "a share refresh every 0 periods; use at least 1, or leave it out",
            });
        }
        Ok(Self {
            roster: c.roster.clone(),
            identity: c.identity.clone(),
            data_dir: c.data_dir.clone(),
            key_share: c
                .key_share
                .clone()
                .unwrap_or_else(|| c.data_dir.join("share.key")),
            listen,
            api,
            passphrase,
            operator_token: c
                .operator_token
                .clone()
                .unwrap_or_else(|| c.data_dir.join(crate::auth::TOKEN_FILE)),
            refresh_every: c.refresh_every,
            epoch_start: c.epoch_start,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "roster = \"roster.json\"\nidentity = \"id.key\"\ndata_dir = \"data\"\n{extra}"
            ),
        )
        .unwrap();
        NodeConfig::from_file(&FileConfig::load(&path)?, None)
    }

    #[test]
    fn the_refresh_schedule_reaches_the_node_config_and_zero_is_refused() {
        assert_eq!(load("").unwrap().refresh_every, None);
        assert_eq!(load("").unwrap().epoch_start, None);
        assert_eq!(load("epoch_start = 12\n").unwrap().epoch_start, Some(12));
        assert_eq!(load("refresh_every = 4\n").unwrap().refresh_every, Some(4));
        assert!(matches!(
            load("refresh_every = 0\n"),
            Err(ConfigError::Setting {
                what: "refresh_every",
                ..
            })
        ));
        assert!(matches!(
            load("refresh_every = -1\n"),
            Err(ConfigError::Parse { .. })
        ));
    }
}
