#![no_main]
//! libFuzzer driver; the check lives in `src/config_yaml.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::config_yaml::check(data));
