//! The schedules of a service without a database: `<state_dir>/schedules.json`, all of them
//! in one file (at most `MAX_SCHEDULES`), rewritten atomically (a temporary file, then a
//! rename) after each change, before the change is answered — so a schedule `PUT` answered
//! `201`, and a tick that started a run, survive a crash. A file that cannot be read stops
//! the start-up: schedules are never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Definition, PutError, apply};
use crate::Error;
use crate::api::{MAX_SCHEDULES, Schedule};
use crate::jobs::lock;

/// The file's shape (versioned like the other wire formats).
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    schedules: Vec<Schedule>,
}

const VERSION: u32 = 1;

/// The schedules in memory and their file.
#[derive(Debug)]
pub(crate) struct LocalSchedules {
    path: PathBuf,
    by_name: Mutex<BTreeMap<String, Schedule>>,
}

impl LocalSchedules {
    /// Loads `<state_dir>/schedules.json` (none yet: no schedules).
    pub(crate) fn open(state_dir: &Path) -> Result<LocalSchedules, Error> {
        let path = state_dir.join("schedules.json");
        let fail = |source| Error::Store {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(fail)?;
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes)
                .map_err(|e| fail(std::io::Error::other(e)))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(err) => return Err(fail(err)),
        };
        let by_name = file
            .schedules
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        Ok(LocalSchedules {
            path,
            by_name: Mutex::new(by_name),
        })
    }

    pub(crate) fn list(&self) -> Vec<Schedule> {
        lock(&self.by_name).values().cloned().collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Schedule> {
        lock(&self.by_name).get(name).cloned()
    }

    pub(crate) fn put(
        &self,
        def: &Definition,
        now: DateTime<Utc>,
    ) -> Result<(Schedule, bool), PutError> {
        let mut by_name = lock(&self.by_name);
        let existing = by_name.get(&def.name).cloned();
        let created = existing.is_none();
        if created && by_name.len() >= MAX_SCHEDULES {
            return Err(PutError::TooMany);
        }
        let schedule = apply(def, existing, now);
        let mut changed = by_name.clone();
        changed.insert(def.name.clone(), schedule.clone());
        self.write(&changed).map_err(PutError::Store)?;
        *by_name = changed;
        Ok((schedule, created))
    }

    pub(crate) fn delete(&self, name: &str) -> Result<bool, Error> {
        let mut by_name = lock(&self.by_name);
        if !by_name.contains_key(name) {
            return Ok(false);
        }
        let mut changed = by_name.clone();
        changed.remove(name);
        self.write(&changed)?;
        *by_name = changed;
        Ok(true)
    }

    /// Applies `change` to schedule `name` if it exists and `still` holds of it (what the
    /// caller decided on has not changed meanwhile), then writes the file; `Ok(false)`
    /// otherwise.
    pub(crate) fn update(
        &self,
        name: &str,
        still: impl FnOnce(&Schedule) -> bool,
        change: impl FnOnce(&mut Schedule),
    ) -> Result<bool, Error> {
        let mut by_name = lock(&self.by_name);
        let Some(current) = by_name.get(name).filter(|s| still(s)) else {
            return Ok(false);
        };
        let mut schedule = current.clone();
        change(&mut schedule);
        let mut changed = by_name.clone();
        changed.insert(name.to_owned(), schedule);
        self.write(&changed)?;
        *by_name = changed;
        Ok(true)
    }

    fn write(&self, schedules: &BTreeMap<String, Schedule>) -> Result<(), Error> {
        let file = File {
            version: VERSION,
            schedules: schedules.values().cloned().collect(),
        };
        let fail = |source| Error::Store {
            path: self.path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| fail(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}
