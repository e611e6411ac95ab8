#![no_main]
//! libFuzzer driver; the check lives in `src/apiserver_json.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::apiserver_json::check(data));
