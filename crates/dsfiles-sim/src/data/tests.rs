//! The seeded démarche is pinned: the same config must keep giving byte-identical dossiers and
//! files, whatever shape the builder takes. Two hashes per config: the files alone (ids,
//! names, sizes, bytes — the ground truth tests compare with, which must never move), and
//! everything (the JSON too, which legitimately grows with new dossier data).

use chrono::{TimeZone as _, Utc};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{DossierExtras, State, base_time, dossier_spacing};
use crate::SimConfig;

/// Everything the state holds about its dossiers and files, as one JSON document.
fn snapshot(state: &State) -> Value {
    let dossiers: Vec<Value> = state
        .dossiers
        .values()
        .map(|d| {
            json!({
                "number": d.number, "state": d.state, "archived": d.archived,
                "created_at": d.created_at, "updated_at": d.updated_at, "groupe": d.groupe,
                "json": state.dossier_json(d), "files": d.files,
            })
        })
        .collect();
    let deleted: Vec<Value> = state
        .deleted
        .iter()
        .map(|d| json!([d.number, d.state, d.reason, d.deleted_at]))
        .collect();
    json!({
        "demarche": state.demarche_json,
        "groupes": state.groupes,
        "dossiers": dossiers,
        "deleted": deleted,
        "expected": state.expected(true, true),
    })
}

fn sha256(value: &Value) -> String {
    hex::encode(sha2::Sha256::digest(value.to_string().as_bytes()))
}

/// The files of every dossier and the ground truth, without any dossier JSON.
fn files(state: &State) -> Value {
    let files: Vec<Value> = state
        .dossiers
        .values()
        .map(|d| json!([d.number, d.files]))
        .collect();
    json!({"files": files, "expected": state.expected(true, true)})
}

/// Pins for one config: the files, then everything.
struct Pins {
    files: &'static str,
    all: &'static str,
}

#[track_caller]
fn check(config: SimConfig, added: usize, expected: Pins) {
    let mut state = State::build(&config);
    let now = chrono::Utc
        .with_ymd_and_hms(2024, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for _ in 0..added {
        state.add_dossier(DossierExtras::default(), Some(now));
    }
    let what = format!("{config:?} + {added}");
    assert_eq!(sha256(&files(&state)), expected.files, "files of {what}");
    assert_eq!(sha256(&snapshot(&state)), expected.all, "{what}");
}

#[test]
fn the_seeded_demarche_is_pinned() {
    let big = || SimConfig {
        dossiers: 25,
        files_per_dossier: 0..=9,
        big_files: vec![70_000, 3],
        ..SimConfig::default()
    };
    check(
        SimConfig::default(),
        0,
        Pins {
            files: "e65c0fbf150c8a84a0094490d21d9cc2c1f8a0a7c82274f42c96be4e745f68b9",
            all: "fb011c3c16ff5ff14fdaed0526c32c9c9dc9a10259b0423e34c8a3b92d4edc8e",
        },
    );
    check(
        big(),
        2,
        Pins {
            files: "c6c18a608e50941a481367131c0b626f8d56ff8ac21142795cbe60716522f356",
            all: "24648ecc6f60195a0caba51cb1847612d91f11767ea655ff358c961a62fed931",
        },
    );
    check(
        SimConfig {
            seed: 7,
            groupes: 3,
            hostile_filenames: false,
            ..big()
        },
        0,
        Pins {
            files: "b695aff2bb0d416d97e8f606639d0a099e3c1f7e2eb35288ecee4e9be89aae1a",
            all: "ee58d690761e32f858701126192d626e1da3294cd4842b8a95d18c60732dc6dc",
        },
    );
}

#[test]
fn a_touch_moves_the_dossier_dates_not_the_champs() {
    let mut state = State::build(&SimConfig::default());
    let number = state.dossiers.keys().nth(2).copied().unwrap_or_default();
    let json = |state: &State| state.dossiers.get(&number).map(|d| state.dossier_json(d));
    let before = json(&state).unwrap_or_default();
    let now = chrono::Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    assert_eq!(state.touch(number, now, false), Some(None));
    let after = json(&state).unwrap_or_default();
    for key in [
        "dateDerniereModification",
        "dateDerniereModificationChamps",
        "dateDerniereModificationAnnotations",
    ] {
        assert_eq!(after[key], json!("2030-01-01T01:00:00+01:00"), "{key}");
    }
    assert_eq!(after["champs"], before["champs"]);
    assert_eq!(after["dateDepot"], before["dateDepot"]);
}

#[test]
fn dossier_dates_stay_in_the_past_whatever_the_size() {
    let hours = |h: u64| h * 3600;
    for (dossiers, spacing) in [
        (0, hours(6)),
        (12, hours(6)),
        (2_920, hours(6)),
        (100_000, 630),
    ] {
        assert_eq!(dossier_spacing(dossiers), spacing, "{dossiers} dossiers");
    }
    // The last dossier's latest update: its creation (plus up to an hour) and 40 days.
    for dossiers in [12, 5_000, 100_000, 10_000_000] {
        let last = u64::try_from(dossiers).expect("fits") * dossier_spacing(dossiers);
        let latest = base_time()
            + chrono::Duration::seconds(
                i64::try_from(last + hours(1) + hours(40 * 24)).expect("fits"),
            );
        let before = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("a date");
        assert!(latest < before, "{dossiers} dossiers: {latest}");
    }
}

#[test]
fn number_gap_spreads_the_numbers_as_ds_does() {
    // (gap, mean step accepted) — steps are drawn in 1..=2 × gap - 1.
    for (gap, mean) in [(1, 1.0..=1.0), (2, 1.9..=2.1), (40, 38.0..=42.0)] {
        let config = SimConfig {
            dossiers: 3_000,
            files_per_dossier: 0..=0,
            number_gap: gap,
            ..SimConfig::default()
        };
        let state = State::build(&config);
        let numbers: Vec<u64> = state.dossiers.keys().copied().collect();
        let steps: Vec<u64> = numbers.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|s| (1..2 * gap).contains(s)), "gap {gap}");
        let average = steps.iter().sum::<u64>() as f64 / steps.len() as f64;
        assert!(mean.contains(&average), "gap {gap}: mean step {average}");
        let first = state.deleted.first().map(|d| d.number);
        assert!(first > numbers.last().copied(), "deleted ones come after");
    }
}
