//! The treaty's policy parameters, part of the roster: [`crate::policy`] judges with them, and
//! their hash is bound into every statement.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto::Digest;

/// The policy version this code implements.
pub const POLICY_VERSION: u32 = 1;

/// Treaty limits and tolerances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyParams {
    /// Policy version; must equal [`POLICY_VERSION`].
    pub version: u32,
    /// Most training compute a lab may use in one period, in FLOP.
    pub max_training_flop: u128,
    /// Largest cluster (accelerators working together) a lab may run.
    pub max_accelerators: u64,
    /// How far an inspection may differ from the attestation before it is a violation, in
    /// basis points (1/100 of a percent) of the attested value.
    pub inspection_tolerance_bp: u32,
}

impl PolicyParams {
    /// A reasonable default: 10^25 FLOP per period, 4 096 accelerators, 5 % tolerance.
    pub fn treaty_default() -> Self {
        Self {
            version: POLICY_VERSION,
            max_training_flop: 10u128.pow(25),
            max_accelerators: 4096,
            inspection_tolerance_bp: 500,
        }
    }

    /// The hash bound into every statement.
    pub fn hash(&self) -> Digest {
        Digest::tagged("accord/policy/v1", &[&codec::encode_bounded(self)])
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// A short reason.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.version != POLICY_VERSION {
            return Err("unsupported policy version");
        }
        if self.inspection_tolerance_bp > 10_000 {
            return Err("inspection tolerance above 100 %");
        }
        Ok(())
    }
}
