//! The size of the served démarche, counted without hashing a file: what `dsfiles-sim`
//! announces and what a scale run expects to sync.

use super::SimHandle;

impl SimHandle {
    /// Live dossiers, and the files (and bytes) of
    /// [`expected_files(false, false)`](SimHandle::expected_files), counted cheaply.
    pub fn totals(&self) -> crate::Totals {
        self.world.read_state().totals()
    }
}
