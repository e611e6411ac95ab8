#![no_main]
//! libFuzzer driver; the check lives in `src/upstream_reply.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::upstream_reply::check(data));
