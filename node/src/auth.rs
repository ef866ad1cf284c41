//! Operator authentication for the HTTP API.
//!
//! Endpoints that change a node's state other than evidence submission (key ceremonies today,
//! roster amendments and share refresh later) need the operator's bearer token:
//! `Authorization: Bearer <token>`. The token is 32 random bytes in hex, in a file created 0600
//! by `accord init` (or at the node's first start) under the data directory, `operator.token`.
//! Evidence submission and every read stay open: evidence is signed by its author, and
//! everything the node serves is public.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::keyfile::{SecretFileError, check_private};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "operator.token";
/// Token length in bytes (64 hex characters).
const TOKEN_BYTES: usize = 32;

/// The operator's bearer token (zeroized on drop; never logged).
pub struct OperatorToken(Zeroizing<String>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(redacted)")
    }
}

impl OperatorToken {
    /// Creates a new token file at `path` (mode 0600; an existing file is refused).
    ///
    /// # Errors
    /// I/O, or an existing file.
    pub fn create(path: &Path) -> Result<Self, SecretFileError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut *bytes);
        let token = Zeroizing::new(hex::encode(*bytes));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    SecretFileError::Exists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io(path, e)
                }
            })?;
        file.write_all(token.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| io(path, e))?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(dir, e))?;
        }
        Ok(Self(token))
    }

    /// Reads the token file at `path`, which others must not be able to read.
    ///
    /// # Errors
    /// Permissions, I/O, or a file that does not hold a token.
    pub fn read(path: &Path) -> Result<Self, SecretFileError> {
        check_private(path)?;
        let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
        let malformed = SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "an operator token file holds 64 hex characters",
        };
        if len > 256 {
            return Err(malformed);
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(path, e))?);
        let token = text.trim();
        if token.len() != 2 * TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed);
        }
        Ok(Self(Zeroizing::new(token.to_ascii_lowercase())))
    }

    /// The token at `path`, created there if the file does not exist yet.
    ///
    /// # Errors
    /// As [`OperatorToken::read`] and [`OperatorToken::create`].
    pub fn load_or_create(path: &Path) -> Result<Self, SecretFileError> {
        match Self::create(path) {
            Err(SecretFileError::Exists { .. }) => Self::read(path),
            other => other,
        }
    }

    /// The token, for a client's `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `header` (an `Authorization` header's value) carries this token. Compares in
    /// time independent of where the first difference is.
    pub fn admits(&self, header: &str) -> bool {
        let Some(given) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn io(path: &Path, source: std::io::Error) -> SecretFileError {
    SecretFileError::Io {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn created_private_read_back_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(TOKEN_FILE);
        let t = OperatorToken::create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            OperatorToken::create(&path),
            Err(SecretFileError::Exists { .. })
        ));
        let again = OperatorToken::load_or_create(&path).unwrap();
        assert_eq!(again.expose(), t.expose());
        assert!(t.admits(&format!("Bearer {}", t.expose())));
        assert!(!t.admits(t.expose()));
        assert!(!t.admits("Bearer "));
        let mut wrong = t.expose().to_string();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert!(!t.admits(&format!("Bearer {wrong}")));
        assert!(!format!("{t:?}").contains(t.expose()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            OperatorToken::read(&path),
            Err(SecretFileError::Permissions { .. })
        ));
    }
}
