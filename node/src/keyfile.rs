//! Secret files: a member's identity key and its FROST key share.
//!
//! A secret file is created with mode 0600 through a temporary file, fsynced, renamed into place
//! and the directory fsynced. Reading refuses a file that group or others can read. With a
//! passphrase the content is sealed: Argon2id (RFC 9106 defaults) derives a key from the
//! passphrase and a random 16-byte salt, and XChaCha20-Poly1305 encrypts under a random 24-byte
//! nonce; the header is authenticated as associated data.
//!
//! Layout: `accord-secret/v1 plain\n ‖ bytes` or
//! `accord-secret/v1 argon2id-xchacha20poly1305\n ‖ salt(16) ‖ nonce(24) ‖ ciphertext`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use thiserror::Error;
use zeroize::Zeroizing;

const PLAIN: &[u8] = b"accord-secret/v1 plain\n";
const SEALED: &[u8] = b"accord-secret/v1 argon2id-xchacha20poly1305\n";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
/// Largest secret file read (a key share is a few hundred bytes).
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// A passphrase that protects secret files. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase (trailing newlines are removed, so a file written by `echo` works).
    ///
    /// # Errors
    /// An empty passphrase.
    pub fn new(s: String) -> Result<Self, SecretFileError> {
        let s = Zeroizing::new(s);
        let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string());
        if trimmed.is_empty() {
            return Err(SecretFileError::EmptyPassphrase);
        }
        Ok(Self(trimmed))
    }

    /// Reads a passphrase from a file (which must not be readable by others).
    ///
    /// # Errors
    /// I/O, permissions, or an empty file.
    pub fn from_file(path: &Path) -> Result<Self, SecretFileError> {
        check_private(path)?;
        let s = fs::read_to_string(path).map_err(|e| io(path, e))?;
        Self::new(s)
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

/// Why a secret file cannot be written or read.
#[derive(Debug, Error)]
pub enum SecretFileError {
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is readable or writable by group or others.
    #[error(
        "{path} has mode {mode:o}: a secret file must not be accessible by group or others; run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is sealed and no passphrase was given.
    #[error(
        "{path} is encrypted with a passphrase; set ACCORD_PASSPHRASE or pass --passphrase-file"
    )]
    NeedPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// Decryption failed: a wrong passphrase or a damaged file.
    #[error("{path}: wrong passphrase (or the file is damaged): decryption failed")]
    WrongPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// Not a secret file of this format.
    #[error("{path} is not an accord secret file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Refused to overwrite an existing file.
    #[error("{path} already exists; refusing to overwrite a secret")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Key derivation failed.
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

fn io(path: &Path, source: std::io::Error) -> SecretFileError {
    SecretFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn derive_key(
    passphrase: &Passphrase,
    salt: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SecretFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::default()
        .hash_password_into(passphrase.0.as_bytes(), salt, &mut *key)
        .map_err(|e| SecretFileError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Writes `secret` to `path` (mode 0600, atomically, fsynced), sealed if `passphrase` is given.
/// With `overwrite` false an existing file is refused.
///
/// # Errors
/// I/O or key derivation errors, or an existing file.
pub fn write_secret(
    path: &Path,
    secret: &[u8],
    passphrase: Option<&Passphrase>,
    overwrite: bool,
) -> Result<(), SecretFileError> {
    if !overwrite && path.exists() {
        return Err(SecretFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let mut content = Zeroizing::new(Vec::with_capacity(secret.len() + 128));
    match passphrase {
        None => {
            content.extend_from_slice(PLAIN);
            content.extend_from_slice(secret);
        }
        Some(p) => {
            let mut salt = [0u8; SALT_LEN];
            let mut nonce = [0u8; NONCE_LEN];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let key = derive_key(p, &salt)?;
            let cipher = XChaCha20Poly1305::new((&*key).into());
            let sealed = cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: secret,
                        aad: SEALED,
                    },
                )
                .map_err(|_| SecretFileError::Kdf("encryption failed".into()))?;
            content.extend_from_slice(SEALED);
            content.extend_from_slice(&salt);
            content.extend_from_slice(&nonce);
            content.extend_from_slice(&sealed);
        }
    }
    write_durably(path, &content, 0o600).map_err(|(p, e)| io(&p, e))
}

/// Replaces `path` with `content` so that a crash leaves the old file or the new one, never a
/// mix: a fresh temporary file with mode `mode`, synced, renamed over `path`, and the directory
/// synced.
///
/// # Errors
/// The path the I/O failed on, with the error.
pub fn write_durably(
    path: &Path,
    content: &[u8],
    mode: u32,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    fn at(p: &Path) -> impl FnOnce(std::io::Error) -> (std::path::PathBuf, std::io::Error) + '_ {
        move |e| (p.to_path_buf(), e)
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(at(&tmp))?;
    file.write_all(content).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(at(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Refuses a file that group or others may access.
///
/// # Errors
/// [`SecretFileError::Permissions`] or I/O.
pub fn check_private(path: &Path) -> Result<(), SecretFileError> {
    let meta = fs::metadata(path).map_err(|e| io(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Whether the secret file at `path` is sealed with a passphrase.
///
/// # Errors
/// I/O errors.
pub fn is_sealed(path: &Path) -> Result<bool, SecretFileError> {
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    Ok(bytes.starts_with(SEALED))
}

/// Reads an Ed25519 key file (a member's identity or a lab's key: its 32-byte seed).
///
/// # Errors
/// As [`read_secret`], or a secret that is not 32 bytes.
pub fn read_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<accord_protocol::crypto::SecretKey, SecretFileError> {
    let seed = read_secret(path, passphrase)?;
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "an Ed25519 key file holds a 32-byte seed",
        })?;
    Ok(accord_protocol::crypto::SecretKey::from_seed(seed))
}

/// Reads a secret file written by [`write_secret`].
///
/// # Errors
/// Permissions, a missing or wrong passphrase, a malformed file, I/O.
pub fn read_secret(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    check_private(path)?;
    let len = fs::metadata(path).map_err(|e| io(path, e))?.len();
    if len > MAX_SECRET_FILE {
        return Err(SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "too large",
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| io(path, e))?);
    parse_secret(path, &bytes, passphrase)
}

/// The secret in the contents `bytes` of the secret file at `path` (named in errors only).
///
/// # Errors
/// A missing or wrong passphrase, or a malformed file.
pub fn parse_secret(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "too large",
        });
    }
    if let Some(rest) = bytes.strip_prefix(PLAIN) {
        return Ok(Zeroizing::new(rest.to_vec()));
    }
    let Some(rest) = bytes.strip_prefix(SEALED) else {
        return Err(SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "unknown header",
        });
    };
    let Some(passphrase) = passphrase else {
        return Err(SecretFileError::NeedPassphrase {
            path: path.to_path_buf(),
        });
    };
    if rest.len() < SALT_LEN + NONCE_LEN + 16 {
        return Err(SecretFileError::Malformed {
            path: path.to_path_buf(),
            reason: "truncated",
        });
    }
    let (salt, rest) = rest.split_at(SALT_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let key = derive_key(passphrase, salt)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: SEALED,
            },
        )
        .map_err(|_| SecretFileError::WrongPassphrase {
            path: path.to_path_buf(),
        })?;
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sealed_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("share.key");
        write_secret(&p, b"secret bytes", None, false).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(&**read_secret(&p, None).unwrap(), b"secret bytes");
        assert!(matches!(
            write_secret(&p, b"x", None, false),
            Err(SecretFileError::Exists { .. })
        ));

        let pass = Passphrase::new("correct horse\n".into()).unwrap();
        write_secret(&p, b"sealed bytes", Some(&pass), true).unwrap();
        assert!(is_sealed(&p).unwrap());
        assert!(!fs::read(&p).unwrap().windows(5).any(|w| w == b"bytes"));
        assert_eq!(&**read_secret(&p, Some(&pass)).unwrap(), b"sealed bytes");
        assert!(matches!(
            read_secret(&p, None),
            Err(SecretFileError::NeedPassphrase { .. })
        ));
        let wrong = Passphrase::new("battery staple".into()).unwrap();
        assert!(matches!(
            read_secret(&p, Some(&wrong)),
            Err(SecretFileError::WrongPassphrase { .. })
        ));

        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret(&p, Some(&pass)).unwrap_err();
        assert!(matches!(
            err,
            SecretFileError::Permissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
        assert!(format!("{pass:?}").contains("redacted"));
    }
}
