//! The seeded démarche is pinned: the same config must keep giving byte-identical dossiers and
//! files, whatever shape the builder takes. A changed hash means every seed's data changed.

use chrono::TimeZone as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{DossierExtras, State};
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

#[track_caller]
fn check(config: SimConfig, added: usize, expected: &str) {
    let mut state = State::build(&config);
    let now = chrono::Utc
        .with_ymd_and_hms(2024, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for _ in 0..added {
        state.add_dossier(DossierExtras::default(), Some(now));
    }
    assert_eq!(sha256(&snapshot(&state)), expected, "{config:?} + {added}");
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
        "ea07999db98cac613826d7e3db7982f57516908c68c57143f9dfcde51ab0c033",
    );
    check(
        big(),
        2,
        "3c3237beeb637e16d79439ce15336a80ad0a5779cc2e8de7bcbf329447ddf8c3",
    );
    check(
        SimConfig {
            seed: 7,
            groupes: 3,
            hostile_filenames: false,
            ..big()
        },
        0,
        "fb41206c0efadcfe3257fac5e2f7d6efb2d2265c126755c749ebc1d5ed345da5",
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
