#![no_main]
// See barrage::fuzzing::media_tags for the input format and the checks.
libfuzzer_sys::fuzz_target!(init: barrage::fuzzing::install_panic_hook(), |data: &[u8]| {
    barrage::fuzzing::media_tags(data)
});
