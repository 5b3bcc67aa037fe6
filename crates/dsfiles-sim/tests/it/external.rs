//! External catalogues: the API lists exactly the given files, with their sizes, checksums and
//! URLs on the other server, and nothing else (the benchmark's démarche).

use anyhow::Result;
use dsfiles_sim::{ExternalFile, SimConfig};

use crate::support::{all_dossiers, files_of, sim};

fn file(path: &str, size: u64, md5: &str) -> ExternalFile {
    ExternalFile {
        path: path.to_owned(),
        size,
        md5_base64: md5.to_owned(),
        content_type: "application/pdf".to_owned(),
    }
}

#[tokio::test]
async fn the_api_lists_exactly_the_external_files() -> Result<()> {
    let base = url::Url::parse("http://127.0.0.1:9/corpus/")?;
    let groups = vec![
        vec![
            file("d0/a.pdf", 10, "AAAAAAAAAAAAAAAAAAAAAA=="),
            file("d0/b.pdf", 5_000_000_000, "BBBBBBBBBBBBBBBBBBBBBA=="),
        ],
        vec![file("d1/c.pdf", 0, "1B2M2Y8AsgTpgAmY7PhCfg==")],
        vec![file("d2/d.pdf", 7, "CCCCCCCCCCCCCCCCCCCCCA==")],
    ];
    let sim = sim(SimConfig::external_files(base, groups)).await;
    // Generated exports and entreprise attestations requested too: none may appear but pdf/geojson.
    let (dossiers, _) = all_dossiers(&sim, 2, true, true).await?;
    assert_eq!(dossiers.len(), 3);
    let mut found: Vec<_> = dossiers
        .iter()
        .flat_map(files_of)
        .filter(|f| f.source != "pdf" && f.source != "geojson")
        .collect();
    found.sort_by(|a, b| a.filename.cmp(&b.filename));
    let got: Vec<(&str, &str, u64, &str, &str)> = found
        .iter()
        .map(|f| {
            (
                f.label.as_str(),
                f.filename.as_str(),
                f.byte_size,
                f.checksum.as_str(),
                f.url.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "Annexes",
                "a.pdf",
                10,
                "AAAAAAAAAAAAAAAAAAAAAA==",
                "http://127.0.0.1:9/corpus/d0/a.pdf"
            ),
            (
                "Annexes",
                "b.pdf",
                5_000_000_000,
                "BBBBBBBBBBBBBBBBBBBBBA==",
                "http://127.0.0.1:9/corpus/d0/b.pdf"
            ),
            (
                "Annexes",
                "c.pdf",
                0,
                "1B2M2Y8AsgTpgAmY7PhCfg==",
                "http://127.0.0.1:9/corpus/d1/c.pdf"
            ),
            (
                "Annexes",
                "d.pdf",
                7,
                "CCCCCCCCCCCCCCCCCCCCCA==",
                "http://127.0.0.1:9/corpus/d2/d.pdf"
            ),
        ]
    );
    for dossier in &dossiers {
        assert_eq!(dossier["state"], "en_construction");
    }
    let truth = sim.expected_files(false, true);
    assert_eq!(truth.len(), 4, "the ground truth holds the same files");
    assert!(
        truth
            .iter()
            .all(|t| t.virus_scan == "safe" && t.checksum == t.true_md5_base64)
    );
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_unusable_path_is_a_configuration_error() {
    let base = url::Url::parse("http://127.0.0.1:9/").expect("url");
    let config = SimConfig::external_files(
        base,
        vec![vec![file("dir/", 1, "AAAAAAAAAAAAAAAAAAAAAA==")]],
    );
    let err = dsfiles_sim::start(config).await.expect_err("refused");
    assert!(err.to_string().contains("`dir/`"), "{err}");
}
