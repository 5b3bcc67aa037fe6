//! Collision-free keys: what guarantees that no file ever overwrites another.
//!
//! [`Layout::render`](crate::Layout::render) can map two different files to the same key
//! (same name twice in one champ, `Report.pdf` and `report.pdf`, a template without
//! `{filename}`). The [`KeyAllocator`] knows every key already held (loaded from the manifest
//! with [`KeyAllocator::insert_existing`]) and hands out keys with [`KeyAllocator::allocate`]:
//!
//! - a file that already holds a key keeps it as long as it is the key it wants or a numbered
//!   variant of it (`name (2).pdf`), so stored files never move between runs;
//! - otherwise it gets the first free key among `name.pdf`, `name (2).pdf`, `name (3).pdf`, ...
//!   where numbering goes on from the last number this allocator gave for that name: a number
//!   freed meanwhile (its file moved or was deleted) is given again only by a later allocator,
//!   i.e. the next run. Without that, the thousandth `scan.pdf` under one label of a
//!   `{label}/{filename}` layout would try the 999 keys before it, and a run would cost the
//!   square of the number of files sharing a name (measured: 437 s of CPU for 210,000 files);
//!
//! "Free" is decided on a case-folded form (NTFS and APFS are case-insensitive by default,
//! keys are already NFC), and also rules out a file and a directory of the same name
//! (`12/a` as a file and `12/a/b.pdf`): a directory in the way of a new key gets the number
//! instead (`12/a (2)/b.pdf`). The result depends only on the keys held and the order of the
//! calls, which the pipeline keeps deterministic (dossier order, then extraction order).
//!
//! **Stored keys win over planned ones.** A key given by [`KeyAllocator::allocate`] is
//! *planned*: no object of that file is there yet. So is one reserved with
//! [`KeyAllocator::insert_found`] for an object the caller found at a key and could not place.
//! A key held with [`KeyAllocator::insert_existing`] is *stored*: a manifest names it. When a
//! stored key meets a planned one, the stored one takes it, and the planned file loses its
//! reservation: its caller checks the destination before writing at a new key, finds the
//! stored object there, and asks again (`dsfiles-core`'s `sync/publish.rs`). Without that, a
//! run whose dossiers meet would give a new file of one dossier a key stored by a dossier it
//! reads later, then refuse that dossier's own manifest entry as a conflict.
//!
//! **Where the keys are held.** The allocator decides; a [`KeyStore`] remembers. The default,
//! [`MemoryStore`], keeps its maps on the heap, which suits an allocator that lives for one
//! dossier. One that must hold every key of a run (a layout that lets dossiers meet) uses a
//! store on disk instead (`dsfiles-core`'s `keystore`), so that the run's memory does not grow
//! with the démarche. A store can fail (a full disk): the error is returned as
//! [`Error::KeyStore`], and since a half-done update may have left the maps out of step with
//! each other, the allocator then answers every later call with that same error rather than
//! decide anything from them.

use std::collections::HashMap;

use crate::sanitize::{suffix_component, suffix_number};
use crate::{Error, RelKey};

/// Why a [`KeyStore`] could not answer.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// The maps a [`KeyAllocator`] keeps (see the module docs). Keys are stored as given
/// (valid [`RelKey`]s); "folded" strings are the case-folded keys and directories.
pub trait KeyStore: Send {
    /// File id → its key.
    fn key(&self, file_id: &str) -> Result<Option<String>, StoreError>;
    /// Records the key of a file id that holds none.
    fn set_key(&mut self, file_id: &str, key: &str) -> Result<(), StoreError>;
    /// Forgets the key of `file_id`, returning it.
    fn remove_key(&mut self, file_id: &str) -> Result<Option<String>, StoreError>;
    /// Folded key → the file id holding it.
    fn holder(&self, folded: &str) -> Result<Option<String>, StoreError>;
    fn set_holder(&mut self, folded: &str, file_id: &str) -> Result<(), StoreError>;
    fn remove_holder(&mut self, folded: &str) -> Result<(), StoreError>;
    /// Whether some held key lies under the folded directory.
    fn is_dir(&self, folded: &str) -> Result<bool, StoreError>;
    /// Counts one more (`up`) or one fewer held key under the folded directory, forgetting it
    /// at zero.
    fn count_dir(&mut self, folded: &str, up: bool) -> Result<(), StoreError>;
    /// Folded desired key → the number its numbering goes on from (see the module docs).
    fn next_number(&self, folded: &str) -> Result<Option<u32>, StoreError>;
    fn set_next_number(&mut self, folded: &str, n: u32) -> Result<(), StoreError>;
}

/// The [`KeyStore`] on the heap.
#[derive(Debug, Default)]
pub struct MemoryStore {
    by_file: HashMap<String, String>,
    files: HashMap<String, String>,
    dirs: HashMap<String, usize>,
    numbers: HashMap<String, u32>,
}

impl KeyStore for MemoryStore {
    fn key(&self, file_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.by_file.get(file_id).cloned())
    }

    fn set_key(&mut self, file_id: &str, key: &str) -> Result<(), StoreError> {
        self.by_file.insert(file_id.to_owned(), key.to_owned());
        Ok(())
    }

    fn remove_key(&mut self, file_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.by_file.remove(file_id))
    }

    fn holder(&self, folded: &str) -> Result<Option<String>, StoreError> {
        Ok(self.files.get(folded).cloned())
    }

    fn set_holder(&mut self, folded: &str, file_id: &str) -> Result<(), StoreError> {
        self.files.insert(folded.to_owned(), file_id.to_owned());
        Ok(())
    }

    fn remove_holder(&mut self, folded: &str) -> Result<(), StoreError> {
        self.files.remove(folded);
        Ok(())
    }

    fn is_dir(&self, folded: &str) -> Result<bool, StoreError> {
        Ok(self.dirs.contains_key(folded))
    }

    fn count_dir(&mut self, folded: &str, up: bool) -> Result<(), StoreError> {
        if up {
            *self.dirs.entry(folded.to_owned()).or_default() += 1;
        } else if let Some(count) = self.dirs.get_mut(folded) {
            *count -= 1;
            if *count == 0 {
                self.dirs.remove(folded);
            }
        }
        Ok(())
    }

    fn next_number(&self, folded: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.numbers.get(folded).copied())
    }

    fn set_next_number(&mut self, folded: &str, n: u32) -> Result<(), StoreError> {
        self.numbers.insert(folded.to_owned(), n);
        Ok(())
    }
}

/// Keys held by file ids; see the module docs.
pub struct KeyAllocator {
    store: Box<dyn KeyStore>,
    /// The first store error, once there was one: every later call fails with it.
    broken: Option<String>,
}

impl Default for KeyAllocator {
    fn default() -> Self {
        Self::with_store(Box::new(MemoryStore::default()))
    }
}

impl std::fmt::Debug for KeyAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAllocator")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Why a key cannot be taken.
enum Conflict {
    /// Another file holds the same (folded) key; `planned`: see [`Hold`].
    Taken { holder: String, planned: bool },
    /// Other keys live under this key as a directory.
    IsDirectory,
    /// The prefix made of the first `n + 1` components is another file's key.
    ParentIsFile(usize),
}

/// How a key is held (module docs), kept as the first character of its holder in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    Stored,
    Planned,
}

impl Hold {
    fn tag(self) -> char {
        match self {
            Hold::Stored => '=',
            Hold::Planned => '+',
        }
    }

    /// The file id and how it holds, from a holder as stored.
    fn parse(holder: &str) -> (&str, Hold) {
        match holder.strip_prefix(Hold::Planned.tag()) {
            Some(id) => (id, Hold::Planned),
            None => (
                holder.strip_prefix(Hold::Stored.tag()).unwrap_or(holder),
                Hold::Stored,
            ),
        }
    }
}

impl KeyAllocator {
    /// An allocator holding its keys on the heap ([`MemoryStore`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An allocator holding its keys in `store`, which must be empty.
    pub fn with_store(store: Box<dyn KeyStore>) -> Self {
        KeyAllocator {
            store,
            broken: None,
        }
    }

    /// The key `file_id` holds, if any.
    pub fn key_of(&mut self, file_id: &str) -> Result<Option<RelKey>, Error> {
        let held = self.guard(|store| store.key(file_id))?;
        // Only `hold` writes this map, and only with a `RelKey`'s string.
        Ok(held.map(RelKey::trusted))
    }

    /// Records that `file_id` already holds `key` (e.g. from the manifest), replacing the key
    /// it held before; a file only planned at that key loses it (module docs). Fails, changing
    /// nothing, when the key conflicts with another file's ([`Error::KeyConflict`]), or when
    /// the store fails ([`Error::KeyStore`]).
    pub fn insert_existing(&mut self, file_id: &str, key: RelKey) -> Result<(), Error> {
        self.insert_as(file_id, key, (Hold::Stored, true))
    }

    /// Reserves `key` for an object the caller is about to write under the id `file_id` (a
    /// dossier.json): as [`KeyAllocator::insert_existing`], but a key planned for another file
    /// is a conflict — that file may write there first.
    pub fn reserve(&mut self, file_id: &str, key: RelKey) -> Result<(), Error> {
        self.insert_as(file_id, key, (Hold::Stored, false))
    }

    /// Reserves `key` for an object found there that is not the caller's to replace (a
    /// foreign object, or one of a dossier not read yet), so that nothing new takes it. A key
    /// already in use (held, or in the way of held keys) needs nothing more.
    pub fn insert_found(&mut self, key: RelKey) -> Result<(), Error> {
        match self.insert_as(&format!("found:{key}"), key, (Hold::Planned, false)) {
            Err(Error::KeyConflict { .. }) => Ok(()),
            other => other,
        }
    }

    /// Holds `key` for `file_id` as `how`; `takes_planned`: a file planned at `key` loses it.
    fn insert_as(
        &mut self,
        file_id: &str,
        key: RelKey,
        (how, takes_planned): (Hold, bool),
    ) -> Result<(), Error> {
        let previous = self.unhold(file_id)?;
        let components: Vec<&str> = key.components().collect();
        let mut conflict = self.conflict(&components, Some(file_id))?;
        if takes_planned
            && let Some(Conflict::Taken {
                holder,
                planned: true,
            }) = &conflict
        {
            self.release(holder)?;
            conflict = self.conflict(&components, Some(file_id))?;
        }
        let Some(conflict) = conflict else {
            return self.hold(file_id, &key, how);
        };
        if let Some((previous, was)) = previous {
            self.hold(file_id, &previous, was)?;
        }
        let with = match conflict {
            Conflict::Taken { holder, .. } => format!("the key of file `{holder}`"),
            Conflict::IsDirectory => "a directory of other keys".to_owned(),
            Conflict::ParentIsFile(i) => format!(
                "the key `{}` of another file",
                key.components().take(i + 1).collect::<Vec<_>>().join("/")
            ),
        };
        Err(Error::KeyConflict {
            key: key.into_string(),
            file_id: file_id.to_owned(),
            with,
        })
    }

    /// The key `file_id` gets for the rendered key `desired`: the one it already holds if that
    /// is `desired` or a numbered variant of it, else the first free variant (the previous key
    /// of `file_id`, if any, is then released: the caller moves or deletes that object).
    /// Fails only when the store does ([`Error::KeyStore`]).
    pub fn allocate(&mut self, file_id: &str, desired: &RelKey) -> Result<RelKey, Error> {
        if let Some(held) = self.key_of(file_id)? {
            if is_variant(desired, &held) {
                return Ok(held);
            }
            self.release(file_id)?;
        }
        let mut components: Vec<String> = desired.components().map(str::to_owned).collect();
        let last = components.len() - 1;
        let folded = fold(desired.as_str());
        // Numbering goes on from this name's last number only while the parents are as
        // desired (a parent numbered because a file holds its name is another name).
        let (mut parents_renamed, mut last_number) = (false, None);
        loop {
            let view: Vec<&str> = components.iter().map(String::as_str).collect();
            let (index, keep_ext) = match self.conflict(&view, None)? {
                None => break,
                Some(Conflict::Taken { .. } | Conflict::IsDirectory) => (last, true),
                Some(Conflict::ParentIsFile(i)) => (i, false),
            };
            parents_renamed |= index != last;
            // The next number for that component: one more than its current one, from 2 (or
            // from where this name's numbering stopped).
            let original = desired.components().nth(index).unwrap_or_default();
            let n = if components[index] != original {
                suffix_number(&components[index], keep_ext).map_or(2, |n| n + 1)
            } else if index == last && !parents_renamed {
                self.guard(|store| store.next_number(&folded))?.unwrap_or(2)
            } else {
                2
            };
            if index == last {
                last_number = Some(n);
            }
            components[index] = suffix_component(original, n, keep_ext);
        }
        if let Some(n) = last_number.filter(|_| !parents_renamed) {
            self.guard(|store| store.set_next_number(&folded, n.saturating_add(1)))?;
        }
        let key = RelKey::from_sanitized_components(&components);
        self.hold(file_id, &key, Hold::Planned)?;
        Ok(key)
    }

    /// Forgets the key of `file_id` (its file is gone), returning it.
    pub fn release(&mut self, file_id: &str) -> Result<Option<RelKey>, Error> {
        Ok(self.unhold(file_id)?.map(|(key, _)| key))
    }

    /// [`KeyAllocator::release`], with how the key was held (to hold it again as it was).
    fn unhold(&mut self, file_id: &str) -> Result<Option<(RelKey, Hold)>, Error> {
        self.guard(|store| {
            let Some(key) = store.remove_key(file_id)? else {
                return Ok(None);
            };
            let folded = fold(&key);
            let how = store
                .holder(&folded)?
                .map_or(Hold::Stored, |h| Hold::parse(&h).1);
            store.remove_holder(&folded)?;
            for dir in dir_prefixes(&key) {
                store.count_dir(&fold(dir), false)?;
            }
            Ok(Some((RelKey::trusted(key), how)))
        })
    }

    fn hold(&mut self, file_id: &str, key: &RelKey, how: Hold) -> Result<(), Error> {
        self.guard(|store| {
            store.set_holder(&fold(key.as_str()), &format!("{}{file_id}", how.tag()))?;
            for dir in dir_prefixes(key.as_str()) {
                store.count_dir(&fold(dir), true)?;
            }
            store.set_key(file_id, key.as_str())
        })
    }

    /// The first reason `components` cannot be a new key (`owner` itself never conflicts).
    fn conflict(
        &mut self,
        components: &[&str],
        owner: Option<&str>,
    ) -> Result<Option<Conflict>, Error> {
        self.guard(|store| {
            let mut prefix = String::new();
            for (i, component) in components.iter().enumerate() {
                if i > 0 {
                    prefix.push('/');
                }
                prefix.push_str(&fold(component));
                let is_last = i + 1 == components.len();
                if let Some(held) = store.holder(&prefix)?
                    && let (holder, how) = Hold::parse(&held)
                    && Some(holder) != owner
                {
                    return Ok(Some(if is_last {
                        Conflict::Taken {
                            holder: holder.to_owned(),
                            planned: how == Hold::Planned,
                        }
                    } else {
                        Conflict::ParentIsFile(i)
                    }));
                }
                if is_last && store.is_dir(&prefix)? {
                    return Ok(Some(Conflict::IsDirectory));
                }
            }
            Ok(None)
        })
    }

    /// Runs `f` on the store unless it failed before; a failure breaks the allocator.
    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut dyn KeyStore) -> Result<T, StoreError>,
    ) -> Result<T, Error> {
        if let Some(reason) = &self.broken {
            return Err(Error::KeyStore {
                reason: reason.clone(),
            });
        }
        f(self.store.as_mut()).map_err(|e| {
            let reason = e.to_string();
            self.broken = Some(reason.clone());
            Error::KeyStore { reason }
        })
    }
}

/// Case-folded form used for every comparison.
fn fold(key: &str) -> String {
    key.to_lowercase()
}

/// `a`, `a/b` for `a/b/c`.
fn dir_prefixes(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').map(move |(i, _)| &key[..i])
}

/// Whether `held` is `desired` or what the allocator could have made of it.
fn is_variant(desired: &RelKey, held: &RelKey) -> bool {
    if desired == held {
        return true;
    }
    let wanted: Vec<&str> = desired.components().collect();
    let got: Vec<&str> = held.components().collect();
    if wanted.len() != got.len() {
        return false;
    }
    let last = wanted.len() - 1;
    wanted.iter().zip(&got).enumerate().all(|(i, (w, g))| {
        w == g || {
            let keep_ext = i == last;
            suffix_number(g, keep_ext).is_some_and(|n| suffix_component(w, n, keep_ext) == *g)
        }
    })
}

#[cfg(test)]
mod tests;
