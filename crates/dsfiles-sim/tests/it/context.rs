//! The dossier context issue #10 names files from and writes into `dossier.json`: applicants
//! of both kinds, groupes with hostile labels, dates that follow the state, champs and
//! annotations of every common type with values, messages, avis, decisions — all valid for
//! the real schema.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use dsfiles_sim::SimConfig;
use serde_json::{Value, json};

use crate::support::{query_ok, sim};

const CONTEXT_QUERY: &str = r#"
query context($demarche: Int!) {
  demarche(number: $demarche) {
    title
    activeRevision { champDescriptors { __typename label type } annotationDescriptors { __typename label type } }
    dossiers(first: 100) {
      nodes {
        number state dateDepot datePassageEnInstruction dateTraitement motivation
        traitements { event dateTraitement motivation }
        demarche { title service { nom organisme } revision { champDescriptors { label } } }
        groupeInstructeur { number label }
        demandeur {
          __typename
          ... on PersonnePhysique { civilite nom prenom email dateDeNaissance }
          ... on PersonneMorale {
            siret adresse address { label }
            entreprise { siren raisonSociale numeroTvaIntracommunautaire }
          }
        }
        champs { ...Value }
        annotations { ...Value }
        messages { email body createdAt }
        avis { question reponse expert { email } }
      }
    }
  }
}
fragment Value on Champ {
  __typename label stringValue
  ... on TextChamp { value }
  ... on IntegerNumberChamp { integer: value }
  ... on DecimalNumberChamp { decimal: value }
  ... on DateChamp { date }
  ... on DatetimeChamp { datetime }
  ... on DropDownListChamp { value }
  ... on MultipleDropDownListChamp { values }
  ... on CheckboxChamp { checked: value }
  ... on YesNoChamp { yes: value }
  ... on CiviliteChamp { civilite: value }
  ... on CommuneChamp { commune { name code postalCode } departement { code name } }
  ... on SiretChamp { etablissement { siret } }
}
"#;

fn strings<'a>(items: impl IntoIterator<Item = &'a Value>, key: &str) -> BTreeSet<String> {
    items
        .into_iter()
        .filter_map(|v| v[key].as_str().map(str::to_owned))
        .collect()
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

#[tokio::test]
async fn every_dossier_field_of_issue_10_validates_and_varies() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 30,
        groupes: 3,
        ..SimConfig::default()
    })
    .await;
    let data = query_ok(
        &sim,
        CONTEXT_QUERY,
        None,
        json!({"demarche": sim.demarche()}),
    )
    .await?;
    let demarche = &data["demarche"];
    let dossiers = list(&demarche["dossiers"]["nodes"]);
    assert_eq!(dossiers.len(), 30);

    let kinds = strings(dossiers.iter().map(|d| &d["demandeur"]), "__typename");
    assert_eq!(
        kinds,
        BTreeSet::from(["PersonneMorale".into(), "PersonnePhysique".into()])
    );
    for d in dossiers.iter().map(|d| &d["demandeur"]) {
        let filled = match d["__typename"].as_str() {
            Some("PersonnePhysique") => ["civilite", "nom", "prenom", "email"].map(|k| &d[k]),
            _ => [
                &d["siret"],
                &d["entreprise"]["siren"],
                &d["entreprise"]["raisonSociale"],
                &d["entreprise"]["numeroTvaIntracommunautaire"],
            ],
        };
        assert!(filled.iter().all(|v| v.is_string()), "{d}");
    }

    let labels = strings(dossiers.iter().map(|d| &d["groupeInstructeur"]), "label");
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(
        labels.iter().any(|l| l.contains('/')
            && l.contains("..")
            && l.chars().any(char::is_control)
            && l.len() >= 300),
        "no hostile groupe label in {labels:?}"
    );

    for d in dossiers {
        check_dates(d);
        assert_eq!(d["demarche"]["title"], demarche["title"]);
        assert!(
            d["demarche"]["service"]["nom"].is_string(),
            "{}",
            d["demarche"]
        );
        assert!(list(&d["messages"]).iter().all(|m| m["email"].is_string()
            && m["body"].is_string()
            && m["createdAt"].is_string()));
    }
    let avis: Vec<&Value> = dossiers.iter().flat_map(|d| list(&d["avis"])).collect();
    assert!(!avis.is_empty());
    assert!(avis.iter().all(|a| a["question"].is_string()
        && a["reponse"].is_string()
        && a["expert"]["email"].is_string()));

    check_champs(demarche, dossiers)?;
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

/// Instruction and decision dates, the decision's traitement and motivation follow the state.
#[track_caller]
fn check_dates(d: &Value) {
    let state = d["state"].as_str().unwrap_or_default();
    let decided = matches!(state, "accepte" | "refuse" | "sans_suite");
    assert!(d["dateDepot"].is_string(), "{d}");
    assert_eq!(
        d["datePassageEnInstruction"].is_string(),
        state != "en_construction",
        "{state}"
    );
    assert_eq!(d["dateTraitement"].is_string(), decided, "{state}");
    assert_eq!(d["motivation"].is_string(), decided, "{state}");
    let last = list(&d["traitements"]).last().cloned().unwrap_or_default();
    if decided {
        assert_eq!(last["dateTraitement"], d["dateTraitement"], "{state}");
        assert!(last["motivation"].is_string());
    } else {
        assert_eq!(last["event"], "depose", "{state}");
    }
}

/// Every common champ type appears with a value, annotations too, hostile texts among them,
/// and every label is one of the revision's descriptors.
fn check_champs(demarche: &Value, dossiers: &[Value]) -> Result<()> {
    let revision = &demarche["activeRevision"];
    let champs: Vec<&Value> = dossiers.iter().flat_map(|d| list(&d["champs"])).collect();
    let annotations: Vec<&Value> = dossiers
        .iter()
        .flat_map(|d| list(&d["annotations"]))
        .collect();
    for (found, descriptors) in [
        (&champs, "champDescriptors"),
        (&annotations, "annotationDescriptors"),
    ] {
        let known = strings(list(&revision[descriptors]), "label");
        let used = strings(found.iter().copied(), "label");
        assert!(
            used.is_subset(&known),
            "{:?} not in the revision",
            used.difference(&known)
        );
    }
    let valued = |champs: &[&Value]| -> BTreeSet<String> {
        champs
            .iter()
            .filter(|c| c["stringValue"].as_str().is_some_and(|s| !s.is_empty()))
            .filter_map(|c| c["__typename"].as_str().map(str::to_owned))
            .collect()
    };
    let types = [
        "TextChamp",
        "IntegerNumberChamp",
        "DecimalNumberChamp",
        "DateChamp",
        "DatetimeChamp",
        "DropDownListChamp",
        "MultipleDropDownListChamp",
        "CheckboxChamp",
        "YesNoChamp",
        "CiviliteChamp",
        "CommuneChamp",
        "SiretChamp",
    ];
    let with_values = valued(&champs);
    let missing: Vec<_> = types
        .iter()
        .filter(|t| !with_values.contains(**t))
        .collect();
    assert!(missing.is_empty(), "no valued {missing:?}");
    let annotated = valued(&annotations);
    for t in [
        "CheckboxChamp",
        "DateChamp",
        "DropDownListChamp",
        "IntegerNumberChamp",
    ] {
        assert!(
            annotated.contains(t),
            "no valued {t} annotation in {annotated:?}"
        );
    }
    let texts: Vec<&str> = champs
        .iter()
        .filter_map(|c| c["stringValue"].as_str())
        .collect();
    let hostile = |test: fn(&str) -> bool| texts.iter().any(|t| test(t));
    assert!(hostile(|t| t.contains("../")), "no `../` value");
    assert!(
        hostile(|t| t.chars().any(|c| c.is_control() && c != '\n')),
        "no control character"
    );
    assert!(hostile(|t| t.len() >= 300), "no 300-byte value");
    assert!(hostile(str::is_empty), "no empty value");
    assert!(
        !hostile(|t| t.contains('\0')),
        "DS never stores NUL in a value"
    );
    let date = champs
        .iter()
        .find(|c| c["__typename"] == "DateChamp")
        .context("a DateChamp")?;
    assert!(
        date["date"].as_str().is_some_and(|d| d.len() == 10),
        "{date}"
    );
    Ok(())
}
