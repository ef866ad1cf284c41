#![no_main]
//! Fuzz target `trust_bundle`: see `accord_fuzzing::trust_bundle`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::trust_bundle(data));
