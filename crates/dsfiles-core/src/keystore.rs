//! The run-wide key allocator's store: what lets a layout whose dossiers meet (`{filename}`,
//! `{label}/{filename}`, …) hold every key of a démarche in flat memory.
//!
//! When the layout keeps dossiers apart, each dossier decides its keys in an allocator of its
//! own, on the heap, dropped with the dossier (`sync/publish.rs`, "Which allocator"). Otherwise
//! one allocator must know every key of the dossiers seen so far — about 0.6 KB per file on the
//! heap, 600 MB for a million files. [`DiskStore`] keeps those maps in SQLite instead. Rules:
//!
//! - **The run's alone.** The database is SQLite's private temporary one (opened with an empty
//!   name): SQLite unlinks its file as it creates it, so it disappears with the run, even under
//!   kill -9, and nothing ever reads it back. It holds decisions of this run only; what earlier
//!   runs stored comes, as before, from the manifest shards and the destination itself.
//! - **Memory is the page cache, capped.** SQLite keeps at most [`CACHE_KIB`] of pages in
//!   memory and writes the rest to the file; lookups go through B-trees keyed by the strings
//!   the allocator asks for (`WITHOUT ROWID` tables, one per map of `KeyStore`).
//! - **No journal, grouped commits.** A failed run throws the whole store away, so nothing is
//!   ever rolled back: no journal, no `fsync`, and writes are committed by groups of
//!   `commit_every` (a commit of a temporary database only moves pages to the file).
//! - **Errors are returned, never swallowed.** Any SQLite error (a full disk) goes back to the
//!   allocator, which then refuses every later decision (`dsfiles_extract::KeyAllocator`).

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::extract::{KeyStore, StoreError};

/// The page cache SQLite may keep in memory, in KiB.
pub(crate) const CACHE_KIB: u32 = 4096;

/// Writes per transaction, unless a test asks for fewer.
const COMMIT_EVERY: usize = 4096;

/// A [`KeyStore`] in a private temporary SQLite database; see the module docs.
pub(crate) struct DiskStore {
    db: Connection,
    /// Writes since the open transaction began.
    writes: usize,
    commit_every: usize,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens an empty store in SQLite's temporary directory (`SQLITE_TMPDIR`, else `TMPDIR`,
    /// else `/var/tmp`, `/usr/tmp`, `/tmp`).
    pub(crate) fn open() -> Result<DiskStore, rusqlite::Error> {
        Self::open_with(COMMIT_EVERY)
    }

    fn open_with(commit_every: usize) -> Result<DiskStore, rusqlite::Error> {
        let db = Connection::open("")?;
        db.execute_batch(&format!(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA temp_store = FILE;
             PRAGMA cache_size = -{CACHE_KIB};
             CREATE TABLE by_file (file_id TEXT PRIMARY KEY, key TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE files (folded TEXT PRIMARY KEY, file_id TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE dirs (folded TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE numbers (folded TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
             BEGIN;"
        ))?;
        Ok(DiskStore {
            db,
            writes: 0,
            commit_every: commit_every.max(1),
        })
    }

    /// Runs one write ([`DiskStore::wrote`]).
    fn write(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        self.db.prepare_cached(sql)?.execute(params)?;
        self.wrote()
    }

    /// Counts a write, committing the open transaction once it holds `commit_every` writes.
    fn wrote(&mut self) -> Result<(), StoreError> {
        self.writes += 1;
        if self.writes >= self.commit_every {
            self.db.execute_batch("COMMIT; BEGIN;")?;
            self.writes = 0;
        }
        Ok(())
    }

    fn text(&self, sql: &str, key: &str) -> Result<Option<String>, StoreError> {
        let mut statement = self.db.prepare_cached(sql)?;
        Ok(statement.query_row([key], |row| row.get(0)).optional()?)
    }
}

impl KeyStore for DiskStore {
    fn key(&self, file_id: &str) -> Result<Option<String>, StoreError> {
        self.text("SELECT key FROM by_file WHERE file_id = ?1", file_id)
    }

    fn set_key(&mut self, file_id: &str, key: &str) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO by_file (file_id, key) VALUES (?1, ?2)";
        self.write(sql, params![file_id, key])
    }

    fn remove_key(&mut self, file_id: &str) -> Result<Option<String>, StoreError> {
        let sql = "DELETE FROM by_file WHERE file_id = ?1 RETURNING key";
        let key: Option<String> = (self.db.prepare_cached(sql)?)
            .query_row([file_id], |row| row.get(0))
            .optional()?;
        if key.is_some() {
            self.wrote()?;
        }
        Ok(key)
    }

    fn holder(&self, folded: &str) -> Result<Option<String>, StoreError> {
        self.text("SELECT file_id FROM files WHERE folded = ?1", folded)
    }

    fn set_holder(&mut self, folded: &str, file_id: &str) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO files (folded, file_id) VALUES (?1, ?2)";
        self.write(sql, params![folded, file_id])
    }

    fn remove_holder(&mut self, folded: &str) -> Result<(), StoreError> {
        self.write("DELETE FROM files WHERE folded = ?1", [folded])
    }

    fn is_dir(&self, folded: &str) -> Result<bool, StoreError> {
        let mut statement = self
            .db
            .prepare_cached("SELECT 1 FROM dirs WHERE folded = ?1")?;
        Ok(statement.exists([folded])?)
    }

    fn count_dir(&mut self, folded: &str, up: bool) -> Result<(), StoreError> {
        if up {
            let sql = "INSERT INTO dirs (folded, n) VALUES (?1, 1)
                       ON CONFLICT (folded) DO UPDATE SET n = n + 1";
            return self.write(sql, [folded]);
        }
        self.write("UPDATE dirs SET n = n - 1 WHERE folded = ?1", [folded])?;
        self.write("DELETE FROM dirs WHERE folded = ?1 AND n <= 0", [folded])
    }

    fn next_number(&self, folded: &str) -> Result<Option<u32>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached("SELECT n FROM numbers WHERE folded = ?1")?;
        Ok(statement.query_row([folded], |row| row.get(0)).optional()?)
    }

    fn set_next_number(&mut self, folded: &str, n: u32) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO numbers (folded, n) VALUES (?1, ?2)";
        self.write(sql, params![folded, n])
    }
}

#[cfg(test)]
mod tests;
