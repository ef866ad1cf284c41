//! Hashes, member and lab signatures, and the wire form of FROST types.
//!
//! Every signed byte string is `tag ‖ 0x00 ‖ version ‖ network_id ‖ body`: a domain-separation
//! tag naming what is signed, the protocol version, and the network it belongs to, so a signature
//! can never be replayed as another kind of item or on another network.

use core::fmt;
use std::sync::Arc;

use ed25519_dalek::Verifier as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// Version byte of every signed format defined by this crate.
pub const SIGNED_FORMAT_VERSION: u8 = 1;

macro_rules! byte_array {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Lower-case hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses lower- or upper-case hex of exactly the right length.
            ///
            /// # Errors
            /// When `s` is not hex of the right length.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| HexError { expected: $len })?;
                Ok(Self(out))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let h = self.to_hex();
                write!(f, "{}({}…)", stringify!($name), &h[..12])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    use serde::ser::SerializeTuple as _;
                    let mut t = s.serialize_tuple($len)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = [u8; $len];
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            write!(f, "{} bytes", $len)
                        }
                        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                            let mut out = [0u8; $len];
                            for (i, b) in out.iter_mut().enumerate() {
                                *b = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                            }
                            Ok(out)
                        }
                    }
                    d.deserialize_tuple($len, V).map(Self)
                }
            }
        }
    };
}

byte_array!(
    /// A SHA-256 digest.
    Digest,
    32
);
byte_array!(
    /// An Ed25519 public key (a member's or a lab's), as 32 bytes.
    PublicKey,
    32
);
byte_array!(
    /// An Ed25519 signature, as 64 bytes.
    Signature,
    64
);

/// Hex of the wrong length or with a non-hex character.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected {expected} bytes of hex")]
pub struct HexError {
    /// Number of bytes expected.
    pub expected: usize,
}

/// A signature or key that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The public key is not a valid, non-weak Ed25519 point.
    #[error("invalid or weak public key")]
    BadKey,
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
}

impl Digest {
    /// SHA-256 over a domain tag and the given parts, each part length-prefixed.
    pub fn tagged(tag: &str, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        h.update((tag.len() as u64).to_le_bytes());
        h.update(tag.as_bytes());
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Self(h.finalize().into())
    }

    /// Plain SHA-256 of `bytes` (used where an outside format fixes the hash, e.g. RFC 9162).
    pub fn sha256(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// The bytes a member or lab signs: `tag ‖ 0x00 ‖ version ‖ network_id ‖ body`.
pub fn signing_bytes(tag: &str, network_id: &Digest, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 2 + 32 + body.len());
    out.extend_from_slice(tag.as_bytes());
    out.push(0);
    out.push(SIGNED_FORMAT_VERSION);
    out.extend_from_slice(&network_id.0);
    out.extend_from_slice(body);
    out
}

impl PublicKey {
    /// Parses the key, rejecting non-canonical encodings and small-order (weak) points.
    ///
    /// # Errors
    /// [`SignatureError::BadKey`].
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey)?;
        if key.is_weak() || key.to_bytes() != self.0 {
            return Err(SignatureError::BadKey);
        }
        Ok(key)
    }
}

/// Verifies one signature with RFC 8032 strict rules (`verify_strict`).
///
/// # Errors
/// [`SignatureError::BadSignature`] when it does not verify.
pub fn verify_strict(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(message, &sig)
        .map_err(|_| SignatureError::BadSignature)
}

/// Verifies many signatures at once; on failure, finds which ones are bad.
///
/// The batch equation's coefficients come from a transcript of the whole batch, so the same list
/// gives the same answer on every member. Returns the indexes of the signatures that fail
/// (empty when all verify).
pub fn verify_many(items: &[(&ed25519_dalek::VerifyingKey, &[u8], &Signature)]) -> Vec<usize> {
    if items.is_empty() {
        return Vec::new();
    }
    let messages: Vec<&[u8]> = items.iter().map(|(_, m, _)| *m).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = items.iter().map(|(k, _, _)| **k).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter(|(_, (k, m, s))| {
            k.verify(m, &ed25519_dalek::Signature::from_bytes(&s.0))
                .is_err()
                || verify_strict(k, m, s).is_err()
        })
        .map(|(i, _)| i)
        .collect()
}

/// A member's or lab's Ed25519 signing key. Zeroized on drop; never serialized onto the wire.
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        Self(ed25519_dalek::SigningKey::generate(rng))
    }

    /// The key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for storing the key in its owner's key file.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (already domain-separated by [`signing_bytes`]).
    pub fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public={})", self.public())
    }
}

/// A FROST value carried on the wire in frost's own serialization.
///
/// Decoding runs frost's `deserialize`, which rejects non-canonical scalars, the identity point
/// and points outside the prime-order subgroup; so a malformed commitment or share never gets
/// past the codec.
///
/// The canonical bytes are kept next to the value (shared, so clones are cheap): serializing a
/// signing package compresses two points per signer, and a signer, the codec and the simulator's
/// byte accounting would otherwise each redo it for the same package.
#[derive(Clone)]
pub struct Frost<T> {
    value: T,
    bytes: Arc<[u8]>,
}

/// FROST types that have a canonical byte form.
pub trait FrostBytes: Sized {
    /// frost's `serialize()`.
    fn to_frost_bytes(&self) -> Option<Vec<u8>>;
    /// frost's `deserialize()`.
    fn from_frost_bytes(bytes: &[u8]) -> Option<Self>;
}

macro_rules! frost_bytes {
    ($($t:ty => $ser:expr),* $(,)?) => {$(
        impl FrostBytes for $t {
            fn to_frost_bytes(&self) -> Option<Vec<u8>> {
                #[allow(clippy::redundant_closure_call)]
                ($ser)(self)
            }
            fn from_frost_bytes(bytes: &[u8]) -> Option<Self> {
                <$t>::deserialize(bytes).ok()
            }
        }
    )*};
}

frost_bytes! {
    frost_ed25519::round1::SigningCommitments => |v: &frost_ed25519::round1::SigningCommitments| v.serialize().ok(),
    frost_ed25519::SigningPackage => |v: &frost_ed25519::SigningPackage| v.serialize().ok(),
    frost_ed25519::round2::SignatureShare => |v: &frost_ed25519::round2::SignatureShare| Some(v.serialize()),
    frost_ed25519::keys::dkg::round1::Package => |v: &frost_ed25519::keys::dkg::round1::Package| v.serialize().ok(),
    frost_ed25519::keys::dkg::round2::Package => |v: &frost_ed25519::keys::dkg::round2::Package| v.serialize().ok(),
    frost_ed25519::keys::PublicKeyPackage => |v: &frost_ed25519::keys::PublicKeyPackage| v.serialize().ok(),
}

impl<T: FrostBytes> Frost<T> {
    /// Wraps a locally built value, computing its canonical bytes once.
    pub fn new(value: T) -> Self {
        let bytes = value
            .to_frost_bytes()
            .expect("a locally built FROST value serializes")
            .into();
        Frost { value, bytes }
    }

    /// The canonical bytes (frost's serialization).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Digest of the canonical bytes under `tag`.
    pub fn digest(&self, tag: &str) -> Digest {
        Digest::tagged(tag, &[&self.bytes])
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> core::ops::Deref for Frost<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Equal when the canonical bytes are equal (the value is a function of them).
impl<T> PartialEq for Frost<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Eq for Frost<T> {}

impl<T: FrostBytes> Serialize for Frost<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de, T: FrostBytes> Deserialize<'de> for Frost<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        let value = T::from_frost_bytes(&bytes.0)
            .ok_or_else(|| serde::de::Error::custom("invalid FROST encoding"))?;
        // Canonical: frost's own serialization must reproduce the bytes.
        if value.to_frost_bytes().as_deref() != Some(&bytes.0[..]) {
            return Err(serde::de::Error::custom("non-canonical FROST encoding"));
        }
        Ok(Frost {
            value,
            bytes: bytes.0.into(),
        })
    }
}

impl<T> fmt::Debug for Frost<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frost<{}>",
            core::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("?")
        )
    }
}

mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer};

    /// A `Vec<u8>` deserialized from serde's bytes form.
    pub(super) struct ByteBuf(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                    Ok(v.to_vec())
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                    Ok(v)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(out)
                }
            }
            d.deserialize_byte_buf(V).map(ByteBuf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tagged_hash_separates_domains_and_boundaries() {
        assert_ne!(Digest::tagged("a", &[b"x"]), Digest::tagged("b", &[b"x"]));
        assert_ne!(
            Digest::tagged("a", &[b"xy", b""]),
            Digest::tagged("a", &[b"x", b"y"])
        );
    }

    #[test]
    fn sign_verify_and_batch_find_the_bad_one() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let keys: Vec<SecretKey> = (0..5).map(|_| SecretKey::generate(&mut rng)).collect();
        let msgs: Vec<Vec<u8>> = (0..5u8)
            .map(|i| signing_bytes("test", &Digest([i; 32]), &[i]))
            .collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let vks: Vec<_> = keys
            .iter()
            .map(|k| k.public().verifying_key().unwrap())
            .collect();
        let items: Vec<_> = (0..5)
            .map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i]))
            .collect();
        assert!(verify_many(&items).is_empty());
        sigs[3].0[5] ^= 1;
        let items: Vec<_> = (0..5)
            .map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i]))
            .collect();
        assert_eq!(verify_many(&items), vec![3]);
        assert!(verify_strict(&vks[0], &msgs[0], &sigs[0]).is_ok());
        assert_eq!(
            verify_strict(&vks[0], &msgs[1], &sigs[0]),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn weak_and_non_canonical_keys_are_rejected() {
        // The identity point (a small-order point).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey(identity).verifying_key(),
            Err(SignatureError::BadKey)
        );
    }

    #[test]
    fn hex_round_trip() {
        let d = Digest([0xab; 32]);
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::from_hex("abcd").is_err());
    }
}
