#![no_main]
// See barrage::fuzzing::api_body for the input format and the checks.
libfuzzer_sys::fuzz_target!(init: barrage::fuzzing::install_panic_hook(), |data: &[u8]| {
    barrage::fuzzing::api_body(data)
});
