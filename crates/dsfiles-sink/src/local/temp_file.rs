//! How an upload's bytes reach its temp file: through the page cache, or with `O_DIRECT`
//! straight to the disk.
//!
//! Direct I/O is used on Linux when the sink fsyncs (its default): the bytes have to reach
//! the disk before the rename anyway, and writing them there directly skips the kernel's copy
//! into the page cache and the writeback that `fsync` would then wait for — on the bench
//! machine that copy alone was a tenth of the CPU of a sync, and buffered writes followed by
//! `fsync` reached the disk several times slower than direct ones. `O_DIRECT` wants whole
//! blocks from aligned memory at aligned offsets: [`Block`] is such a buffer, every write but
//! the last is a full one, and the last is padded with zeros to a block boundary, then the
//! file is truncated to its real length. A file system that refuses `O_DIRECT` (at `open`, or
//! at the first write) gets buffered writes instead, for that file and for every later one of
//! the sink.

use std::fs::File;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// Alignment of direct writes: address, length and file offset. 4 KiB covers disks with 512-byte
/// and with 4 KiB logical blocks.
pub(super) const ALIGN: usize = 4096;

/// A write buffer whose data starts at an [`ALIGN`]-aligned address and holds up to
/// `capacity` bytes (a multiple of [`ALIGN`]). Never zero-filled: `mem` holds `start` bytes of
/// padding, then the data.
///
/// It grows as data comes, from [`FIRST_ALLOCATION`] doubling up to `capacity`, each time into
/// a new aligned allocation (the data so far copied over, at most `capacity / 2` bytes once per
/// upload): most uploads are small files that wait for the group commit whole, and a buffer of
/// `capacity` for each held a quarter of a megabyte of heap per 4 KiB file in flight.
/// **`mem` never reallocates by itself**: every allocation has room for its whole rounded-up
/// data plus the alignment padding ([`Block::reserve`]), so the address, and the alignment, stay.
#[derive(Default)]
pub(super) struct Block {
    mem: Vec<u8>,
    start: usize,
    capacity: usize,
}

/// The first allocation of a [`Block`] that receives data.
const FIRST_ALLOCATION: usize = 16 * 1024;

impl Block {
    /// An empty buffer for up to `capacity` bytes; allocates nothing until data comes.
    pub(super) fn new(capacity: usize) -> Block {
        debug_assert!(capacity.is_multiple_of(ALIGN));
        Block {
            mem: Vec::new(),
            start: 0,
            capacity,
        }
    }

    /// Room for `len` bytes of data (at most `capacity`), rounded up to [`ALIGN`], without
    /// `mem` reallocating: otherwise a new allocation, twice the last at least, aligned, with
    /// the data copied into it.
    fn reserve(&mut self, len: usize) {
        let need = len.next_multiple_of(ALIGN).min(self.capacity);
        // A `mem` with capacity is one this function allocated.
        if need == 0 || (self.mem.capacity() > 0 && self.start + need <= self.mem.capacity()) {
            return;
        }
        let room = self.mem.capacity().saturating_sub(self.start);
        let size = need.max(2 * room).max(FIRST_ALLOCATION).min(self.capacity);
        let mut mem = Vec::<u8>::with_capacity(size + ALIGN);
        // For bytes the offset to the next aligned address is always below ALIGN; `mem` never
        // grows past its capacity, so its address (and the alignment) never changes.
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        mem.resize(start, 0);
        mem.extend_from_slice(self.filled());
        (self.mem, self.start) = (mem, start);
    }

    /// Copies as much of `src` as fits; returns how many bytes were taken.
    pub(super) fn fill(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.capacity - self.len());
        self.reserve(self.len() + n);
        self.mem.extend_from_slice(&src[..n]);
        n
    }

    pub(super) fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.mem.len() - self.start
    }

    pub(super) fn clear(&mut self) {
        self.mem.truncate(self.start);
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.mem[self.start..]
    }

    /// The data followed by zeros up to the next multiple of [`ALIGN`]; the zeros stay in the
    /// buffer (only [`Block::clear`] may follow).
    fn padded(&mut self) -> &[u8] {
        let end = self.start + self.len().next_multiple_of(ALIGN);
        self.mem.resize(end, 0);
        &self.mem[self.start..]
    }
}

/// An open temp file and the number of bytes of data written to it.
pub(super) struct TempFile {
    file: File,
    /// Opened with `O_DIRECT`: writes must be whole aligned blocks.
    direct: bool,
    /// `O_DIRECT` was asked for and the file system refused it, at `open` or at a write.
    refused: bool,
    len: u64,
}

/// Whether `e` is the file system's "not with O_DIRECT" answer.
fn refuses_direct(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return e.raw_os_error() == Some(libc::EINVAL);
    #[cfg(not(target_os = "linux"))]
    return false;
}

/// Creates `path`, which must not exist; with `O_DIRECT` when `direct` (Linux only).
fn create_new(path: &Path, direct: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    options.open(path)
}

impl TempFile {
    /// Creates `path` (which must not exist), with `O_DIRECT` when `direct` and the platform
    /// and file system take it; [`TempFile::refused_direct`] tells when it was refused.
    pub(super) fn create(path: &Path, direct: bool) -> std::io::Result<TempFile> {
        let direct = direct && cfg!(target_os = "linux");
        if direct {
            match create_new(path, true) {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        direct: true,
                        refused: false,
                        len: 0,
                    });
                }
                // Some file systems create the file before refusing the flag.
                Err(e) if refuses_direct(&e) => {
                    let _ = std::fs::remove_file(path);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(TempFile {
            file: create_new(path, false)?,
            direct: false,
            refused: direct,
            len: 0,
        })
    }

    /// Whether writes currently go straight to the disk.
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Whether the file system refused `O_DIRECT` for this file (at `open` or at a write).
    pub(super) fn refused_direct(&self) -> bool {
        self.refused
    }

    /// Appends the data of `block` (full: a multiple of [`ALIGN`]) and empties it.
    pub(super) fn write_block(&mut self, path: &Path, block: &mut Block) -> std::io::Result<()> {
        self.write(path, block.filled())?;
        self.len += block.len() as u64;
        block.clear();
        Ok(())
    }

    /// Appends what is left in `block` (any length) and empties it: padded to a block
    /// boundary for a direct file, which is then truncated to its real length.
    pub(super) fn finish(&mut self, path: &Path, block: &mut Block) -> std::io::Result<()> {
        let len = block.len();
        if len == 0 {
            return Ok(());
        }
        if self.direct {
            let padded = block.padded();
            let padding = padded.len() != len;
            self.write(path, padded)?;
            if padding {
                self.file.set_len(self.len + len as u64)?;
            }
        } else {
            self.write(path, block.filled())?;
        }
        self.len += len as u64;
        block.clear();
        Ok(())
    }

    /// Writes `data` at offset `self.len`. A refused direct write reopens the file without
    /// `O_DIRECT` (dropping whatever part of `data` reached it) and writes it again.
    fn write(&mut self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        if self.direct {
            match self.file.write_all(data) {
                Err(e) if refuses_direct(&e) => {
                    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
                    file.set_len(self.len)?;
                    file.seek(SeekFrom::Start(self.len))?;
                    self.file = file;
                    self.direct = false;
                    self.refused = true;
                }
                other => return other,
            }
        }
        self.file.write_all(data)
    }

    /// The open file (for a barrier that covers it).
    pub(super) fn as_file(&self) -> &File {
        &self.file
    }

    /// `fdatasync`: for a direct file, makes its size and block allocation durable.
    pub(super) fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests;
