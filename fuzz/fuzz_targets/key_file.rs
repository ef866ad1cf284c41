#![no_main]
//! Fuzz target `key_file`: see `accord_fuzzing::key_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::key_file(data));
