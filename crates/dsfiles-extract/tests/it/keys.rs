use dsfiles_extract::{KeyAllocator, Layout};

use crate::{ALL, records};

/// Renders every record of `fixture` with `template`, allocates keys in extraction order,
/// and compares one `file_id -> key` line per record.
#[track_caller]
fn check(fixture: &str, template: &str, expected: &str) {
    let layout = Layout::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
    let mut alloc = KeyAllocator::new();
    let got: Vec<String> = records(fixture, ALL)
        .iter()
        .map(|r| {
            let key = (alloc.allocate(&r.file_id(), &layout.render(r, None)))
                .unwrap_or_else(|e| panic!("{e}"));
            format!("{} -> {key}", r.file_id())
        })
        .collect();
    assert_eq!(got.join("\n"), expected.trim(), "{fixture} with {template}");
}

#[test]
fn default_layout_on_every_source() {
    check(
        "complete.json",
        Layout::DEFAULT,
        "
1001/champ/Q2hhbXAtMg==/-/0 -> 1001/champ/Pièce d'identité/identite.pdf
1001/champ/Q2hhbXAtMg==/-/1 -> 1001/champ/Pièce d'identité/identite (2).pdf
1001/champ/Q2hhbXAtNg==/0/0 -> 1001/champ/Justificatif associé/kbis.pdf
1001/champ/Q2hhbXAtNg==/2/0 -> 1001/champ/Justificatif associé/statuts.pdf
1001/champ/Q2hhbXAtNg==/2/1 -> 1001/champ/Justificatif associé/annexe.pdf
1001/champ/Q2hhbXAtOA==/-/0 -> 1001/champ/Vidéo de présentation/presentation.mp4
1001/entreprise/Q2hhbXAtOQ==/-/0 -> 1001/entreprise/attestation fiscale 41816609600069/attestation_fiscale.pdf
1001/champ/Q2hhbXAtMTM=/-/0 -> 1001/champ/Type futur avec des fichiers/passeport.jpg
1001/annotation/Q2hhbXAtMjA=/-/0 -> 1001/annotation/Rapport d'instruction/rapport.docx
1001/annotation/Q2hhbXAtMjI=/0/0 -> 1001/annotation/Photo/photo.jpg
1001/message/Q29tbWVudGFpcmUtMQ==/-/0 -> 1001/message/message/courrier.pdf
1001/message/Q29tbWVudGFpcmUtMQ==/-/1 -> 1001/message/message/annexe.pdf
1001/message/Q29tbWVudGFpcmUtMw==/-/0 -> 1001/message/message/réponse.odt
1001/avis/QXZpcy0x/-/0 -> 1001/avis/avis/avis-expert.pdf
1001/attestation/-/-/0 -> 1001/attestation/attestation/attestation.pdf
1001/motivation/-/-/0 -> 1001/motivation/motivation/motivation.pdf
1001/entreprise/-/-/0 -> 1001/entreprise/attestation fiscale 13002526500013/attestation_fiscale.pdf
1001/entreprise/-/-/1 -> 1001/entreprise/attestation sociale 13002526500013/attestation_sociale.pdf
1001/pdf/-/-/0 -> 1001/pdf/dossier/dossier-1001.pdf
1001/geojson/-/-/0 -> 1001/geojson/geojson/dossier_1001.geojson
",
    );
}

/// Hostile names are sanitized; colliding ones (same name twice, NFD/NFC, case) are numbered;
/// the empty label renders nothing, so its component is dropped.
#[test]
fn hostile_names_with_the_default_layout() {
    let long = format!("{}.pdf", "L".repeat(251));
    check(
        "hostile.json",
        Layout::DEFAULT,
        &format!(
            "
1003/champ/Q2hhbXAtNDA=/-/0 -> 1003/champ/Pièces/.._.._x.pdf
1003/champ/Q2hhbXAtNDA=/-/1 -> 1003/champ/Pièces/_etc_passwd
1003/champ/Q2hhbXAtNDA=/-/2 -> 1003/champ/Pièces/a_b_c
1003/champ/Q2hhbXAtNDA=/-/3 -> 1003/champ/Pièces/_CON
1003/champ/Q2hhbXAtNDA=/-/4 -> 1003/champ/Pièces/_nul.txt
1003/champ/Q2hhbXAtNDA=/-/5 -> 1003/champ/Pièces/bad_name.pdf
1003/champ/Q2hhbXAtNDA=/-/6 -> 1003/champ/Pièces/{long}
1003/champ/Q2hhbXAtNDA=/-/7 -> 1003/champ/Pièces/\u{e9}t\u{e9}.pdf
1003/champ/Q2hhbXAtNDA=/-/8 -> 1003/champ/Pièces/\u{e9}t\u{e9} (2).pdf
1003/champ/Q2hhbXAtNDA=/-/9 -> 1003/champ/Pièces/same.pdf
1003/champ/Q2hhbXAtNDA=/-/10 -> 1003/champ/Pièces/same (2).pdf
1003/champ/Q2hhbXAtNDA=/-/11 -> 1003/champ/Pièces/Same (3).PDF
1003/champ/Q2hhbXAtNDA=/-/12 -> 1003/champ/Pièces/_
1003/champ/Q2hhbXAtNDA=/-/13 -> 1003/champ/Pièces/_ (2)
1003/champ/Q2hhbXAtNDA=/-/14 -> 1003/champ/Pièces/_ (3)
1003/champ/Q2hhbXAtNDA=/-/15 -> 1003/champ/Pièces/trailing
1003/champ/Q2hhbXAtNDA=/-/16 -> 1003/champ/Pièces/tab_here_.pdf
1003/champ/Q2hhbXAtNDE=/-/0 -> 1003/champ/.._Label_with_slashes/ok.pdf
1003/champ/Q2hhbXAtNDI=/-/0 -> 1003/champ/.dsfiles/manifest.json
1003/champ/Q2hhbXAtNDM=/-/0 -> 1003/champ/no-label.pdf
"
        ),
    );
}

/// A label equal to the state directory, first in the key, is renamed.
#[test]
fn hostile_labels_first_in_the_layout() {
    let long = format!("{}.pdf", "L".repeat(251));
    check(
        "hostile.json",
        "{label}/{filename}",
        &format!(
            "
1003/champ/Q2hhbXAtNDA=/-/0 -> Pièces/.._.._x.pdf
1003/champ/Q2hhbXAtNDA=/-/1 -> Pièces/_etc_passwd
1003/champ/Q2hhbXAtNDA=/-/2 -> Pièces/a_b_c
1003/champ/Q2hhbXAtNDA=/-/3 -> Pièces/_CON
1003/champ/Q2hhbXAtNDA=/-/4 -> Pièces/_nul.txt
1003/champ/Q2hhbXAtNDA=/-/5 -> Pièces/bad_name.pdf
1003/champ/Q2hhbXAtNDA=/-/6 -> Pièces/{long}
1003/champ/Q2hhbXAtNDA=/-/7 -> Pièces/\u{e9}t\u{e9}.pdf
1003/champ/Q2hhbXAtNDA=/-/8 -> Pièces/\u{e9}t\u{e9} (2).pdf
1003/champ/Q2hhbXAtNDA=/-/9 -> Pièces/same.pdf
1003/champ/Q2hhbXAtNDA=/-/10 -> Pièces/same (2).pdf
1003/champ/Q2hhbXAtNDA=/-/11 -> Pièces/Same (3).PDF
1003/champ/Q2hhbXAtNDA=/-/12 -> Pièces/_
1003/champ/Q2hhbXAtNDA=/-/13 -> Pièces/_ (2)
1003/champ/Q2hhbXAtNDA=/-/14 -> Pièces/_ (3)
1003/champ/Q2hhbXAtNDA=/-/15 -> Pièces/trailing
1003/champ/Q2hhbXAtNDA=/-/16 -> Pièces/tab_here_.pdf
1003/champ/Q2hhbXAtNDE=/-/0 -> .._Label_with_slashes/ok.pdf
1003/champ/Q2hhbXAtNDI=/-/0 -> _dsfiles/manifest.json
1003/champ/Q2hhbXAtNDM=/-/0 -> no-label.pdf
"
        ),
    );
}

#[test]
fn a_second_run_keeps_every_key() {
    let layout = Layout::default();
    let first_run: Vec<(String, dsfiles_extract::RelKey)> = {
        let mut alloc = KeyAllocator::new();
        records("hostile.json", ALL)
            .iter()
            .map(|r| {
                (
                    r.file_id(),
                    (alloc.allocate(&r.file_id(), &layout.render(r, None)))
                        .unwrap_or_else(|e| panic!("{e}")),
                )
            })
            .collect()
    };
    // Next run: the manifest's keys are loaded, records come in reverse order.
    let mut alloc = KeyAllocator::new();
    for (id, key) in &first_run {
        alloc
            .insert_existing(id, key.clone())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for r in records("hostile.json", ALL).iter().rev() {
        let key = (alloc.allocate(&r.file_id(), &layout.render(r, None)))
            .unwrap_or_else(|e| panic!("{e}"));
        let before = first_run
            .iter()
            .find(|(id, _)| *id == r.file_id())
            .map(|(_, k)| k);
        assert_eq!(Some(&key), before, "{}", r.file_id());
    }
}
