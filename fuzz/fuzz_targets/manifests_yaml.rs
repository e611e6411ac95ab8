#![no_main]
//! libFuzzer driver; the check lives in `src/manifests_yaml.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::manifests_yaml::check(data));
