//! `seda::package` after a sync of the simulator: every package's `manifest.xml` is valid SEDA
//! 2.2 (xmllint), every digest and size is recomputed from the zip by an independent reader
//! (Python's `zipfile`), re-runs write nothing, a changed dossier gets a new version, and a
//! dossier whose file is missing or corrupt in the destination fails alone.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use dsfiles_core::extract::DossierContext;
use dsfiles_core::seda::{self, Profile, SedaOptions};
use dsfiles_core::sink::{LocalSink, Sink, SinkOptions};
use dsfiles_core::testing::assert_valid_seda;
use dsfiles_core::{CancellationToken, Shard, wire};
use dsfiles_sim::SimConfig;
use sha2::Digest as _;

use crate::support::{Env, env};

pub(crate) const PROFILE: &str = r#"
archival_agreement = "AA-DS-2026"
archival_agency = "AD075"
transferring_agency = "DDT075"
originating_agency = "DDT075"
submission_agency = "DS"
[appraisal]
rule = "APP-00010"
final_action = "Keep"
[access]
rule = "ACC-00001"
"#;

pub(crate) struct Out {
    pub sink: Arc<dyn Sink>,
    pub dir: tempfile::TempDir,
}

pub(crate) fn out() -> anyhow::Result<Out> {
    let dir = tempfile::tempdir()?;
    let options = SinkOptions {
        fsync: false,
        ..SinkOptions::default()
    };
    let sink: Arc<dyn Sink> = Arc::new(LocalSink::open(dir.path(), options)?);
    Ok(Out { sink, dir })
}

pub(crate) fn options(profile: &str) -> SedaOptions {
    let mut opts = SedaOptions::new(Profile::from_toml(profile, "test").unwrap());
    // Every state: the simulator's hostile filenames are on its first dossier, whatever its state.
    opts.states = seda::STATES.map(str::to_owned).to_vec();
    opts
}

pub(crate) async fn package(
    env: &Env,
    out: &Out,
    opts: SedaOptions,
) -> anyhow::Result<wire::SedaReport> {
    Ok(seda::package(
        Arc::clone(&env.sink),
        Arc::clone(&out.sink),
        opts,
        dsfiles_core::no_progress(),
        CancellationToken::new(),
    )
    .await?)
}

/// A `dossier.json` (version 1) for `shard`, built with the writer's own types
/// ([`wire::DossierData`]) so that it is byte for byte what the sync writes.
fn dossier_json(shard: &Shard, title: &str) -> Bytes {
    let context = serde_json::json!({
        "demarche": {"number": shard.demarche, "title": title, "service": "DDT\u{0}75", "revision": null},
        "dossier": {"number": shard.dossier, "id": "RG9zc2llcg==", "state": shard.state,
            "groupe_instructeur": {"number": 1, "label": "Paris"},
            "deposited_at": "2026-01-05T09:30:00+01:00", "updated_at": null,
            "instruction_started_at": null, "processed_at": "2026-02-10T17:00:00+01:00"},
        "applicant": {"kind": "person", "civilite": "M", "nom": "Martin <&>", "prenom": "Léo"},
        "champs": [{"id": "c1", "label": "Annexes volumineuses", "type": "PieceJustificativeChamp",
            "value": null, "rows": null}],
        "annotations": [],
        "messages": [{"id": "m1", "created_at": "2026-01-06T10:00:00+01:00",
            "sender": "leo@example.org", "body": "Bonjour\u{7}"}],
        "avis": [{"id": "a1", "question": "Avis ?", "answer": null, "expert": null, "created_at": null}],
        "decision": {"motivation": "Dossier complet", "processed_at": "2026-02-10T17:00:00+01:00"},
    });
    let context: DossierContext = serde_json::from_value(context).unwrap();
    Bytes::from(wire::DossierData::new(context, &shard.files).to_bytes())
}

/// Sync options without `dossier.json`: a destination synced before the sync wrote it,
/// whose shards have no `data` (the tests put their own `dossier.json` where
/// `--dossier-json` says).
pub(crate) fn without_data(env: &Env) -> dsfiles_core::SyncOptions {
    dsfiles_core::SyncOptions {
        data: Some(dsfiles_core::DataOutput::Off),
        ..env.options()
    }
}

/// Runs `script` with python3 and `args`; its stdout, or the failure.
fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed to read the zips independently");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Opens the zip with Python's `zipfile` (CRCs checked), extracts `manifest.xml` to `to`, and
/// recomputes every `BinaryDataObject`'s digest and size from the zip's entries; also checks
/// that the manifest names every entry and the last entry is `manifest.xml`.
const CHECK_ZIP: &str = r#"
import hashlib, sys, zipfile, xml.etree.ElementTree as ET
ns = {"s": "fr:gouv:culture:archivesdefrance:seda:v2.2"}
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad CRC: %s" % bad
names = z.namelist()
assert names[-1] == "manifest.xml", names
assert all(n.startswith("Content/") for n in names[:-1]), names
assert len(set(names)) == len(names), names
data = z.read("manifest.xml")
open(sys.argv[2], "wb").write(data)
root = ET.fromstring(data)
uris = []
for o in root.iter("{%s}BinaryDataObject" % ns["s"]):
    uri = o.find("s:Uri", ns).text
    digest = o.find("s:MessageDigest", ns)
    size = o.find("s:Size", ns)
    body = z.read(uri)
    h = hashlib.new(digest.get("algorithm").replace("-", "").lower(), body).hexdigest()
    assert h == digest.text, (uri, h, digest.text)
    assert (int(size.text) if size is not None else 0) == len(body), (uri, len(body))
    assert size is None or len(body) > 0, uri
    uris.append(uri)
assert sorted(uris) == sorted(names[:-1]), (uris, names)
print(len(uris))
"#;

/// `unzip -t`, a second independent reader, where installed.
fn unzip_test(zip: &Path) {
    if let Ok(out) = Command::new("unzip").arg("-tqq").arg(zip).output() {
        assert!(
            out.status.success(),
            "unzip -t {}: {}{}",
            zip.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Checks every package of `report` in `out`; returns the objects counted.
pub(crate) fn check_packages(out: &Out, report: &wire::SedaReport) -> u64 {
    let mut objects = 0;
    for p in &report.packaged {
        let zip = out.dir.path().join(&p.key);
        let manifest = out.dir.path().join(format!("{}.manifest.xml", p.dossier));
        let count: u64 = python(CHECK_ZIP, &[&zip, &manifest])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(count, p.objects, "{}", p.key);
        assert_eq!(std::fs::metadata(&zip).unwrap().len(), p.bytes);
        assert_valid_seda(&manifest);
        std::fs::remove_file(&manifest).unwrap();
        unzip_test(&zip);
        objects += count;
    }
    objects
}

/// Everything in `dir` but dsfiles' state, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".dsfiles/"))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            for (k, s) in walk(&path) {
                out.push((format!("{}/{k}", entry.file_name().to_string_lossy()), s));
            }
        } else {
            let size = entry.metadata().unwrap().len();
            out.push((entry.file_name().to_string_lossy().into_owned(), size));
        }
    }
    out
}

#[tokio::test]
async fn packages_are_valid_complete_and_incremental() -> anyhow::Result<()> {
    let env = env(SimConfig {
        big_files: vec![3 * 1024 * 1024 + 17],
        ..SimConfig::default()
    })
    .await?;
    env.sync(without_data(&env)).await?;
    let shards = env.shards().await?;
    let with_context = *shards.keys().nth(1).unwrap();
    let title = "Démarche <test> & \u{1} co";
    let key = format!("{with_context}/dossier.json");
    env.sink
        .put_small(&key, dossier_json(&shards[&with_context], title))
        .await?;
    let out = out()?;

    let report = package(&env, &out, options(PROFILE)).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let live: Vec<u64> = shards.keys().copied().collect();
    let packaged: Vec<u64> = report.packaged.iter().map(|p| p.dossier).collect();
    assert_eq!(packaged, live);
    let files: usize = shards
        .values()
        .map(|s| {
            s.files
                .iter()
                .filter(|f| f.status != dsfiles_core::FileStatus::RemovedUpstream)
                .count()
        })
        .sum();
    assert_eq!(check_packages(&out, &report), files as u64 + 1);
    // One warning per dossier without dossier.json, none for the one with it.
    assert_eq!(
        report.warnings.len(),
        live.len() - 1,
        "{:#?}",
        report.warnings
    );
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains(&format!("`{with_context}`")))
    );
    let manifest = python(
        "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('manifest.xml').decode())",
        &[&out.dir.path().join(format!("{with_context}.zip"))],
    );
    assert!(
        manifest.contains("<BirthName>Martin &lt;&amp;&gt;</BirthName>"),
        "{manifest}"
    );
    assert!(manifest.contains("<Title>Dossier"), "{manifest}");
    assert!(
        manifest.contains(
            "Content/{with_context}/dossier.json"
                .replace("{with_context}", &with_context.to_string())
                .as_str()
        )
    );

    // A re-run writes nothing.
    let before = listing(out.dir.path());
    let again = package(&env, &out, options(PROFILE)).await?;
    assert!(again.packaged.is_empty(), "{:#?}", again.packaged);
    assert_eq!(again.unchanged, live);
    assert_eq!(listing(out.dir.path()), before);

    // A changed dossier.json: a second version beside the first.
    env.sink
        .put_small(&key, dossier_json(&shards[&with_context], "Autre titre"))
        .await?;
    let changed = package(&env, &out, options(PROFILE)).await?;
    assert_eq!(changed.packaged.len(), 1, "{changed:#?}");
    assert_eq!(changed.packaged[0].key, format!("{with_context}-v2.zip"));
    assert_eq!(changed.packaged[0].package_version, 2);
    check_packages(&out, &changed);
    assert!(out.dir.path().join(format!("{with_context}.zip")).exists());
    let record: wire::SedaRecord = serde_json::from_slice(
        &out.sink
            .get_small(&wire::seda_record_key(with_context))
            .await?
            .unwrap(),
    )?;
    assert_eq!(record.packages.len(), 2);

    // A package deleted from OUT is written again, never vouched for by its record alone.
    std::fs::remove_file(out.dir.path().join(format!("{with_context}-v2.zip")))?;
    let repaired = package(&env, &out, options(PROFILE)).await?;
    assert_eq!(repaired.packaged.len(), 1, "{repaired:#?}");
    assert_eq!(repaired.packaged[0].key, format!("{with_context}-v3.zip"));
    assert!(
        repaired.warnings.iter().any(|w| w.contains("is missing")),
        "{:#?}",
        repaired.warnings
    );
    check_packages(&out, &repaired);
    Ok(())
}

#[tokio::test]
async fn a_missing_or_corrupt_file_fails_its_dossier_alone() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let shards = env.shards().await?;
    let mut with_files = shards.values().filter(|s| !s.files.is_empty());
    let missing = with_files.next().unwrap();
    let corrupt = with_files.next().unwrap();
    let gone = &missing.files[0].key;
    std::fs::remove_file(env.dir.path().join(gone))?;
    let damaged = corrupt.files.iter().find(|f| f.size > 0).unwrap();
    let mut bytes = std::fs::read(env.dir.path().join(&damaged.key))?;
    bytes[0] ^= 0xff;
    std::fs::write(env.dir.path().join(&damaged.key), bytes)?;
    let out = out()?;

    let report = package(&env, &out, options(PROFILE)).await?;
    let mut failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.dossier, f.key.clone()))
        .collect();
    failed.sort();
    let mut expected = vec![
        (missing.dossier, Some(gone.clone())),
        (corrupt.dossier, Some(damaged.key.clone())),
    ];
    expected.sort();
    assert_eq!(failed, expected, "{:#?}", report.failed);
    assert!(report.failed.iter().any(|f| f.reason.contains("missing")));
    assert!(
        report
            .failed
            .iter()
            .any(|f| f.reason.contains("SHA-256") || f.reason.contains("MD5"))
    );
    assert_eq!(report.packaged.len(), shards.len() - 2);
    assert_eq!(report.exit_status(), dsfiles_core::RunStatus::FilesFailed);
    check_packages(&out, &report);
    // Nothing of the failed dossiers is visible, and no temporary file is left.
    let names: Vec<String> = listing(out.dir.path())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected: Vec<String> = report.packaged.iter().map(|p| p.key.clone()).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(names, expected);
    assert!(
        out.sink
            .get_small(&wire::seda_record_key(missing.dossier))
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn packages_go_to_an_object_store_with_sha256() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let memory = dsfiles_core::sink::memory();
    // Top-level keys go before the tables of PROFILE.
    let profile =
        format!("digest = \"SHA-256\"\npackage_name = \"sip/{{state}}/{{dossier}}\"\n{PROFILE}");
    let report = seda::package(
        Arc::clone(&env.sink),
        Arc::clone(&memory),
        options(&profile),
        dsfiles_core::no_progress(),
        CancellationToken::new(),
    )
    .await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(!report.packaged.is_empty());
    // Copy each zip out of the object store to read it independently.
    let local = out()?;
    for p in &report.packaged {
        assert!(!p.key.contains('/'), "the name is one segment: {}", p.key);
        let bytes = memory.get_small(&p.key).await?.expect("the package");
        std::fs::write(local.dir.path().join(&p.key), &bytes)?;
    }
    check_packages(&local, &report);
    Ok(())
}

#[tokio::test]
async fn dossier_json_listed_in_the_shard_is_packaged_once() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let mut shard = env.shards().await?.into_values().next().unwrap();
    let key = format!("{}/dossier.json", shard.dossier);
    let json = dossier_json(&shard, "Titre");
    env.sink.put_small(&key, json.clone()).await?;
    let mut entry = shard.files[0].clone();
    entry.file_id = format!("{}/dossier.json", shard.dossier);
    entry.key = key;
    entry.size = json.len() as u64;
    entry.checksum = String::new();
    entry.status = dsfiles_core::FileStatus::Unverified;
    entry.sha256 = hex::encode(sha2::Sha256::digest(&json));
    shard.files.push(entry);
    let shard_key = wire::shard_key(shard.dossier);
    env.sink
        .put_small(&shard_key, Bytes::from(serde_json::to_vec(&shard)?))
        .await?;
    let out = out()?;
    let mut opts = options(PROFILE);
    opts.dossiers = vec![shard.dossier];
    let report = package(&env, &out, opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let live = shard
        .files
        .iter()
        .filter(|f| f.status != dsfiles_core::FileStatus::RemovedUpstream)
        .count();
    // Every file but the listed dossier.json, plus dossier.json once.
    assert_eq!(check_packages(&out, &report), live as u64);
    Ok(())
}

#[tokio::test]
async fn only_selected_states_and_dossiers_are_packaged() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(without_data(&env)).await?;
    let shards = env.shards().await?;
    let out = out()?;
    let terminated: Vec<u64> = shards
        .values()
        .filter(|s| seda::DEFAULT_STATES.contains(&s.state.as_str()))
        .map(|s| s.dossier)
        .collect();
    let mut opts = options(PROFILE);
    opts.states = seda::DEFAULT_STATES.map(str::to_owned).to_vec();
    let report = package(&env, &out, opts.clone()).await?;
    let packaged: Vec<u64> = report.packaged.iter().map(|p| p.dossier).collect();
    assert_eq!(packaged, terminated);

    let open = shards
        .values()
        .find(|s| !terminated.contains(&s.dossier))
        .unwrap()
        .dossier;
    opts.dossiers = vec![open, 999_999_999];
    let report = package(&env, &out, opts).await?;
    assert!(report.packaged.is_empty());
    assert_eq!(report.failed.len(), 1, "{report:#?}");
    assert!(
        report.failed[0].reason.contains("never synced"),
        "{report:#?}"
    );
    assert!(
        report.warnings[0].contains(&format!("`{open}`")),
        "{report:#?}"
    );
    Ok(())
}

/// The zip entry names and `manifest.xml` of the package at `key` in `out`.
fn entries_and_manifest(out: &Out, key: &str) -> (Vec<String>, String) {
    let zip = out.dir.path().join(key);
    let names = python(
        "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        &[&zip],
    );
    let manifest = python(
        "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('manifest.xml').decode())",
        &[&zip],
    );
    (names.lines().map(str::to_owned).collect(), manifest)
}

/// Packages what a sync wrote, dossier.json included; checks that every package holds the
/// dossier.json its shard records and that its manifest carries the applicant and dates.
async fn package_a_synced_destination(env: &Env) -> anyhow::Result<()> {
    let shards = env.shards().await?;
    let out = out()?;
    let report = package(env, &out, options(PROFILE)).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("package built from the manifest alone")),
        "{:#?}",
        report.warnings
    );
    assert_eq!(report.packaged.len(), shards.len());
    let (mut senders, mut starts, mut ends) = (0, 0, 0);
    for p in &report.packaged {
        let data = shards[&p.dossier]
            .data
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("dossier `{}` has no data", p.dossier))?;
        let bytes = env.sink.get_small(&data.key).await?.unwrap_or_default();
        let context = wire::DossierData::parse(&bytes)?.context;
        let (names, manifest) = entries_and_manifest(&out, &p.key);
        let entry = format!("Content/{}", data.key);
        assert!(names.contains(&entry), "{entry} not in {names:?}");
        assert!(
            manifest.contains(&format!("<Uri>{entry}</Uri>")),
            "{manifest}"
        );
        // Each fact the dossier has is in the manifest; the sim has some of each.
        if context.applicant.is_some() {
            assert!(manifest.contains("<Role>Demandeur</Role>"), "{manifest}");
            senders += 1;
        }
        if context.dossier.deposited_at.is_some() {
            assert!(manifest.contains("<StartDate>"), "{manifest}");
            starts += 1;
        }
        if context.dossier.processed_at.is_some() {
            assert!(manifest.contains("<EndDate>"), "{manifest}");
            ends += 1;
        }
    }
    assert!(
        senders > 0 && starts > 0 && ends > 0,
        "{senders} {starts} {ends}"
    );
    // Every object, dossier.json included, re-digested from the zip; xmllint validates.
    let files: usize = shards
        .values()
        .map(|s| {
            s.files
                .iter()
                .filter(|f| f.status != dsfiles_core::FileStatus::RemovedUpstream)
                .count()
        })
        .sum();
    assert_eq!(
        check_packages(&out, &report),
        (files + report.packaged.len()) as u64
    );
    Ok(())
}

#[tokio::test]
async fn a_synced_dossier_json_is_found_through_the_shard() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let report = env.sync(env.options()).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    package_a_synced_destination(&env).await
}

#[tokio::test]
async fn a_dossier_json_at_a_custom_data_layout_is_found_through_the_shard() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    let opts = dsfiles_core::SyncOptions {
        data: Some(dsfiles_core::DataOutput::At(
            dsfiles_core::extract::DataLayout::parse("data/{demarche}-{dossier}.json")?,
        )),
        ..env.options()
    };
    let report = env.sync(opts).await?;
    assert!(report.failed.is_empty(), "{:#?}", report.failed);
    let shards = env.shards().await?;
    assert!(
        shards
            .values()
            .all(|s| s.data.as_ref().is_some_and(|d| d.key.starts_with("data/"))),
        "{shards:#?}"
    );
    // `--dossier-json` keeps its default, where nothing is: the shard is what is read.
    package_a_synced_destination(&env).await
}

#[tokio::test]
async fn a_dossier_json_not_what_the_shard_recorded_fails_its_dossier() -> anyhow::Result<()> {
    let env = env(SimConfig::default()).await?;
    env.sync(env.options()).await?;
    let shards = env.shards().await?;
    let mut numbers = shards.keys().copied();
    let (changed, gone) = (numbers.next().unwrap(), numbers.next().unwrap());
    let changed_key = shards[&changed].data.as_ref().unwrap().key.clone();
    let gone_key = shards[&gone].data.as_ref().unwrap().key.clone();
    // Valid JSON of the right dossier, but not the bytes the sync wrote.
    let other = dossier_json(&shards[&changed], "Titre changé");
    env.sink.put_small(&changed_key, other).await?;
    std::fs::remove_file(env.dir.path().join(&gone_key))?;
    let out = out()?;

    let report = package(&env, &out, options(PROFILE)).await?;
    let mut failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.dossier, f.key.clone()))
        .collect();
    failed.sort();
    let mut expected = vec![(changed, Some(changed_key)), (gone, Some(gone_key))];
    expected.sort();
    assert_eq!(failed, expected, "{:#?}", report.failed);
    let reason = |n: u64| {
        &report
            .failed
            .iter()
            .find(|f| f.dossier == n)
            .unwrap()
            .reason
    };
    assert!(reason(changed).contains("SHA-256"), "{}", reason(changed));
    assert!(reason(gone).contains("missing"), "{}", reason(gone));
    assert_eq!(report.packaged.len(), shards.len() - 2);
    check_packages(&out, &report);
    Ok(())
}
