//! `FormatIdentification` of a data object: its MIME type and, for common formats, the PRONOM
//! identifier (PUID) and name.
//!
//! Rule: identification uses the MIME type DS recorded (parameters dropped, lowercase), and the
//! filename's extension when the MIME type is missing or generic (`application/octet-stream`);
//! bytes are never sniffed. A format PRONOM versions by content (PDF 1.4–1.7, PNG 1.0–1.2,
//! JPEG/JFIF 1.01–1.02) gets the PUID of its most common version today; archives that
//! identify formats themselves (Vitam runs Siegfried at ingest) correct a version they detect
//! otherwise. An unknown format gets its MIME type only.

/// One known format: MIME type, extensions, PUID and PRONOM's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub mime: &'static str,
    pub extensions: &'static [&'static str],
    pub puid: &'static str,
    pub name: &'static str,
}

/// The known formats (documented in `docs/seda.md`).
pub const FORMATS: &[Format] = &[
    Format {
        mime: "application/pdf",
        extensions: &["pdf"],
        puid: "fmt/276",
        name: "Acrobat PDF 1.7 - Portable Document Format",
    },
    Format {
        mime: "image/jpeg",
        extensions: &["jpg", "jpeg", "jpe"],
        puid: "fmt/43",
        name: "JPEG File Interchange Format",
    },
    Format {
        mime: "image/png",
        extensions: &["png"],
        puid: "fmt/11",
        name: "Portable Network Graphics",
    },
    Format {
        mime: "image/tiff",
        extensions: &["tif", "tiff"],
        puid: "fmt/353",
        name: "Tagged Image File Format",
    },
    Format {
        mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        extensions: &["docx"],
        puid: "fmt/412",
        name: "Microsoft Word for Windows",
    },
    Format {
        mime: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        extensions: &["xlsx"],
        puid: "fmt/214",
        name: "Microsoft Excel for Windows",
    },
    Format {
        mime: "application/vnd.oasis.opendocument.text",
        extensions: &["odt"],
        puid: "fmt/291",
        name: "OpenDocument Text",
    },
    Format {
        mime: "application/vnd.oasis.opendocument.spreadsheet",
        extensions: &["ods"],
        puid: "fmt/295",
        name: "OpenDocument Spreadsheet",
    },
    Format {
        mime: "text/plain",
        extensions: &["txt"],
        puid: "x-fmt/111",
        name: "Plain Text File",
    },
    Format {
        mime: "text/csv",
        extensions: &["csv"],
        puid: "x-fmt/18",
        name: "Comma Separated Values",
    },
    Format {
        mime: "application/zip",
        extensions: &["zip"],
        puid: "x-fmt/263",
        name: "ZIP Format",
    },
    Format {
        mime: "application/xml",
        extensions: &["xml"],
        puid: "fmt/101",
        name: "Extensible Markup Language",
    },
    Format {
        mime: "application/json",
        extensions: &["json", "geojson"],
        puid: "fmt/817",
        name: "JSON Data Interchange Format",
    },
];

/// What the manifest says of a file's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identified {
    /// `None` when neither DS nor the extension gives one.
    pub mime: Option<String>,
    pub format: Option<&'static Format>,
}

/// Identifies a file by its MIME type, else its extension (see the module doc).
pub fn identify(content_type: &str, filename: &str) -> Identified {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let generic = mime.is_empty() || mime == "application/octet-stream" || !is_mime(&mime);
    let by_mime = FORMATS
        .iter()
        .find(|f| f.mime == mime || alias(&mime) == f.mime);
    let format = by_mime.or_else(|| generic.then(|| by_extension(filename)).flatten());
    let mime = if generic {
        format
            .map(|f| f.mime.to_owned())
            .or((!mime.is_empty() && is_mime(&mime)).then_some(mime))
    } else {
        Some(mime)
    };
    Identified { mime, format }
}

/// Other names the same formats go by.
fn alias(mime: &str) -> &str {
    match mime {
        "text/xml" => "application/xml",
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "application/x-zip-compressed" => "application/zip",
        "application/geo+json" => "application/json",
        other => other,
    }
}

/// `type/subtype` of token characters: anything else is not written as a `MimeType`.
fn is_mime(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub))
}

fn by_extension(filename: &str) -> Option<&'static Format> {
    let (_, ext) = filename.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    FORMATS
        .iter()
        .find(|f| f.extensions.contains(&ext.as_str()))
}
