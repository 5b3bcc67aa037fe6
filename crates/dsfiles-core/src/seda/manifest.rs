//! `manifest.xml`: the SEDA 2.2 `ArchiveTransfer` message of one package, written by
//! `quick-xml`'s writer straight into any `Write` (the zip entry). Pure: everything it says
//! is in [`ManifestInput`]; the message identifier and date are inputs too, so that the same
//! input gives the same bytes.
//!
//! Rules (element order is the schema's; `seda/tests.rs` validates with xmllint):
//! - `Date` = the packaging time, `MessageIdentifier` = the caller's unique identifier,
//!   `ArchivalAgreement`, `ArchivalAgency`, `TransferringAgency` from the profile;
//!   `CodeListVersions` is required by the schema and written empty (no code list is used);
//! - one `DataObjectGroup` per file (`G{i}`, holding the `BinaryDataObject` `O{i}`,
//!   `DataObjectVersion` `BinaryMaster_1`), and group `G0` for the dossier itself:
//!   `dossier.json` as `BinaryMaster_1`, DS's PDF of the dossier as `Dissemination_1`. (One
//!   group per unit: Vitam lets a unit reference one object group, not several objects);
//! - `Uri` = the path inside the zip, `MessageDigest` = lowercase hex with its `algorithm`,
//!   `Size` omitted for a 0-byte file (the schema's `Size` is a positive integer),
//!   `FormatIdentification` from [`super::format`], `FileInfo/Filename` = DS's filename,
//!   `LastModified` = when dsfiles stored it;
//! - the root unit: `DescriptionLevel` `RecordGrp`, `Title` "Dossier N — démarche title",
//!   `OriginatingAgencyArchiveUnitIdentifier` = the dossier number, `Keyword`s (démarche,
//!   state, service), the applicant as `Sender` (role `Demandeur`: a person's first and birth
//!   names, or a company's name and SIRET), `StartDate` = dépôt, `EndDate` = decision; its
//!   children per [`super::tree`];
//! - `ManagementMetadata`: `OriginatingAgencyIdentifier`, `SubmissionAgencyIdentifier`,
//!   `AppraisalRule`, `AccessRule` from the profile; a rule's `StartDate` is the calendar date
//!   of the dossier date the profile names, omitted when the dossier has none;
//! - text is cleaned for XML 1.0 ([`xml_text`]): a character XML cannot carry (control
//!   characters but tab, LF, CR; U+FFFE, U+FFFF) becomes U+FFFD, so that a NUL in a DS
//!   filename cannot make the manifest unparsable; an empty title becomes `(sans titre)`;
//! - dates are DS's RFC 3339 strings, re-written as `xsd:dateTime`; a value that does not
//!   parse is left out rather than making the manifest invalid.

use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::format;
use super::profile::{Profile, RuleStart};
use super::tree::{self, FileLeaf, Unit};
use crate::extract::{Applicant, DossierContext, Source};

/// SEDA 2.2's namespace.
pub const SEDA_NS: &str = "fr:gouv:culture:archivesdefrance:seda:v2.2";

/// What a data object is in the package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The dossier's `dossier.json`.
    DossierJson,
    /// A stored file (DS's PDF of the dossier joins the dossier's group).
    File { source: Source, label: String },
}

/// One file of the package, with what its bytes gave on their way into the zip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataObject {
    pub role: Role,
    /// The path inside the zip.
    pub uri: String,
    /// Lowercase hex digest with the profile's algorithm.
    pub digest: String,
    pub size: u64,
    pub content_type: String,
    pub filename: String,
    pub last_modified: Option<DateTime<Utc>>,
}

/// Everything `manifest.xml` says.
#[derive(Clone, Copy, Debug)]
pub struct ManifestInput<'a> {
    pub profile: &'a Profile,
    pub message_id: &'a str,
    pub date: DateTime<Utc>,
    pub demarche: u64,
    pub dossier: u64,
    pub state: &'a str,
    pub context: Option<&'a DossierContext>,
    pub objects: &'a [DataObject],
}

/// Writes the manifest of `input` to `out`.
pub fn write<W: Write>(input: &ManifestInput<'_>, out: W) -> io::Result<()> {
    let mut w = Writer::new_with_indent(out, b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("ArchiveTransfer")
        .with_attribute(("xmlns", SEDA_NS))
        .with_attribute(("xmlns:xlink", "http://www.w3.org/1999/xlink"))
        .write_inner_content(|w| {
            let p = input.profile;
            text(w, "Date", &xml_date(input.date))?;
            text(w, "MessageIdentifier", input.message_id)?;
            text(w, "ArchivalAgreement", &p.archival_agreement)?;
            w.create_element("CodeListVersions").write_empty()?;
            data_object_package(w, input)?;
            agency(w, "ArchivalAgency", &p.archival_agency)?;
            agency(w, "TransferringAgency", &p.transferring_agency)
        })?;
    w.get_mut().write_all(b"\n")
}

fn data_object_package<W: Write>(w: &mut Writer<W>, input: &ManifestInput<'_>) -> io::Result<()> {
    w.create_element("DataObjectPackage")
        .write_inner_content(|w| {
            let algorithm = input.profile.digest.as_str();
            let (dossier, files) = split(input.objects);
            if !dossier.is_empty() {
                object_group(w, "G0", &dossier, algorithm)?;
            }
            for (i, (object, _)) in files.iter().enumerate() {
                let placed = [(*object, version(object))];
                object_group(w, &format!("G{}", i + 1), &placed, algorithm)?;
            }
            descriptive(w, input, !dossier.is_empty(), &files)?;
            management(w, input)
        })?;
    Ok(())
}

/// A file's object and whether it is part of the dossier's group.
type Placed<'a> = (&'a DataObject, &'static str);

/// The dossier's own objects (group `G0`) and the files (one group each).
fn split(objects: &[DataObject]) -> (Vec<Placed<'_>>, Vec<Placed<'_>>) {
    let (dossier, files): (Vec<_>, Vec<_>) = objects.iter().partition(|o| {
        matches!(
            o.role,
            Role::DossierJson
                | Role::File {
                    source: Source::Pdf,
                    ..
                }
        )
    });
    (with_version(dossier), with_version(files))
}

fn with_version(objects: Vec<&DataObject>) -> Vec<Placed<'_>> {
    objects.into_iter().map(|o| (o, version(o))).collect()
}

fn version(object: &DataObject) -> &'static str {
    match object.role {
        Role::File {
            source: Source::Pdf,
            ..
        } => "Dissemination_1",
        _ => "BinaryMaster_1",
    }
}

fn object_group<W: Write>(
    w: &mut Writer<W>,
    id: &str,
    objects: &[Placed<'_>],
    algorithm: &str,
) -> io::Result<()> {
    let mut seen = Vec::new();
    w.create_element("DataObjectGroup")
        .with_attribute(("id", id))
        .write_inner_content(|w| {
            for (n, (object, version)) in objects.iter().enumerate() {
                // Two PDFs would be two `Dissemination_1`: number the versions of a group.
                let count = seen.iter().filter(|v| *v == version).count() + 1;
                seen.push(*version);
                let version = version.replace("_1", &format!("_{count}"));
                let object_id = format!("{id}O{}", n + 1);
                binary_object(w, &object_id, &version, object, algorithm)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn binary_object<W: Write>(
    w: &mut Writer<W>,
    id: &str,
    version: &str,
    object: &DataObject,
    algorithm: &str,
) -> io::Result<()> {
    w.create_element("BinaryDataObject")
        .with_attribute(("id", id))
        .write_inner_content(|w| {
            text(w, "DataObjectVersion", version)?;
            text(w, "Uri", &object.uri)?;
            w.create_element("MessageDigest")
                .with_attribute(("algorithm", algorithm))
                .write_text_content(BytesText::new(&object.digest))?;
            if object.size > 0 {
                text(w, "Size", &object.size.to_string())?;
            }
            format_identification(w, object)?;
            w.create_element("FileInfo").write_inner_content(|w| {
                text(w, "Filename", &object.filename)?;
                match object.last_modified {
                    Some(t) => text(w, "LastModified", &xml_date(t)),
                    None => Ok(()),
                }
            })?;
            Ok(())
        })?;
    Ok(())
}

fn format_identification<W: Write>(w: &mut Writer<W>, object: &DataObject) -> io::Result<()> {
    let id = format::identify(&object.content_type, &object.filename);
    if id.mime.is_none() && id.format.is_none() {
        return Ok(());
    }
    w.create_element("FormatIdentification")
        .write_inner_content(|w| {
            if let Some(f) = id.format {
                text(w, "FormatLitteral", f.name)?;
            }
            if let Some(mime) = &id.mime {
                text(w, "MimeType", mime)?;
            }
            if let Some(f) = id.format {
                text(w, "FormatId", f.puid)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn descriptive<W: Write>(
    w: &mut Writer<W>,
    input: &ManifestInput<'_>,
    has_dossier_group: bool,
    files: &[Placed<'_>],
) -> io::Result<()> {
    let leaves: Vec<FileLeaf> = files
        .iter()
        .enumerate()
        .map(|(i, (o, _))| {
            let (source, label) = match &o.role {
                Role::File { source, label } => (*source, label.clone()),
                Role::DossierJson => (Source::Pdf, String::new()),
            };
            FileLeaf {
                source,
                label,
                filename: o.filename.clone(),
                group: format!("G{}", i + 1),
            }
        })
        .collect();
    let children = tree::children(input.context, &leaves);
    let mut ids = 0u64;
    w.create_element("DescriptiveMetadata")
        .write_inner_content(|w| {
            w.create_element("ArchiveUnit")
                .with_attribute(("id", "U0"))
                .write_inner_content(|w| {
                    root_content(w, input)?;
                    for child in &children {
                        unit(w, child, &mut ids)?;
                    }
                    if has_dossier_group {
                        group_reference(w, "G0")?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

fn group_reference<W: Write>(w: &mut Writer<W>, group: &str) -> io::Result<()> {
    w.create_element("DataObjectReference")
        .write_inner_content(|w| text(w, "DataObjectGroupReferenceId", group))?;
    Ok(())
}

fn unit<W: Write>(w: &mut Writer<W>, unit_data: &Unit, ids: &mut u64) -> io::Result<()> {
    *ids += 1;
    let id = format!("U{ids}");
    w.create_element("ArchiveUnit")
        .with_attribute(("id", id.as_str()))
        .write_inner_content(|w| {
            w.create_element("Content").write_inner_content(|w| {
                text(w, "DescriptionLevel", unit_data.level)?;
                title(w, &unit_data.title)?;
                if let Some(d) = &unit_data.description {
                    text(w, "Description", d)?;
                }
                if let Some(created) = unit_data.created.as_deref().and_then(parse_date) {
                    text(w, "CreatedDate", &xml_date(created))?;
                }
                Ok(())
            })?;
            for child in &unit_data.children {
                unit(w, child, ids)?;
            }
            if let Some(group) = &unit_data.group {
                group_reference(w, group)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn root_content<W: Write>(w: &mut Writer<W>, input: &ManifestInput<'_>) -> io::Result<()> {
    let context = input.context;
    w.create_element("Content").write_inner_content(|w| {
        text(w, "DescriptionLevel", "RecordGrp")?;
        let demarche = match context {
            Some(c) => c.demarche.title.clone(),
            None => format!("démarche {}", input.demarche),
        };
        title(w, &format!("Dossier {} — {demarche}", input.dossier))?;
        text(
            w,
            "OriginatingAgencyArchiveUnitIdentifier",
            &input.dossier.to_string(),
        )?;
        keywords(w, input)?;
        if let Some(applicant) = context.and_then(|c| c.applicant.as_ref()) {
            sender(w, applicant)?;
        }
        let dossier = context.map(|c| &c.dossier);
        if let Some(d) = dossier
            .and_then(|d| d.deposited_at.as_deref())
            .and_then(parse_date)
        {
            text(w, "StartDate", &xml_date(d))?;
        }
        if let Some(d) = decision_date(context) {
            text(w, "EndDate", &xml_date(d))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn keywords<W: Write>(w: &mut Writer<W>, input: &ManifestInput<'_>) -> io::Result<()> {
    let mut words = vec![(format!("démarche {}", input.demarche), "subject")];
    if let Some(c) = input.context {
        words.push((c.demarche.title.clone(), "subject"));
        if let Some(service) = &c.demarche.service {
            words.push((service.clone(), "corpname"));
        }
    }
    words.push((state_label(input.state).to_owned(), "subject"));
    for (content, kind) in words.into_iter().filter(|(c, _)| !c.trim().is_empty()) {
        w.create_element("Keyword").write_inner_content(|w| {
            text(w, "KeywordContent", &content)?;
            text(w, "KeywordType", kind)
        })?;
    }
    Ok(())
}

/// DS's state in words.
fn state_label(state: &str) -> &str {
    match state {
        "accepte" => "accepté",
        "refuse" => "refusé",
        "sans_suite" => "classé sans suite",
        "en_instruction" => "en instruction",
        "en_construction" => "en construction",
        other => other,
    }
}

fn sender<W: Write>(w: &mut Writer<W>, applicant: &Applicant) -> io::Result<()> {
    w.create_element("Sender").write_inner_content(|w| {
        match applicant {
            Applicant::Person {
                civilite,
                nom,
                prenom,
            } => {
                text(w, "FirstName", prenom)?;
                text(w, "BirthName", nom)?;
                if let Some(c) = civilite.as_deref().filter(|c| !c.trim().is_empty()) {
                    text(w, "Gender", c)?;
                }
            }
            Applicant::Company {
                siret,
                raison_sociale,
                ..
            } => {
                let name = raison_sociale.as_deref().filter(|n| !n.trim().is_empty());
                text(w, "Corpname", name.unwrap_or(siret))?;
                if !siret.trim().is_empty() {
                    text(w, "Identifier", siret)?;
                }
            }
        }
        text(w, "Role", "Demandeur")
    })?;
    Ok(())
}

fn management<W: Write>(w: &mut Writer<W>, input: &ManifestInput<'_>) -> io::Result<()> {
    let p = input.profile;
    w.create_element("ManagementMetadata")
        .write_inner_content(|w| {
            text(w, "OriginatingAgencyIdentifier", &p.originating_agency)?;
            if let Some(s) = &p.submission_agency {
                text(w, "SubmissionAgencyIdentifier", s)?;
            }
            if let Some(a) = &p.appraisal {
                w.create_element("AppraisalRule").write_inner_content(|w| {
                    rule(w, &a.rule, a.start_date, input.context)?;
                    text(w, "FinalAction", &format!("{:?}", a.final_action))
                })?;
            }
            if let Some(a) = &p.access {
                w.create_element("AccessRule")
                    .write_inner_content(|w| rule(w, &a.rule, a.start_date, input.context))?;
            }
            Ok(())
        })?;
    Ok(())
}

fn rule<W: Write>(
    w: &mut Writer<W>,
    id: &str,
    start: RuleStart,
    context: Option<&DossierContext>,
) -> io::Result<()> {
    text(w, "Rule", id)?;
    let date = match start {
        RuleStart::Decision => decision_date(context),
        RuleStart::Depot => context
            .and_then(|c| c.dossier.deposited_at.as_deref())
            .and_then(parse_date),
        RuleStart::None => None,
    };
    match date {
        Some(d) => text(
            w,
            "StartDate",
            &d.date_naive().format("%Y-%m-%d").to_string(),
        ),
        None => Ok(()),
    }
}

/// The decision date: the dossier's `processed_at`, else the decision's.
fn decision_date(context: Option<&DossierContext>) -> Option<DateTime<FixedOffset>> {
    let c = context?;
    c.dossier
        .processed_at
        .as_deref()
        .or_else(|| c.decision.as_ref()?.processed_at.as_deref())
        .and_then(parse_date)
}

fn parse_date(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

fn xml_date<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn agency<W: Write>(w: &mut Writer<W>, name: &str, id: &str) -> io::Result<()> {
    w.create_element(name)
        .write_inner_content(|w| text(w, "Identifier", id))?;
    Ok(())
}

fn title<W: Write>(w: &mut Writer<W>, value: &str) -> io::Result<()> {
    if value.trim().is_empty() {
        text(w, "Title", "(sans titre)")
    } else {
        text(w, "Title", value)
    }
}

fn text<W: Write>(w: &mut Writer<W>, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_text(value)))?;
    Ok(())
}

/// `s` with every character XML 1.0 cannot carry replaced by U+FFFD (see the module doc).
pub fn xml_text(s: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if s.chars().all(allowed) {
        return s.into();
    }
    s.chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect::<String>()
        .into()
}
