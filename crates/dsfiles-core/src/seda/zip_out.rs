//! A zip written straight into a [`Upload`]: the `zip` crate's streaming writer (no seeking:
//! sizes and CRCs follow each entry in a data descriptor, ZIP64 records where an entry or the
//! archive needs them) writes into a small shared buffer that is handed to the upload after
//! every write, so at most one chunk of the zip is in memory whatever its size.
//!
//! Runs on a blocking thread ([`tokio::task::spawn_blocking`]) and drives the async upload with
//! [`Handle::block_on`]: the `zip` writer is synchronous, and the digests and CRC of a 3 GiB
//! dossier are seconds of CPU that must not hold a runtime worker.
//!
//! Entries are stored, not deflated: what DS holds is mostly PDF, JPEG, PNG and Office/ODF
//! documents, already compressed, so deflate would spend CPU for a few percent at best; stored
//! entries also keep each file's bytes in the zip identical to the bytes digested.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use tokio::runtime::Handle;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::sink::{self, Upload};

/// Entries at least this large get ZIP64 headers (the 32-bit size fields hold up to
/// `u32::MAX - 1`).
const ZIP64_FROM: u64 = 0xFFFF_FFFF;

/// Bytes the zip writer produced and the upload has not taken yet.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("zip buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// Why writing the zip stopped.
#[derive(Debug)]
pub(crate) enum ZipError {
    /// The `zip` writer refused (a bug, or an entry larger than declared).
    Zip(String),
    /// OUT failed.
    Sink(sink::Error),
}

impl From<zip::result::ZipError> for ZipError {
    fn from(e: zip::result::ZipError) -> ZipError {
        ZipError::Zip(e.to_string())
    }
}

impl From<std::io::Error> for ZipError {
    fn from(e: std::io::Error) -> ZipError {
        ZipError::Zip(e.to_string())
    }
}

/// A zip being written to an upload; see the module doc.
pub(crate) struct ZipOut {
    zip: ZipWriter<StreamWriter<Shared>>,
    buf: Shared,
    upload: Box<dyn Upload>,
    rt: Handle,
    written: u64,
}

impl std::fmt::Debug for ZipOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipOut")
            .field("written", &self.written)
            .finish()
    }
}

impl ZipOut {
    /// Must run on a blocking thread of `rt` (never on a runtime worker: `block_on` panics
    /// there).
    pub fn new(upload: Box<dyn Upload>, rt: Handle) -> ZipOut {
        let buf = Shared::default();
        ZipOut {
            zip: ZipWriter::new_stream(buf.clone()),
            buf,
            upload,
            rt,
            written: 0,
        }
    }

    /// Starts the entry `name` of `size` bytes (used to choose ZIP64; the writer checks it).
    pub fn start(
        &mut self,
        name: &str,
        size: u64,
        modified: Option<DateTime<Utc>>,
    ) -> Result<(), ZipError> {
        let mut options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .unix_permissions(0o644)
            .large_file(size >= ZIP64_FROM);
        if let Some(t) = modified.and_then(zip_time) {
            options = options.last_modified_time(t);
        }
        self.zip.start_file(name, options)?;
        self.drain()
    }

    /// Appends `bytes` to the current entry.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ZipError> {
        self.zip.write_all(bytes)?;
        self.drain()
    }

    /// Writes the central directory and publishes the zip; returns its size.
    pub fn commit(self) -> Result<u64, ZipError> {
        let ZipOut {
            zip,
            buf,
            mut upload,
            rt,
            mut written,
        } = self;
        zip.finish()?;
        let tail = buf.take();
        written += tail.len() as u64;
        if !tail.is_empty() {
            rt.block_on(upload.write(Bytes::from(tail)))
                .map_err(ZipError::Sink)?;
        }
        rt.block_on(upload.commit()).map_err(ZipError::Sink)?;
        Ok(written)
    }

    /// Discards the zip: nothing is published.
    pub fn abort(self) {
        if let Err(e) = self.rt.block_on(self.upload.abort()) {
            tracing::warn!("discarding an unfinished package: {e}");
        }
    }

    /// Hands what the writer produced to the upload.
    fn drain(&mut self) -> Result<(), ZipError> {
        let chunk = self.buf.take();
        if chunk.is_empty() {
            return Ok(());
        }
        self.written += chunk.len() as u64;
        self.rt
            .block_on(self.upload.write(Bytes::from(chunk)))
            .map_err(ZipError::Sink)
    }
}

/// A zip (MS-DOS) time, for dates zip can hold (1980–2107).
fn zip_time(t: DateTime<Utc>) -> Option<zip::DateTime> {
    let year = u16::try_from(t.year()).ok()?;
    let narrow = |v: u32| u8::try_from(v).ok();
    zip::DateTime::from_date_and_time(
        year,
        narrow(t.month())?,
        narrow(t.day())?,
        narrow(t.hour())?,
        narrow(t.minute())?,
        narrow(t.second())?,
    )
    .ok()
}
