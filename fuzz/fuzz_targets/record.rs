#![no_main]
//! Fuzz target `record`: see `accord_fuzzing::record`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::record(data));
