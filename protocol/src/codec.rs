//! The canonical codec: the one module that knows the wire format is bincode 2.
//!
//! Every byte string that is signed, hashed or sent goes through [`encode`], and every byte
//! string that arrives goes through [`decode`] (or [`decode_canonical`] for anything whose bytes
//! are signed or hashed). The rules:
//!
//! - fixed-width little-endian integers and `u64` length prefixes, so an encoding has one form;
//! - a byte limit on every decode ([`MAX_MESSAGE_BYTES`] or less), checked before decoding; a
//!   length prefix larger than the input's limit tier (4 KiB, 64 KiB, 1 MiB or 16 MiB, the
//!   smallest that holds the input) is a typed error before any allocation, so strings and byte
//!   buffers never exceed the tier; serde may still reserve up to 1 MiB for another sequence
//!   before finding its elements missing (a transient allocation, freed with the error);
//! - trailing bytes are rejected;
//! - [`decode_canonical`] re-encodes what it decoded and insists on the same bytes, so two
//!   different byte strings never decode to the same signed value.
//!
//! bincode is marked unmaintained upstream (RUSTSEC-2025-0141); keeping it behind these three
//! functions keeps it swappable.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// The largest message the protocol encodes or accepts, in bytes.
///
/// A full-period proposal for 256 members and 1 024 labs stays well below this.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

type Config<const N: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<N>,
>;

const fn config<const N: usize>() -> Config<N> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<N>()
}

const CONFIG: Config<MAX_MESSAGE_BYTES> = config::<MAX_MESSAGE_BYTES>();

/// Why bytes could not be decoded (or a value encoded).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The input is longer than the limit for its kind.
    #[error("{len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// The input ended early or claimed more bytes than it has.
    #[error("truncated or over-long input: {0}")]
    Truncated(String),
    /// The input is not a valid encoding of the expected type.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The value decoded, but its bytes are not the canonical encoding of it.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// A version byte this implementation does not speak.
    #[error("unsupported version {found} (this node speaks {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version supported.
        supported: u8,
    },
    /// A value could not be encoded (only for values over the size limit).
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Encodes `value` canonically.
///
/// # Errors
/// Only if the encoding would exceed [`MAX_MESSAGE_BYTES`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, CONFIG)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(bytes)
}

/// Encodes a value the protocol itself built, whose size is bounded by construction.
pub(crate) fn encode_bounded<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, CONFIG)
        .expect("values built by the protocol are bounded and serializable")
}

/// Decodes exactly one `T` from `bytes`, which must be at most `limit` bytes long.
///
/// # Errors
/// Over-limit input, truncation, malformed data or trailing bytes, as a typed [`CodecError`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let limit = limit.min(MAX_MESSAGE_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    // bincode allocates a string or byte buffer at its claimed length before reading it, up to
    // the configured limit; a limit tier just above the input's length keeps that allocation
    // within a small multiple of what the peer actually sent.
    let decoded = match bytes.len() {
        0..=4096 => bincode::serde::decode_from_slice::<T, _>(bytes, config::<4096>()),
        4097..=65_536 => bincode::serde::decode_from_slice::<T, _>(bytes, config::<65_536>()),
        65_537..=1_048_576 => {
            bincode::serde::decode_from_slice::<T, _>(bytes, config::<1_048_576>())
        }
        _ => bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG),
    };
    let (value, used) = decoded.map_err(classify)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Like [`decode`], and also requires that re-encoding the value reproduces `bytes` exactly.
///
/// Use it for anything whose bytes are signed or hashed.
///
/// # Errors
/// As [`decode`], plus [`CodecError::NonCanonical`].
pub fn decode_canonical<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    let value: T = decode(bytes, limit)?;
    if encode(&value)? != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}

fn classify(e: bincode::error::DecodeError) -> CodecError {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { .. } | E::LimitExceeded => CodecError::Truncated(e.to_string()),
        other => CodecError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        n: u32,
        items: Vec<u8>,
        flag: bool,
    }

    #[test]
    fn round_trip_and_layout() {
        let s = Sample {
            n: 7,
            items: vec![1, 2],
            flag: true,
        };
        let bytes = encode(&s).unwrap();
        assert_eq!(bytes, [7, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1]);
        assert_eq!(decode_canonical::<Sample>(&bytes, 100).unwrap(), s);
    }

    #[test]
    fn huge_length_prefix_in_tiny_payload_is_a_typed_error() {
        // FAULTS 16: a length prefix of 2^64 - 1 in a 12-byte payload.
        let mut bytes = vec![0u8; 4];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(bytes.len(), 12);
        assert!(matches!(
            decode::<Sample>(&bytes, 100),
            Err(CodecError::Truncated(_))
        ));
    }

    #[test]
    fn over_limit_is_refused_before_decoding() {
        let bytes = vec![0u8; 101];
        assert_eq!(
            decode::<Sample>(&bytes, 100),
            Err(CodecError::TooLarge {
                len: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn trailing_bytes_and_bad_bool_are_rejected() {
        let mut bytes = encode(&Sample {
            n: 1,
            items: vec![],
            flag: false,
        })
        .unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<Sample>(&bytes, 100),
            Err(CodecError::TrailingBytes(1))
        );
        let mut bad = encode(&Sample {
            n: 1,
            items: vec![],
            flag: false,
        })
        .unwrap();
        *bad.last_mut().unwrap() = 2;
        assert!(matches!(
            decode::<Sample>(&bad, 100),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = encode(&Sample {
            n: 9,
            items: vec![5; 10],
            flag: true,
        })
        .unwrap();
        for len in 0..bytes.len() {
            assert!(decode::<Sample>(&bytes[..len], 100).is_err());
        }
    }
}
