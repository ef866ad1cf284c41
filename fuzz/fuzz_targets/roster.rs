#![no_main]
//! Fuzz target `roster`: see `accord_fuzzing::roster`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::roster(data));
