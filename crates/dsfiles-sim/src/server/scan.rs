//! Virus scan results that change after upload, as DS's scanner sets them: what lets tests
//! produce files that are neither `safe` nor `pending`.

use super::{Error, SimHandle};

/// The results DS's API can report. `infected` is not among them: DS leaves infected files
/// out of the API altogether.
pub const VIRUS_SCAN_RESULTS: [&str; 3] = ["safe", "pending", "integrity_error"];

impl SimHandle {
    /// Sets the `virusScanResult` the API reports for file `id` (one of
    /// [`VIRUS_SCAN_RESULTS`]). Like DS's scanner, it does not touch the dossier's update time.
    pub fn set_virus_scan(&self, id: u64, result: &str) -> Result<(), Error> {
        let Some(&result) = VIRUS_SCAN_RESULTS.iter().find(|r| **r == result) else {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "virus scan result `{result}` is not one of `{}`",
                    VIRUS_SCAN_RESULTS.join("`, `")
                ),
            });
        };
        let mut state = self.world.write_state();
        let file = state
            .files
            .get_mut(usize::try_from(id).unwrap_or(usize::MAX))
            .ok_or(Error::FileNotFound { id })?;
        file.virus_scan = result;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::SimConfig;

    #[tokio::test]
    async fn the_expected_files_follow_a_changed_scan() {
        let sim = crate::start(SimConfig::default()).await.unwrap();
        let file = sim.expected_files(false, false)[0].id;
        sim.set_virus_scan(file, "integrity_error").unwrap();
        let scan = |sim: &crate::SimHandle| {
            sim.expected_files(false, false)
                .into_iter()
                .find(|f| f.id == file)
                .map(|f| f.virus_scan)
        };
        assert_eq!(scan(&sim).as_deref(), Some("integrity_error"));
        sim.set_virus_scan(file, "safe").unwrap();
        assert_eq!(scan(&sim).as_deref(), Some("safe"));

        let unknown = sim.set_virus_scan(file, "infected").unwrap_err();
        assert!(unknown.to_string().contains("`infected`"), "{unknown}");
        assert_eq!(scan(&sim).as_deref(), Some("safe"));
        assert!(matches!(
            sim.set_virus_scan(u64::MAX, "safe"),
            Err(crate::Error::FileNotFound { .. })
        ));
        sim.shutdown().await;
    }
}
