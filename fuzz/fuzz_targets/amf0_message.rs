#![no_main]
// See barrage::fuzzing::amf0_message for the input format and the checks.
libfuzzer_sys::fuzz_target!(init: barrage::fuzzing::install_panic_hook(), |data: &[u8]| {
    barrage::fuzzing::amf0_message(data)
});
