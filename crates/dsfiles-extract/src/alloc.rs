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
//!
//! "Free" is decided on a case-folded form (NTFS and APFS are case-insensitive by default,
//! keys are already NFC), and also rules out a file and a directory of the same name
//! (`12/a` as a file and `12/a/b.pdf`): a directory in the way of a new key gets the number
//! instead (`12/a (2)/b.pdf`). The result depends only on the keys held and the order of the
//! calls, which the pipeline keeps deterministic (dossier order, then extraction order).

use std::collections::HashMap;

use crate::sanitize::{suffix_component, suffix_number};
use crate::{Error, RelKey};

/// Keys held by file ids; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct KeyAllocator {
    /// file id → its key.
    by_file: HashMap<String, RelKey>,
    /// Folded key → the file id holding it.
    files: HashMap<String, String>,
    /// Folded directory (every proper prefix of a held key) → how many keys are under it.
    dirs: HashMap<String, usize>,
}

/// Why a key cannot be taken.
enum Conflict {
    /// Another file holds the same (folded) key.
    Taken(String),
    /// Other keys live under this key as a directory.
    IsDirectory,
    /// The prefix made of the first `n + 1` components is another file's key.
    ParentIsFile(usize),
}

impl KeyAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.by_file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }

    /// The key `file_id` holds, if any.
    pub fn key_of(&self, file_id: &str) -> Option<&RelKey> {
        self.by_file.get(file_id)
    }

    /// Records that `file_id` already holds `key` (e.g. from the manifest), replacing the key
    /// it held before. Fails, changing nothing, when the key conflicts with another file's.
    pub fn insert_existing(&mut self, file_id: &str, key: RelKey) -> Result<(), Error> {
        let previous = self.release(file_id);
        match self.conflict(&key.components().collect::<Vec<_>>(), Some(file_id)) {
            None => {
                self.hold(file_id, key);
                Ok(())
            }
            Some(conflict) => {
                if let Some(previous) = previous {
                    self.hold(file_id, previous);
                }
                let with = match conflict {
                    Conflict::Taken(other) => format!("the key of file `{other}`"),
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
        }
    }

    /// The key `file_id` gets for the rendered key `desired`: the one it already holds if that
    /// is `desired` or a numbered variant of it, else the first free variant (the previous key
    /// of `file_id`, if any, is then released: the caller moves or deletes that object).
    pub fn allocate(&mut self, file_id: &str, desired: &RelKey) -> RelKey {
        if let Some(held) = self.by_file.get(file_id) {
            if is_variant(desired, held) {
                return held.clone();
            }
            self.release(file_id);
        }
        let mut components: Vec<String> = desired.components().map(str::to_owned).collect();
        let last = components.len() - 1;
        loop {
            let view: Vec<&str> = components.iter().map(String::as_str).collect();
            let (index, keep_ext) = match self.conflict(&view, None) {
                None => break,
                Some(Conflict::Taken(_) | Conflict::IsDirectory) => (last, true),
                Some(Conflict::ParentIsFile(i)) => (i, false),
            };
            // The next number for that component: one more than its current one, from 2.
            let original = desired.components().nth(index).unwrap_or_default();
            let n = if components[index] == original {
                2
            } else {
                suffix_number(&components[index], keep_ext).map_or(2, |n| n + 1)
            };
            components[index] = suffix_component(original, n, keep_ext);
        }
        let key = RelKey::from_sanitized_components(&components);
        self.hold(file_id, key.clone());
        key
    }

    /// Forgets the key of `file_id` (its file is gone), returning it.
    pub fn release(&mut self, file_id: &str) -> Option<RelKey> {
        let key = self.by_file.remove(file_id)?;
        self.files.remove(&fold(key.as_str()));
        for dir in dir_prefixes(key.as_str()) {
            let folded = fold(dir);
            if let Some(count) = self.dirs.get_mut(&folded) {
                *count -= 1;
                if *count == 0 {
                    self.dirs.remove(&folded);
                }
            }
        }
        Some(key)
    }

    fn hold(&mut self, file_id: &str, key: RelKey) {
        self.files.insert(fold(key.as_str()), file_id.to_owned());
        for dir in dir_prefixes(key.as_str()) {
            *self.dirs.entry(fold(dir)).or_default() += 1;
        }
        self.by_file.insert(file_id.to_owned(), key);
    }

    /// The first reason `components` cannot be a new key (`owner` itself never conflicts).
    fn conflict(&self, components: &[&str], owner: Option<&str>) -> Option<Conflict> {
        let mut prefix = String::new();
        for (i, component) in components.iter().enumerate() {
            if i > 0 {
                prefix.push('/');
            }
            prefix.push_str(&fold(component));
            let is_last = i + 1 == components.len();
            if let Some(holder) = self.files.get(&prefix)
                && Some(holder.as_str()) != owner
            {
                return Some(if is_last {
                    Conflict::Taken(holder.clone())
                } else {
                    Conflict::ParentIsFile(i)
                });
            }
            if is_last && self.dirs.contains_key(&prefix) {
                return Some(Conflict::IsDirectory);
            }
        }
        None
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
