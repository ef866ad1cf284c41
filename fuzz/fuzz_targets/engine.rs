#![no_main]
//! Fuzz target `engine`: see `accord_fuzzing::engine`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::engine(data));
