#![no_main]
//! Fuzz target `signed_note`: see `accord_fuzzing::signed_note`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| accord_fuzzing::signed_note(data));
