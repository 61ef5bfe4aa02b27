//! `cinit::fuzzing`'s `wait_target` target; the test suite replays its corpus
//! through the same function (tests/fuzz_corpora.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cinit::fuzzing::run("wait_target", data));
