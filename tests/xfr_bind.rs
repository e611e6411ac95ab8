//! named (BIND 9) as a secondary of crossdns, loaded from `crossdns
//! generate bind` output (design.md §7): it follows both cluster zones and
//! the catalog by AXFR, then by IXFR on each change at the test apiserver
//! (told by a signed NOTIFY), TSIG-signed throughout; its answer table
//! equals crossdns's before and after, and the change is answered within
//! the contract's 1 s.

mod xfr_support;

use xfr_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_from_generate_bind_follows_by_axfr_then_ixfr_with_tsig_and_notify() {
    let Some(progs) = require(&["named"]) else {
        return;
    };
    let named = &progs["named"];
    let followed = follows(
        "bind",
        async |dir: &std::path::Path, port, fragment: String| {
            assert!(
                fragment.contains(&format!("secret \"{}\";", secret_b64())),
                "{fragment}"
            );
            for l in fragment
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
            {
                assert!(
                    !l.starts_with("options") && !l.starts_with("server"),
                    "a fragment has no options or server statement: {l:?}\n{fragment}"
                );
            }
            named_secondary(named, dir, port, &fragment).await
        },
    )
    .await;
    let log = followed.secondary.log();
    for bad in [
        "tsig verify failure",
        "expected a TSIG",
        "bad sig",
        "failed while receiving",
    ] {
        assert!(!log.contains(bad), "named logged {bad:?}:\n{log}");
    }
    // BIND 9.18 says "Transfer completed" for each; the IXFRs are counted
    // by crossdns (`follows`).
    assert!(log.matches("Transfer completed").count() >= 5, "{log}");
}
