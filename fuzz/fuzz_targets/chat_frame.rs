#![no_main]
// See barrage::fuzzing::chat_frame for the input format and the checks.
libfuzzer_sys::fuzz_target!(init: barrage::fuzzing::install_panic_hook(), |data: &[u8]| {
    barrage::fuzzing::chat_frame(data)
});
