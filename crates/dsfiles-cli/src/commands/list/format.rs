//! The three output formats of `dsfiles list`. JSON Lines is the `FileRecord` serde format
//! (the wire format owned by `dsfiles-extract`); CSV has the same columns, in [`CSV_COLUMNS`]
//! order; the table is for humans and may change.

use std::io::{self, Write};

use dsfiles_core::extract::FileRecord;

use crate::progress::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Aligned columns for a terminal.
    Table,
}

/// CSV columns: every field of the JSON form, in a stable order. A unit test checks that no
/// field of `FileRecord` is missing.
pub const CSV_COLUMNS: &[&str] = &[
    "demarche",
    "dossier",
    "state",
    "source",
    "champ_id",
    "label",
    "row",
    "index",
    "filename",
    "content_type",
    "byte_size",
    "checksum",
    "url",
    "virus_scan",
    "created_at",
];

/// Writes records in one format; the CSV and table headers come before the first record (or
/// at [`Writer::finish`] when there is none, so an empty CSV still has its header).
#[derive(Debug)]
pub struct Writer<W: Write> {
    format: Format,
    out: W,
    header_written: bool,
}

impl<W: Write> Writer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Writer {
            format,
            out,
            header_written: false,
        }
    }

    pub fn record(&mut self, record: &FileRecord) -> io::Result<()> {
        self.header()?;
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record).map_err(io::Error::from)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => {
                let value = serde_json::to_value(record).map_err(io::Error::from)?;
                let mut line = String::new();
                for (i, column) in CSV_COLUMNS.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    push_csv_field(&mut line, &scalar(value.get(*column)));
                }
                line.push_str("\r\n");
                self.out.write_all(line.as_bytes())
            }
            Format::Table => {
                let row = record.row.map(|r| r.to_string()).unwrap_or_default();
                writeln!(
                    self.out,
                    "{:>9}  {:<11}  {:<28}  {:>3}  {:>10}  {:<8}  {}",
                    record.dossier,
                    record.source.as_str(),
                    cell(&record.label, 28),
                    row,
                    human_bytes(record.byte_size),
                    cell(&record.virus_scan, 8),
                    printable(&record.filename),
                )
            }
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        match self.format {
            Format::Jsonl => Ok(()),
            Format::Csv => {
                self.out.write_all(CSV_COLUMNS.join(",").as_bytes())?;
                self.out.write_all(b"\r\n")
            }
            Format::Table => writeln!(
                self.out,
                "  DOSSIER  SOURCE       LABEL                         ROW        SIZE  SCAN      FILENAME"
            ),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes the header if no record came, and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.format == Format::Csv {
            self.header()?;
        }
        self.out.flush()
    }
}

/// A JSON scalar as CSV text: strings unquoted, numbers as digits, null as empty.
fn scalar(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// RFC 4180: quote a field holding a comma, a quote, CR or LF (or leading/trailing spaces,
/// which some readers trim), doubling inner quotes.
pub fn push_csv_field(line: &mut String, field: &str) {
    let needs_quotes =
        field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') || field.ends_with(' ');
    if !needs_quotes {
        line.push_str(field);
        return;
    }
    line.push('"');
    for c in field.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    line.push('"');
}

/// `s` with control characters shown as `\u{..}` escapes, so a hostile filename cannot move
/// the cursor or change the terminal's state.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_unicode())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

/// `s` made printable and cut to `width` characters (with `…` when cut).
fn cell(s: &str, width: usize) -> String {
    let s = printable(s);
    if s.chars().count() <= width {
        return s;
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
