//! External catalogues: a démarche whose files live on another server (a static server holding
//! a benchmark corpus, say). The simulator serves the dossiers and the files' metadata; the file
//! URLs point straight at that server, unsigned and never expiring, and the simulator's own file
//! host never sees those files (their bytes, faults and expiry are not its business).

use url::Url;

use crate::{Error, SimConfig};

/// One file hosted elsewhere, as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalFile {
    /// Path relative to [`ExternalFiles::base_url`], `/`-separated; the last segment is the
    /// filename DS reports.
    pub path: String,
    /// `byteSizeBigInt`.
    pub size: u64,
    /// `checksum`: base64 MD5 of the bytes the other server serves.
    pub md5_base64: String,
    pub content_type: String,
}

impl ExternalFile {
    /// The filename DS reports: the last segment of the path.
    pub fn filename(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Files hosted at `base_url`, grouped by dossier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalFiles {
    pub base_url: Url,
    /// `dossiers[i]`: the files of the i-th dossier, all in one "Annexes" champ, in order.
    pub dossiers: Vec<Vec<ExternalFile>>,
}

impl SimConfig {
    /// A démarche made of `dossiers` and nothing else: one dossier per group (state
    /// `en_construction`, so no attestation or motivation), each holding its files in an
    /// "Annexes" champ with virus scan `safe` and the given sizes and checksums, at URLs
    /// `base_url` joined with each path. No random files, hostile names, wrong checksums or
    /// deleted dossiers; the generated `pdf`/`geojson` exports remain (only listed on request).
    pub fn external_files(base_url: Url, dossiers: Vec<Vec<ExternalFile>>) -> SimConfig {
        SimConfig {
            dossiers: dossiers.len(),
            files_per_dossier: 0..=0,
            big_files: Vec::new(),
            deleted_dossiers: 0,
            wrong_checksums: 0,
            hostile_filenames: false,
            external: Some(ExternalFiles { base_url, dossiers }),
            ..SimConfig::default()
        }
    }
}

/// Checks that every path gives a URL and that every group has a dossier.
pub(crate) fn validate(config: &SimConfig) -> Result<(), Error> {
    let Some(external) = &config.external else {
        return Ok(());
    };
    if external.dossiers.len() > config.dossiers {
        return Err(Error::InvalidConfig {
            reason: format!(
                "`{}` groups of external files for `{}` dossiers",
                external.dossiers.len(),
                config.dossiers
            ),
        });
    }
    for file in external.dossiers.iter().flatten() {
        if file.filename().is_empty() {
            return Err(Error::InvalidConfig {
                reason: format!("external file path `{}` has no filename", file.path),
            });
        }
        external
            .base_url
            .join(&file.path)
            .map_err(|e| Error::InvalidConfig {
                reason: format!(
                    "external file path `{}` on `{}`: {e}",
                    file.path, external.base_url
                ),
            })?;
    }
    Ok(())
}

/// The external files of dossier `index`, with their URLs (validated by [`validate`]).
pub(crate) fn dossier_files(
    external: Option<&ExternalFiles>,
    index: usize,
) -> Vec<(ExternalFile, String)> {
    let Some(external) = external else {
        return Vec::new();
    };
    external
        .dossiers
        .get(index)
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.clone(), external.base_url.join(&f.path).ok()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ExternalFile {
        ExternalFile {
            path: path.to_owned(),
            size: 3,
            md5_base64: "rL0Y20zC+Fzt72VPzMSk2A==".to_owned(),
            content_type: "text/plain".to_owned(),
        }
    }

    #[test]
    fn urls_join_the_base_and_the_path() {
        let base = Url::parse("http://127.0.0.1:8080/corpus/").unwrap();
        let config =
            SimConfig::external_files(base, vec![vec![file("a/x.txt"), file("y.txt")], vec![]]);
        assert_eq!(config.dossiers, 2);
        validate(&config).unwrap();
        let urls: Vec<String> = dossier_files(config.external.as_ref(), 0)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:8080/corpus/a/x.txt",
                "http://127.0.0.1:8080/corpus/y.txt"
            ]
        );
        assert!(dossier_files(config.external.as_ref(), 1).is_empty());
        assert!(dossier_files(None, 0).is_empty());
        assert_eq!(file("a/b/c.pdf").filename(), "c.pdf");
    }

    #[test]
    fn a_path_without_filename_is_refused() {
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        let config = SimConfig::external_files(base, vec![vec![file("dir/")]]);
        assert!(matches!(
            validate(&config),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
