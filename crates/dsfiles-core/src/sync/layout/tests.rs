use chrono::{TimeZone as _, Utc};

use super::{must_record, resolve};
use crate::extract::{DataLayout, Layout};
use crate::options::DataOutput;
use crate::wire::{DataChoice, LayoutRecord, SettingOrigin, WIRE_VERSION};

const CUSTOM: &str = "{groupe}/{dossier}/{filename}";

fn record(layout: &str, data: DataChoice) -> LayoutRecord {
    LayoutRecord {
        version: WIRE_VERSION,
        demarche: 7,
        layout: layout.to_owned(),
        data,
        run_id: "r".to_owned(),
        recorded_at: Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap(),
    }
}

struct Case {
    layout: Option<&'static str>,
    data: Option<DataOutput>,
    recorded: Option<LayoutRecord>,
    /// Layout used and where from; data choice and where from; dossier.json template.
    expected: (&'static str, SettingOrigin, DataChoice, SettingOrigin),
    data_layout: Option<&'static str>,
    records: bool,
}

fn check(case: Case) {
    let layout = case.layout.map(|t| Layout::parse(t).unwrap());
    let naming = resolve(
        layout.as_ref(),
        case.data.as_ref(),
        case.recorded.as_ref(),
        7,
    )
    .unwrap();
    let used = &naming.used;
    let (template, layout_from, data, data_from) = case.expected;
    assert_eq!(naming.layout.template(), template);
    assert_eq!(
        (used.layout.as_str(), used.layout_from),
        (template, layout_from)
    );
    assert_eq!((&used.data, used.data_from), (&data, data_from));
    assert_eq!(
        naming.data_layout.as_ref().map(DataLayout::template),
        case.data_layout
    );
    assert_eq!(must_record(&naming, case.recorded.as_ref()), case.records);
}

fn at(template: &str) -> DataOutput {
    DataOutput::At(DataLayout::parse(template).unwrap())
}

use SettingOrigin::{Default as Dflt, Destination as Dest, Given};

#[test]
fn a_legacy_destination_keeps_the_default_and_gets_a_record() {
    check(Case {
        layout: None,
        data: None,
        recorded: None,
        expected: (Layout::DEFAULT, Dflt, DataChoice::FollowLayout, Dflt),
        data_layout: Some("{dossier}/dossier.json"),
        records: true,
    });
}

#[test]
fn a_run_without_a_layout_uses_the_recorded_one() {
    check(Case {
        layout: None,
        data: None,
        recorded: Some(record(CUSTOM, DataChoice::FollowLayout)),
        expected: (CUSTOM, Dest, DataChoice::FollowLayout, Dest),
        data_layout: Some("{dossier}/dossier.json"),
        records: false,
    });
}

#[test]
fn a_given_layout_replaces_the_record_and_dossier_json_follows_it() {
    check(Case {
        layout: Some("{demarche}/{dossier}/{filename}"),
        data: None,
        recorded: Some(record(CUSTOM, DataChoice::FollowLayout)),
        expected: (
            "{demarche}/{dossier}/{filename}",
            Given,
            DataChoice::FollowLayout,
            Dest,
        ),
        data_layout: Some("{demarche}/{dossier}/dossier.json"),
        records: true,
    });
}

#[test]
fn the_same_layout_given_again_is_not_rewritten() {
    check(Case {
        layout: Some(CUSTOM),
        data: Some(DataOutput::FollowLayout),
        recorded: Some(record(CUSTOM, DataChoice::FollowLayout)),
        expected: (CUSTOM, Given, DataChoice::FollowLayout, Given),
        data_layout: Some("{dossier}/dossier.json"),
        records: false,
    });
}

#[test]
fn a_recorded_data_layout_or_no_data_stays_when_only_the_layout_is_given() {
    let data = DataChoice::At("data/{dossier}.json".to_owned());
    check(Case {
        layout: Some(CUSTOM),
        data: None,
        recorded: Some(record(Layout::DEFAULT, data.clone())),
        expected: (CUSTOM, Given, data, Dest),
        data_layout: Some("data/{dossier}.json"),
        records: true,
    });
    check(Case {
        layout: None,
        data: None,
        recorded: Some(record("ds-export", DataChoice::Off)),
        expected: ("ds-export", Dest, DataChoice::Off, Dest),
        data_layout: None,
        records: false,
    });
}

#[test]
fn given_data_choices_replace_the_recorded_one() {
    check(Case {
        layout: None,
        data: Some(DataOutput::FollowLayout),
        recorded: Some(record(CUSTOM, DataChoice::Off)),
        expected: (CUSTOM, Dest, DataChoice::FollowLayout, Given),
        data_layout: Some("{dossier}/dossier.json"),
        records: true,
    });
    check(Case {
        layout: None,
        data: Some(at("x/{dossier}.json")),
        recorded: None,
        expected: (
            Layout::DEFAULT,
            Dflt,
            DataChoice::At("x/{dossier}.json".to_owned()),
            Given,
        ),
        data_layout: Some("x/{dossier}.json"),
        records: true,
    });
    check(Case {
        layout: None,
        data: Some(DataOutput::Off),
        recorded: Some(record(CUSTOM, DataChoice::FollowLayout)),
        expected: (CUSTOM, Dest, DataChoice::Off, Given),
        data_layout: None,
        records: true,
    });
}

#[test]
fn an_unusable_record_is_an_error_naming_its_key_not_the_default() {
    let unusable = [
        record("{nope}/{filename}", DataChoice::FollowLayout),
        record(CUSTOM, DataChoice::At("no-dossier.json".to_owned())),
        LayoutRecord {
            demarche: 8,
            ..record(CUSTOM, DataChoice::FollowLayout)
        },
    ];
    for recorded in unusable {
        let err = resolve(None, None, Some(&recorded), 7).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`.dsfiles/demarches/7/layout.json`"),
            "{message}"
        );
    }
    // Given settings do not read the record's unusable parts.
    let recorded = record("{nope}/{filename}", DataChoice::FollowLayout);
    let layout = Layout::default();
    let naming = resolve(Some(&layout), None, Some(&recorded), 7).unwrap();
    assert_eq!(naming.used.layout, Layout::DEFAULT);
}
