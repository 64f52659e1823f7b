#![no_main]
// See barrage::fuzzing::rtmp_session for the input format and the checks.
libfuzzer_sys::fuzz_target!(init: barrage::fuzzing::install_panic_hook(), |data: &[u8]| {
    barrage::fuzzing::rtmp_session(data)
});
