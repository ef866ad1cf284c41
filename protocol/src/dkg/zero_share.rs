//! The share check of a refresh ceremony.
//!
//! A refresh dealer's polynomial has a zero constant term, and its round-1 package commits only
//! to the t − 1 other coefficients (frost `refresh_dkg_part1` drops the identity commitment). frost
//! checks the shares inside `refresh_dkg_shares` but does not say whose share failed, and the
//! constructor it would take to check one share alone is crate-private. This module checks one
//! share the way frost does, so a refresh names its culprit as the DKG does.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;
use frost_ed25519::keys::dkg;

use crate::roster::MemberIndex;

/// Whether `share`, sent to `recipient`, lies on the zero-constant polynomial that `package`
/// commits to: `g^{f(i)} = ∏_{k=1}^{t-1} φ_k^{i^k}` (frost's Round 2, Step 2 with φ_0 the
/// identity).
pub(crate) fn valid(
    recipient: MemberIndex,
    share: &dkg::round2::Package,
    package: &dkg::round1::Package,
) -> bool {
    let Some(x) = scalar(&recipient.identifier().serialize()) else {
        return false;
    };
    let Some(value) = scalar(&share.signing_share().serialize()) else {
        return false;
    };
    let Ok(commitments) = package.commitment().serialize() else {
        return false;
    };
    let mut expected = EdwardsPoint::identity();
    let mut power = Scalar::ONE;
    for c in &commitments {
        power *= x;
        let Some(point) = point(c) else {
            return false;
        };
        expected += point * power;
    }
    ED25519_BASEPOINT_POINT * value == expected
}

fn scalar(bytes: &[u8]) -> Option<Scalar> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    Option::from(Scalar::from_canonical_bytes(bytes))
}

fn point(bytes: &[u8]) -> Option<EdwardsPoint> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    CompressedEdwardsY(bytes).decompress()
}
