//! Manifests: arbitrary text as one file of a `manifests:` folder, through
//! `crossdns::watch::parse_documents` (multi-document YAML, `kind: List`);
//! what parses must then index and publish, as the file's source would.
//! Text that is not YAML fails the file with an error, never a panic.

use crossdns::index::Change;
use crossdns::watch::parse_documents;

use super::world;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the source reads files with read_to_string: not UTF-8 is an I/O error
    };
    match parse_documents(text) {
        Ok(parsed) => {
            for why in &parsed.skipped {
                assert!(!why.is_empty(), "a skipped object without a reason");
            }
            world::index(vec![Change::ResetSource(
                "fuzz.yaml".to_owned(),
                parsed.objects,
            )]);
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
}
