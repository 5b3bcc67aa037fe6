//! The three output formats of `dsfiles list` and `dsfiles index`. JSON Lines is the record's
//! serde format (`FileRecord`, the wire format owned by `dsfiles-extract`, or `IndexRecord`,
//! owned by `dsfiles-core`); CSV has the same columns, in [`Row::CSV_COLUMNS`] order; the table
//! is for humans and may change.

use std::io::{self, Write};
use std::marker::PhantomData;

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

/// A record one of the formats can write.
pub trait Row: serde::Serialize {
    /// Every field of the JSON form, in a stable order: the CSV columns (a unit test per type
    /// checks that none is missing).
    const CSV_COLUMNS: &'static [&'static str];
    /// The table's header line, its titles aligned with [`Row::table_row`]'s values.
    const TABLE_HEADER: &'static str;
    /// The record as one table line (no newline), every text made printable.
    fn table_row(&self) -> String;
}

/// CSV columns of `dsfiles list`: every field of `FileRecord`'s JSON form.
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

impl Row for FileRecord {
    const CSV_COLUMNS: &'static [&'static str] = CSV_COLUMNS;
    const TABLE_HEADER: &'static str =
        "  DOSSIER  SOURCE       LABEL                         ROW        SIZE  SCAN      FILENAME";

    fn table_row(&self) -> String {
        let row = self.row.map(|r| r.to_string()).unwrap_or_default();
        format!(
            "{:>9}  {:<11}  {:<28}  {:>3}  {:>10}  {:<8}  {}",
            self.dossier,
            self.source.as_str(),
            cell(&self.label, 28),
            row,
            human_bytes(self.byte_size),
            cell(&self.virus_scan, 8),
            printable(&self.filename),
        )
    }
}

/// Writes records of type `R` in one format; the CSV and table headers come before the first
/// record (or at [`Writer::finish`] when there is none, so an empty CSV still has its header).
#[derive(Debug)]
pub struct Writer<W: Write, R> {
    format: Format,
    out: W,
    header_written: bool,
    rows: PhantomData<fn(&R)>,
}

impl<W: Write, R: Row> Writer<W, R> {
    pub fn new(format: Format, out: W) -> Self {
        Writer {
            format,
            out,
            header_written: false,
            rows: PhantomData,
        }
    }

    pub fn record(&mut self, record: &R) -> io::Result<()> {
        self.header()?;
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record).map_err(io::Error::from)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => {
                let value = serde_json::to_value(record).map_err(io::Error::from)?;
                let mut line = String::new();
                for (i, column) in R::CSV_COLUMNS.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    push_csv_field(&mut line, &scalar(value.get(*column)));
                }
                line.push_str("\r\n");
                self.out.write_all(line.as_bytes())
            }
            Format::Table => writeln!(self.out, "{}", record.table_row()),
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
                self.out.write_all(R::CSV_COLUMNS.join(",").as_bytes())?;
                self.out.write_all(b"\r\n")
            }
            Format::Table => writeln!(self.out, "{}", R::TABLE_HEADER),
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
pub fn printable(s: &str) -> String {
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
pub fn cell(s: &str, width: usize) -> String {
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
