use serde_json::json;

use super::*;
use crate::context;

fn dossier(demandeur: serde_json::Value) -> DossierContext {
    let json = json!({
        "number": 12, "state": "accepte",
        "dateDepot": "2024-03-31T00:30:00Z",            // 01:30 in Paris (summer time begins at 01:00 UTC)
        "dateDerniereModification": "2024-10-27T00:30:00Z", // 02:30 in Paris, still summer
        "dateTraitement": "2024-12-31T23:30:00+00:00",      // already 2025 in Paris
        "demarche": {"number": 1, "title": "Aides / ../2024", "service": {"nom": ""}},
        "groupeInstructeur": {"number": 3, "label": "Nord\u{7}/Est"},
        "demandeur": demandeur,
        "champs": [
            {"__typename": "TextChamp", "id": "a", "label": "Projet", "stringValue": "../../etc/passwd"},
            {"__typename": "TextChamp", "id": "b", "label": "Vide", "stringValue": ""},
            {"__typename": "TextChamp", "id": "c", "label": "Long", "stringValue": "x".repeat(300)},
        ],
        "annotations": [{"__typename": "TextChamp", "id": "d", "label": "Priorité", "stringValue": "haute"}],
    });
    context(1, &json).unwrap()
}

fn person() -> DossierContext {
    dossier(
        json!({"__typename": "PersonnePhysique", "civilite": "Mme", "nom": "Dupont", "prenom": "Zoé"}),
    )
}

fn company() -> DossierContext {
    dossier(
        json!({"__typename": "PersonneMorale", "siret": "13002526500013",
        "entreprise": {"siren": "130025265", "raisonSociale": "ACME", "numeroTvaIntracommunautaire": null}}),
    )
}

#[track_caller]
fn check(placeholder: &str, context: Option<&DossierContext>, expected: &str) {
    let parsed = DossierPlaceholder::parse(placeholder).unwrap().unwrap();
    assert_eq!(parsed.render(context), expected, "{{{placeholder}}}");
}

#[test]
fn values_and_fallbacks() {
    let (p, c) = (person(), company());
    for (placeholder, context, expected) in [
        ("deposited", Some(&p), "2024-03-31"),
        ("deposited:%Y-%m-%d %H:%M", Some(&p), "2024-03-31 01:30"),
        ("updated:%H:%M", Some(&p), "02:30"),
        ("processed:%Y", Some(&p), "2025"),
        ("processed:%Y-%m", None, "sans-processed"),
        ("demarche_title", Some(&p), "Aides / ../2024"),
        ("service", Some(&p), "sans-service"),
        ("groupe", Some(&p), "Nord\u{7}/Est"),
        ("civilite", Some(&p), "Mme"),
        ("nom", Some(&p), "Dupont"),
        ("prenom", Some(&p), "Zoé"),
        ("demandeur", Some(&p), "Dupont Zoé"),
        ("siret", Some(&p), "sans-siret"),
        ("siret", Some(&c), "13002526500013"),
        ("siren", Some(&c), "130025265"),
        ("raison_sociale", Some(&c), "ACME"),
        ("tva", Some(&c), "sans-tva"),
        ("adresse", Some(&c), "sans-adresse"),
        ("demandeur", Some(&c), "ACME"),
        ("nom", Some(&c), "sans-nom"),
        ("champ:Projet", Some(&p), "../../etc/passwd"),
        ("champ:Vide", Some(&p), "sans-champ"),
        ("champ:Absent", Some(&p), "sans-champ"),
        ("champ:Priorité", Some(&p), "sans-champ"),
        ("annotation:Priorité", Some(&p), "haute"),
    ] {
        check(placeholder, context, expected);
    }
}

#[test]
fn bad_arguments_are_refused_naming_them() {
    for (placeholder, expected) in [
        (
            "deposited:%Q",
            "`{deposited:%Q}`: `%Q` is not a strftime format (e.g. `%Y-%m`)",
        ),
        (
            "updated:",
            "`{updated:}`: `` is not a strftime format (e.g. `%Y-%m`)",
        ),
        ("champ", "`{champ:LABEL}` needs the champ's label after `:`"),
        (
            "annotation: ",
            "`{annotation:LABEL}` needs the champ's label after `:`",
        ),
        ("groupe:x", "`{groupe}` takes no `:` argument"),
    ] {
        assert_eq!(
            DossierPlaceholder::parse(placeholder),
            Err(expected.to_owned())
        );
    }
    assert_eq!(DossierPlaceholder::parse("nope"), Ok(None));
}

#[test]
fn paris_time_follows_the_eu_rule() {
    for (utc, expected) in [
        ("2024-03-31T00:59:59Z", "01:59 +01:00"),
        ("2024-03-31T01:00:00Z", "03:00 +02:00"),
        ("2024-10-27T00:59:59Z", "02:59 +02:00"),
        ("2024-10-27T01:00:00Z", "02:00 +01:00"),
        ("2025-07-14T12:00:00+02:00", "12:00 +02:00"),
        ("2025-01-01T00:00:00Z", "01:00 +01:00"),
    ] {
        assert_eq!(
            paris_date(utc, "%H:%M %:z").as_deref(),
            Some(expected),
            "{utc}"
        );
    }
    assert_eq!(paris_date("hier", "%Y"), None);
}

#[test]
fn paris_dates_across_dst_boundaries() {
    for (at, expected) in [
        // Each change at 01:00 UTC, whatever the year's last Sunday.
        ("2023-03-26T00:59:59Z", "2023-03-26 01:59:59 +01:00"),
        ("2023-03-26T01:00:00Z", "2023-03-26 03:00:00 +02:00"),
        ("2023-10-29T00:59:59Z", "2023-10-29 02:59:59 +02:00"),
        ("2023-10-29T01:00:00Z", "2023-10-29 02:00:00 +01:00"),
        ("2026-03-29T00:59:59Z", "2026-03-29 01:59:59 +01:00"),
        ("2026-03-29T01:00:00Z", "2026-03-29 03:00:00 +02:00"),
        ("2026-10-25T00:59:59Z", "2026-10-25 02:59:59 +02:00"),
        ("2026-10-25T01:00:00Z", "2026-10-25 02:00:00 +01:00"),
        // The Sunday before the change is winter time, the Saturday before the return summer.
        ("2024-03-24T12:00:00Z", "2024-03-24 13:00:00 +01:00"),
        ("2024-10-26T12:00:00Z", "2024-10-26 14:00:00 +02:00"),
        // The day changes at Paris midnight, not UTC's.
        ("2024-03-30T23:30:00Z", "2024-03-31 00:30:00 +01:00"),
        ("2024-10-26T22:30:00Z", "2024-10-27 00:30:00 +02:00"),
        ("2024-02-29T23:30:00Z", "2024-03-01 00:30:00 +01:00"),
        ("2024-12-31T23:00:00Z", "2025-01-01 00:00:00 +01:00"),
        // Another offset in DS's answer is the same instant.
        ("2024-10-27T02:30:00+01:00", "2024-10-27 02:30:00 +01:00"),
        ("2024-10-27T00:30:00-00:00", "2024-10-27 02:30:00 +02:00"),
        // Before 1996 summer time ended on the last Sunday of September: the rule of today
        // would be an hour off for a scanned archive of 1995.
        ("1995-09-24T00:59:59Z", "1995-09-24 02:59:59 +02:00"),
        ("1995-09-24T01:00:00Z", "1995-09-24 02:00:00 +01:00"),
        ("1995-10-01T12:00:00Z", "1995-10-01 13:00:00 +01:00"),
    ] {
        assert_eq!(
            paris_date(at, "%Y-%m-%d %H:%M:%S %:z").as_deref(),
            Some(expected),
            "{at}"
        );
    }
}
