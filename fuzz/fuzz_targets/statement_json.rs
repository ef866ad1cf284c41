#![no_main]
//! Fuzz target `statement_json`: see `accord_fuzzing::statement_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::statement_json(data));
