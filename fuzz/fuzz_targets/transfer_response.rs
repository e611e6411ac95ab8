#![no_main]
//! libFuzzer driver; the check lives in `src/transfer_response.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossdns_fuzz::transfer_response::check(data));
