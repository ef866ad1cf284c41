#![no_main]
//! Fuzz target `witness`: see `accord_fuzzing::witness`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::witness(data));
