#![no_main]
//! libFuzzer driver; the check lives in `src/query.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::query::check(data));
