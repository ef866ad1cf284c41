#![no_main]
//! Fuzz target `message`: see `accord_fuzzing::message`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::message(data));
