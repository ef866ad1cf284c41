//! Hashes, member and lab signatures, and the wire form of FROST types.
//!
//! Every signed byte string is `tag ‖ 0x00 ‖ version ‖ network_id ‖ body`: a domain-separation
//! tag naming what is signed, the protocol version, and the network it belongs to, so a signature
//! can never be replayed as another kind of item or on another network.

use core::fmt;
use std::sync::Arc;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};
use thiserror::Error;
use zeroize::Zeroizing;

mod checked;

pub use checked::{CheckedSignatures, Verifier};

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

        /// Hex of the bytes: a string of exactly `2 * len` hex digits.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(format!("^[0-9a-fA-F]{{{}}}$", 2 * $len)))
                    .description(Some(format!("{}: hex of {} bytes", stringify!($name), $len)))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

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

/// Verifies one member signature under the **batchable rule** used for every signature that is
/// checked in batches (members' observations): RFC 8032's verification with the cofactored
/// equation `[8][s]B = [8]R + [8][k]A`, canonical encodings of `R` (y < p) and `s` (s < ℓ), and
/// `R` and `A` not of small order.
///
/// Cofactorless batch verification (what `ed25519_dalek::verify_batch` does) is not consistent
/// with cofactorless single verification: a signature whose `R` has a torsion component passes a
/// batch for some random coefficients and fails for others, so two members checking different
/// batches could judge it differently. With the cofactored equation a batch passes exactly when
/// every signature in it passes alone (up to a 2^-128 chance), so [`verify_member`] and
/// [`verify_many`] are one rule (Chalkias, Garillot, Nikolaenko, "Taming the many EdDSAs", 2020;
/// Zcash ZIP 215). A signature that passes `verify_strict` always passes this rule; the rule also
/// accepts a torsion component in `R`, which only the key's holder can put there.
///
/// # Errors
/// [`SignatureError::BadSignature`] when it does not verify.
pub fn verify_member(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let item = BatchItem::parse(key, message, signature).ok_or(SignatureError::BadSignature)?;
    // [s]B - [k]A - R, times the cofactor.
    let check =
        EdwardsPoint::vartime_double_scalar_mul_basepoint(&item.k, &-item.a, &item.s) - item.r;
    if check.mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}

/// Verifies many member signatures at once under the rule of [`verify_member`]; returns the
/// indexes of those that fail it (empty when all pass). A list passes the batch exactly when
/// every item passes [`verify_member`], so the answer for an item never depends on the others.
///
/// The batch coefficients are 128-bit values derived from a SHA-512 transcript of the whole
/// batch (no external randomness), so the outcome is a function of the list.
pub fn verify_many(items: &[(&ed25519_dalek::VerifyingKey, &[u8], &Signature)]) -> Vec<usize> {
    use curve25519_dalek::traits::VartimeMultiscalarMul as _;
    if items.is_empty() {
        return Vec::new();
    }
    let parsed: Vec<Option<BatchItem>> = items
        .iter()
        .map(|(k, m, s)| BatchItem::parse(k, m, s))
        .collect();
    let mut transcript = Sha512::new();
    transcript.update(b"accord/batch-verify/v1");
    for (item, (key, _, signature)) in parsed.iter().zip(items) {
        transcript.update(key.as_bytes());
        transcript.update(signature.0);
        if let Some(i) = item {
            transcript.update(i.k.as_bytes());
        }
    }
    let seed = transcript.finalize();
    let all_parsed = parsed.iter().all(Option::is_some);
    let passes = all_parsed && {
        // Σ z_i·(s_i·B − R_i − k_i·A_i) = 0, with the terms of each distinct key A summed into
        // one (Σ z_i·k_i)·A: a batch under one key (a group's statements, one member's
        // observations) is one point per signature plus two, not two per signature.
        let mut b_coefficient = Scalar::ZERO;
        let mut scalars = Vec::with_capacity(items.len() + 2);
        let mut points = Vec::with_capacity(items.len() + 2);
        scalars.push(Scalar::ZERO);
        points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
        let mut keys: std::collections::BTreeMap<&[u8; 32], usize> =
            std::collections::BTreeMap::new();
        let mut key_terms: Vec<(Scalar, EdwardsPoint)> = Vec::new();
        for (i, (item, (key, _, _))) in parsed.iter().flatten().zip(items).enumerate() {
            let mut h = Sha512::new();
            h.update(seed);
            h.update((i as u64).to_le_bytes());
            let wide = h.finalize();
            let mut z = [0u8; 32];
            z[..16].copy_from_slice(&wide[..16]);
            let z = Scalar::from_bytes_mod_order(z);
            b_coefficient -= z * item.s;
            scalars.push(z);
            points.push(item.r);
            let k = *keys.entry(key.as_bytes()).or_insert_with(|| {
                key_terms.push((Scalar::ZERO, item.a));
                key_terms.len() - 1
            });
            key_terms[k].0 += z * item.k;
        }
        scalars[0] = b_coefficient;
        for (scalar, point) in key_terms {
            scalars.push(scalar);
            points.push(point);
        }
        EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
            .mul_by_cofactor()
            .is_identity()
    };
    if passes {
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter(|(_, (k, m, s))| verify_member(k, m, s).is_err())
        .map(|(i, _)| i)
        .collect()
}

/// One signature parsed for the batchable rule: `R` and `s` decoded canonically, `A`, and the
/// challenge `k = H(R ‖ A ‖ M)`.
struct BatchItem {
    r: EdwardsPoint,
    s: Scalar,
    a: EdwardsPoint,
    k: Scalar,
}

impl BatchItem {
    fn parse(
        key: &ed25519_dalek::VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> Option<Self> {
        let r_bytes: [u8; 32] = signature.0[..32].try_into().ok()?;
        let s_bytes: [u8; 32] = signature.0[32..].try_into().ok()?;
        if !canonical_y(&r_bytes) {
            return None;
        }
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        // Small order R also covers the x = 0 points, the only ones with a second encoding
        // that has a canonical y (the sign bit).
        let a = key.to_edwards();
        if r.is_small_order() || a.is_small_order() {
            return None;
        }
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(key.as_bytes())
                .chain_update(message),
        );
        Some(Self { r, s, a, k })
    }
}

/// Whether the y coordinate of a compressed point is reduced (y < p = 2^255 − 19).
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed)
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
/// byte accounting would otherwise each redo it for the same package. The cached bytes are
/// zeroized when the last copy drops, as frost zeroizes its own secret types (a DKG round-2
/// package carries a secret share).
#[derive(Clone)]
pub struct Frost<T> {
    value: T,
    bytes: Arc<CachedBytes>,
}

/// A FROST value's canonical bytes, zeroized on drop.
struct CachedBytes(Box<[u8]>);

impl CachedBytes {
    /// Takes the bytes out of `v` (copied into an exact-size buffer; `v` is zeroized).
    fn take(mut v: Vec<u8>) -> Arc<Self> {
        use zeroize::Zeroize as _;
        let bytes: Box<[u8]> = v.as_slice().into();
        v.zeroize();
        Arc::new(Self(bytes))
    }
}

impl Drop for CachedBytes {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.0.zeroize();
    }
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
    frost_ed25519::keys::repairable::Delta => |v: &frost_ed25519::keys::repairable::Delta| Some(v.serialize()),
    frost_ed25519::keys::repairable::Sigma => |v: &frost_ed25519::keys::repairable::Sigma| Some(v.serialize()),
}

impl<T: FrostBytes> Frost<T> {
    /// Wraps a locally built value, computing its canonical bytes once.
    pub fn new(value: T) -> Self {
        let bytes = value
            .to_frost_bytes()
            .expect("a locally built FROST value serializes");
        Frost {
            value,
            bytes: CachedBytes::take(bytes),
        }
    }

    /// The canonical bytes (frost's serialization).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes.0
    }

    /// Digest of the canonical bytes under `tag`.
    pub fn digest(&self, tag: &str) -> Digest {
        Digest::tagged(tag, &[&self.bytes.0])
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
        self.bytes.0 == other.bytes.0
    }
}

impl<T> Eq for Frost<T> {}

impl<T: FrostBytes> Serialize for Frost<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes.0)
    }
}

impl<'de, T: FrostBytes> Deserialize<'de> for Frost<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        let bytes = CachedBytes::take(bytes.0);
        let value = T::from_frost_bytes(&bytes.0)
            .ok_or_else(|| serde::de::Error::custom("invalid FROST encoding"))?;
        // Canonical: frost's own serialization must reproduce the bytes.
        let again = zeroize::Zeroizing::new(value.to_frost_bytes());
        if again.as_deref() != Some(&bytes.0[..]) {
            return Err(serde::de::Error::custom("non-canonical FROST encoding"));
        }
        Ok(Frost { value, bytes })
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
        for i in 0..5 {
            assert!(verify_member(&vks[i], &msgs[i], &sigs[i]).is_ok());
        }
        sigs[3].0[5] ^= 1;
        sigs[1].0[40] ^= 1;
        let items: Vec<_> = (0..5)
            .map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i]))
            .collect();
        assert_eq!(verify_many(&items), vec![1, 3]);
        assert!(verify_member(&vks[3], &msgs[3], &sigs[3]).is_err());
        assert!(verify_strict(&vks[0], &msgs[0], &sigs[0]).is_ok());
        assert_eq!(
            verify_strict(&vks[0], &msgs[1], &sigs[0]),
            Err(SignatureError::BadSignature)
        );
        assert!(verify_member(&vks[0], &msgs[1], &sigs[0]).is_err());
    }

    /// A signature whose R carries an 8-torsion component: valid under the cofactored equation,
    /// invalid under RFC 8032's cofactorless one (what `verify_strict` checks).
    pub(super) fn torsion_signature(key: &SecretKey, message: &[u8], torsion: usize) -> Signature {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        let h = Sha512::digest(key.seed().as_slice());
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a);
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(message).into());
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion]).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(key.public().0)
                .chain_update(message),
        );
        let s = r + k * a;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(big_r.as_bytes());
        out[32..].copy_from_slice(s.as_bytes());
        Signature(out)
    }

    #[test]
    fn torsion_in_r_is_judged_the_same_alone_and_in_every_batch() {
        // The cofactorless batch accepted such a signature for some coefficient draws and the
        // strict fallback refused it: two rules. Now one rule decides, whatever the batch.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let keys: Vec<SecretKey> = (0..8).map(|_| SecretKey::generate(&mut rng)).collect();
        let vks: Vec<_> = keys
            .iter()
            .map(|k| k.public().verifying_key().unwrap())
            .collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 40]).collect();
        for torsion in 1..8 {
            let sigs: Vec<Signature> = (0..8)
                .map(|i| {
                    if i % 2 == 0 {
                        torsion_signature(&keys[i], &msgs[i], torsion)
                    } else {
                        keys[i].sign(&msgs[i])
                    }
                })
                .collect();
            for i in (0..8).step_by(2) {
                assert!(verify_strict(&vks[i], &msgs[i], &sigs[i]).is_err());
                assert!(verify_member(&vks[i], &msgs[i], &sigs[i]).is_ok());
            }
            for len in 1..=8 {
                let items: Vec<_> = (0..len)
                    .map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i]))
                    .collect();
                assert!(verify_many(&items).is_empty(), "torsion {torsion}, {len}");
            }
        }
    }

    #[test]
    fn non_canonical_and_small_order_parts_fail_alone_and_in_batches() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let key = SecretKey::generate(&mut rng);
        let vk = key.public().verifying_key().unwrap();
        let good = key.sign(b"m");
        // s + l: the same scalar, not reduced.
        let mut unreduced = good;
        let s = Scalar::from_canonical_bytes(good.0[32..].try_into().unwrap()).unwrap();
        // The group order l, little-endian.
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14,
        ]);
        l[31] = 0x10;
        unreduced.0[32..].copy_from_slice(&num_add(s.as_bytes(), &l));
        // R of small order (the identity), and a non-canonical y.
        let mut small_r = good;
        small_r.0[..32].copy_from_slice(EIGHT_TORSION[0].compress().as_bytes());
        let mut big_y = good;
        big_y.0[..32].copy_from_slice(&[0xff; 32]);
        big_y.0[31] = 0x7f;
        for bad in [unreduced, small_r, big_y] {
            assert!(verify_member(&vk, b"m", &bad).is_err());
            assert_eq!(
                verify_many(&[(&vk, b"m".as_slice(), &good), (&vk, b"m".as_slice(), &bad)]),
                vec![1]
            );
        }
        assert!(!canonical_y(&{
            let mut p = [0xffu8; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        }));
        assert!(canonical_y(&{
            let mut p = [0xffu8; 32];
            p[0] = 0xec;
            p[31] = 0x7f;
            p
        }));
    }

    /// Little-endian addition of two 32-byte numbers (the sum fits: both are below 2^253).
    fn num_add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(a[i]) + u16::from(b[i]) + carry;
            out[i] = v as u8;
            carry = v >> 8;
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn a_batch_names_exactly_the_items_that_fail_alone(
            seed in 0u64..1000,
            corrupt in proptest::collection::vec(0usize..200, 0..4),
            torsion in proptest::collection::vec(0usize..8, 6),
            distinct in 1usize..7,
        ) {
            // Items share keys (`distinct` of them), so the batch's summed per-key terms are
            // exercised with forged and torsioned signatures under one key.
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let own: Vec<SecretKey> = (0..distinct).map(|_| SecretKey::generate(&mut rng)).collect();
            let keys: Vec<&SecretKey> = (0..6).map(|i| &own[i % distinct]).collect();
            let vks: Vec<_> = keys.iter().map(|k| k.public().verifying_key().unwrap()).collect();
            let msgs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i, (seed & 0xff) as u8]).collect();
            let mut sigs: Vec<Signature> = (0..6)
                .map(|i| if torsion[i] == 0 { keys[i].sign(&msgs[i]) } else { torsion_signature(keys[i], &msgs[i], torsion[i]) })
                .collect();
            for c in &corrupt {
                sigs[c % 6].0[c % 64] ^= 1 << (c % 8);
            }
            let items: Vec<_> = (0..6).map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i])).collect();
            let alone: Vec<usize> = (0..6).filter(|i| verify_member(&vks[*i], &msgs[*i], &sigs[*i]).is_err()).collect();
            proptest::prop_assert_eq!(verify_many(&items), alone);
            // Whatever passes strict verification passes the batchable rule.
            for i in 0..6 {
                if verify_strict(&vks[i], &msgs[i], &sigs[i]).is_ok() {
                    proptest::prop_assert!(verify_member(&vks[i], &msgs[i], &sigs[i]).is_ok());
                }
            }
        }
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
