//! The site-mode variant of `examples/cockroachdb-multiregion/` (`site/*.yaml`): three crossdns,
//! one per region, each watching only its own cluster (its folder) and following the other two
//! regions by zone transfer signed with `site/sites.key`. Each file passes `crossdns check`;
//! run together (the real binary, on free ports instead of 5301-5303), every site answers every
//! name of the join list (`generated/join.txt`, what `generate join` prints from the watch-all
//! config) with the same address, and the clusterset SRV with all nine members; `generate
//! join` refuses a site config by naming the transferred cluster.

mod interop_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use interop_support::{
    Proc, Transport, free_dns_port, query, start_dns_daemon, summarize, wait_rcode,
};

const REGIONS: [&str; 3] = ["us-east1", "us-west1", "eu-west1"];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cockroachdb-multiregion")
}

fn crossdns(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("CROSSDNS_LOG", "warn")
        .output()
        .expect("run crossdns")
}

#[test]
fn each_site_config_passes_crossdns_check() {
    for r in REGIONS {
        let path = example().join(format!("site/{r}.yaml"));
        let out = crossdns(&["check"], &path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        // Its own cluster from its folder, the other two by transfer.
        assert_eq!(text.matches(" manifests ").count(), 1, "{text}");
        assert_eq!(text.matches(" primary 127.0.0.1:").count(), 2, "{text}");
    }
}

#[test]
fn generate_join_refuses_a_site_config_by_naming_the_transferred_cluster() {
    let out = crossdns(
        &[
            "generate",
            "join",
            "--statefulset",
            "cockroachdb/cockroachdb",
        ],
        &example().join("site/us-east1.yaml"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster us-west1 comes from a `primary:` source"),
        "{err}"
    );
}

/// The example's three files with their ports moved to free ones, in `dir`.
fn site_configs(dir: &Path) -> Vec<(PathBuf, u16)> {
    let ports: Vec<(u16, u16)> = REGIONS
        .iter()
        .map(|_| (free_dns_port(), free_dns_port()))
        .collect();
    std::fs::copy(example().join("site/sites.key"), dir.join("sites.key")).expect("key");
    REGIONS
        .iter()
        .map(|r| {
            let mut text =
                std::fs::read_to_string(example().join(format!("site/{r}.yaml"))).expect("read");
            for (i, (dns, admin)) in ports.iter().enumerate() {
                text = text
                    .replace(
                        &format!("127.0.0.1:530{}", i + 1),
                        &format!("127.0.0.1:{dns}"),
                    )
                    .replace(
                        &format!("127.0.0.1:930{}", i + 1),
                        &format!("127.0.0.1:{admin}"),
                    );
            }
            let clusters = example().join("clusters");
            text = text.replace("../clusters/", &format!("{}/", clusters.display()));
            let path = dir.join(format!("{r}.yaml"));
            std::fs::write(&path, text).expect("write");
            let i = REGIONS.iter().position(|x| x == r).expect("region");
            (path, ports[i].0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sites_answer_the_join_names_and_the_clusterset_alike() {
    interop_support::init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sites: Vec<(Proc, std::net::SocketAddr)> = Vec::new();
    for (path, port) in site_configs(dir.path()) {
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let site = start_dns_daemon(
            &format!("crossdns-{name}"),
            dir.path(),
            Some(port),
            ("clusterset.local.", RecordType::SOA),
            |_| {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossdns"));
                cmd.args(["serve", "--config"]).arg(&path);
                cmd
            },
        )
        .await;
        sites.push(site);
    }
    for (_, addr) in &sites {
        for r in REGIONS {
            wait_rcode(
                *addr,
                &format!("cluster.{r}."),
                RecordType::SOA,
                ResponseCode::NoError,
                Duration::from_secs(20),
            )
            .await;
        }
    }
    let join = std::fs::read_to_string(example().join("generated/join.txt")).expect("join.txt");
    let names: Vec<String> = join
        .trim()
        .split(',')
        .map(|e| format!("{}.", e.trim_end_matches(":26257")))
        .collect();
    assert_eq!(names.len(), 9, "{join}");
    for name in &names {
        let first = summarize(&query(sites[0].1, name, RecordType::A, Transport::Udp).await);
        assert_eq!(first.rcode, ResponseCode::NoError, "{name}: {first:?}");
        assert_eq!(first.answers.len(), 1, "{name}: {first:?}");
        for (_, addr) in &sites[1..] {
            let got = summarize(&query(*addr, name, RecordType::A, Transport::Udp).await);
            assert_eq!(got, first, "{name} at {addr}");
        }
    }
    let srv = "_grpc._tcp.cockroachdb.cockroachdb.svc.clusterset.local.";
    let mut answers = Vec::new();
    for (_, addr) in &sites {
        let m = summarize(&query(*addr, srv, RecordType::SRV, Transport::Tcp).await);
        assert_eq!(m.answers.len(), 9, "{srv} at {addr}: {m:?}");
        answers.push(m);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}
