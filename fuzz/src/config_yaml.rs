//! Config: arbitrary text through `Settings::from_yaml` (strict serde, then
//! validation). A config that is refused names its file in the message; a
//! config that is accepted prints its zone table and builds an answer
//! engine and a forwarder, as `crossdns serve` would, without panicking.

use std::path::Path;
use std::sync::Arc;

use crossdns::answer::Engine;
use crossdns::config::{ForwardSettings, Settings, Upstream};
use crossdns::forward::Forwarder;
use crossdns::index::{ClusterHandle, ClusterSpec};
use crossdns::zones::ZoneTable;

const PATH: &str = "/nonexistent/crossdns-fuzz.yaml";

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // Settings::load reads the file with read_to_string
    };
    match Settings::from_yaml(text, Path::new(PATH)) {
        Ok(settings) => {
            let _ = settings.zone_table();
            let handles: Vec<_> = ClusterSpec::all(&settings)
                .into_iter()
                .map(|spec| Arc::new(ClusterHandle::new(spec)))
                .collect();
            let zones = ZoneTable::new(&settings);
            let apexes: std::collections::HashSet<_> = zones.iter().map(|z| &z.apex).collect();
            assert_eq!(apexes.len(), zones.len(), "two zones with one name");
            let _engine = Engine::new(&settings, &zones, &handles);
            // TLS upstreams read CA files or the system's roots (I/O, and
            // slow); plain ones need nothing, so setting them up cannot fail.
            let plain =
                |f: &ForwardSettings| f.upstreams.iter().all(|u| matches!(u, Upstream::Plain(_)));
            if settings.forward.iter().all(plain) {
                Forwarder::new(&settings.forward, &zones).expect("plain upstreams need no I/O");
            }
        }
        Err(e) => assert!(
            e.to_string().contains(PATH),
            "the error does not name the file: {e}"
        ),
    }
}
