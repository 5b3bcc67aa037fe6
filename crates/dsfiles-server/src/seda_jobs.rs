//! `seda` jobs: `POST /v1/seda` packages what a sync stored in `dest` into SEDA 2.2 packages in
//! `out` (docs/seda.md), as a job of the same job manager as syncs — queued, run by any
//! replica, watched and cancelled the same way.
//!
//! A seda job is a [`SyncSpec`] whose `seda` is set ([`SedaJob`]: OUT, the profile, the
//! states); its record says `kind: "seda"`. Rules:
//!
//! - one seda job per OUT at a time, whatever its démarche: the job manager's key of a seda
//!   job is [`lock_key`], `(0, "seda:{out}")`. DS numbers start at 1, so no sync's key
//!   (`(démarche, dest)`) is ever a seda job's, and a webhook (which names a démarche) never
//!   coalesces into one. That is also the key the shared job table's unique indexes hold, so
//!   replicas agree on it without a schema change. The run itself holds OUT's lease
//!   (`.dsfiles/seda/lease`), which also excludes `dsfiles seda` CLI runs;
//! - `dest` and `out` go through the same allow-list and canonicalization as a sync's `dest`;
//! - the profile is an inline JSON object with the profile file's keys (unknown keys refused,
//!   the same checks as `--profile`): the client never makes the service read a file. It is
//!   kept in the job record as given (no secret in a profile), so any replica can run it;
//! - the job's `counters` count dossiers, not files: `dossiers` listed, `files_stored`
//!   packages written (`bytes_stored` their bytes), `files_skipped` dossiers unchanged or
//!   skipped, `files_failed` dossiers that failed (each in `failures`, keyed `dossier N`),
//!   `bytes_downloaded` bytes read from `dest`; the job's `seda.result` has the report's counts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::api::{Counters, DestinationBusy, FileFailure, SyncSpec, check_ds_number};
use crate::pipeline::{Pipeline, PipelineError, PipelineErrorKind, SyncOutcome, SyncProgress};

/// The démarche part of a seda job's key: no DS démarche has it (see the module doc).
pub const SEDA_KEY_DEMARCHE: u64 = 0;

/// `POST /v1/seda`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SedaRequest {
    /// Package only this démarche's dossiers.
    #[serde(deserialize_with = "crate::api::whole::number")]
    pub demarche: u64,
    /// A destination written by a sync.
    pub dest: String,
    /// Where the packages go.
    pub out: String,
    /// The archival profile: the keys of the CLI's profile file, as a JSON object.
    pub profile: serde_json::Value,
    /// Only these dossiers (empty: every dossier of the démarche in `dest`).
    #[serde(default, deserialize_with = "crate::api::whole::numbers")]
    pub dossiers: Vec<u64>,
    /// DS states to package (absent or empty: `accepte`, `refuse`, `sans_suite`).
    #[serde(default)]
    pub states: Option<Vec<String>>,
    /// Take over OUT's lease even from a live holder (one known to be gone).
    #[serde(default)]
    pub break_lease: bool,
}

/// What a seda job does besides its démarche, `dest` and dossiers (in the job's spec and
/// record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaJob {
    /// OUT, canonical.
    pub out: String,
    /// The profile as given (checked when the job was accepted, and again when it runs).
    pub profile: serde_json::Value,
    pub states: Vec<String>,
    /// The report's counts, once the job ended with one.
    #[serde(default)]
    pub result: Option<SedaResult>,
}

/// The counts of a finished seda job's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SedaResult {
    pub dossiers: u64,
    pub packaged: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes_written: u64,
}

impl SedaRequest {
    /// Checks what serde cannot: numbers, states, the profile (the error names the key).
    pub fn validate(&self) -> Result<(), String> {
        check_ds_number("demarche", self.demarche)?;
        for dossier in &self.dossiers {
            check_ds_number("dossiers", *dossier)?;
        }
        if self.dossiers.len() > crate::api::MAX_DOSSIERS {
            return Err(format!(
                "`dossiers` names `{}` dossiers; at most `{}`",
                self.dossiers.len(),
                crate::api::MAX_DOSSIERS
            ));
        }
        let mut opts = options_of(&self.profile, self.states())?;
        opts.demarche = Some(self.demarche);
        opts.validate().map_err(|e| e.to_string())
    }

    /// The states asked for, else (absent or empty) the default ones.
    pub fn states(&self) -> Vec<String> {
        match &self.states {
            Some(states) if !states.is_empty() => states.clone(),
            _ => dsfiles_core::seda::DEFAULT_STATES
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// The core's options from a job's profile and states (the error names the profile's key).
fn options_of(
    profile: &serde_json::Value,
    states: Vec<String>,
) -> Result<dsfiles_core::seda::SedaOptions, String> {
    let profile = dsfiles_core::seda::Profile::from_json(profile.clone(), "profile")
        .map_err(|e| e.to_string())?;
    let mut opts = dsfiles_core::seda::SedaOptions::new(profile);
    opts.states = states;
    Ok(opts)
}

/// The job manager's key of `spec`: `(démarche, dest)` for a sync, [`seda_key`] for a seda
/// job.
pub(crate) fn lock_key(spec: &SyncSpec) -> (u64, String) {
    match &spec.seda {
        Some(seda) => seda_key(&seda.out),
        None => (spec.demarche, spec.dest.clone()),
    }
}

/// [`lock_key`] of the job `record` describes.
pub(crate) fn record_key(record: &crate::api::JobRecord) -> (u64, String) {
    match &record.seda {
        Some(seda) => seda_key(&seda.out),
        None => (record.demarche, record.dest.clone()),
    }
}

/// The key of the seda jobs into `out` (see the module doc).
pub(crate) fn seda_key(out: &str) -> (u64, String) {
    (SEDA_KEY_DEMARCHE, format!("seda:{out}"))
}

/// Runs `spec` with `pipeline`: a sync, or a seda job when `spec.seda` is set.
pub(crate) async fn run(
    pipeline: &Arc<dyn Pipeline>,
    spec: SyncSpec,
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
) -> Result<SyncOutcome, PipelineError> {
    if spec.seda.is_some() {
        pipeline.seda(spec, progress, cancel).await
    } else {
        pipeline.sync(spec, progress, cancel).await
    }
}

/// A seda job with the core: opens DEST and OUT with `dest_options`, packages, maps the
/// report. `holder` names the service in OUT's lease.
pub(crate) async fn package(
    spec: SyncSpec,
    dest_options: &[(String, String)],
    holder: dsfiles_core::wire::Holder,
    progress: dsfiles_core::Progress,
    cancel: CancellationToken,
) -> Result<SyncOutcome, PipelineError> {
    let Some(seda) = &spec.seda else {
        return Err(PipelineError::new(
            PipelineErrorKind::Internal,
            "a seda job without its seda settings",
        ));
    };
    let invalid = |reason: String| PipelineError::new(PipelineErrorKind::Invalid, reason);
    let mut opts = options_of(&seda.profile, seda.states.clone()).map_err(invalid)?;
    opts.demarche = Some(spec.demarche);
    opts.dossiers = spec.dossiers.clone();
    opts.lease = dsfiles_core::lease::LeaseOptions {
        holder,
        break_lease: spec.break_lease,
        ..dsfiles_core::lease::LeaseOptions::default()
    };
    let dest = open(&spec.dest, dest_options)?;
    let out = open(&seda.out, dest_options)?;
    let report = dsfiles_core::seda::package(dest, out, opts, progress, cancel)
        .await
        .map_err(|e| PipelineError::new(crate::core_pipeline::classify(&e), e.to_string()))?;
    if report.lease_lost {
        return Err(PipelineError::new(
            PipelineErrorKind::Busy,
            format!(
                "another writer took the seda lease of `{}` over during the run, which stopped \
                 writing after `{}` packages",
                report.out,
                report.packaged.len()
            ),
        ));
    }
    Ok(outcome(&report))
}

fn open(
    dest: &str,
    options: &[(String, String)],
) -> Result<Arc<dyn dsfiles_core::sink::Sink>, PipelineError> {
    dsfiles_core::sink::open(dest, options).map_err(|e| {
        PipelineError::new(
            PipelineErrorKind::Destination,
            format!("cannot open destination `{dest}`: {e}"),
        )
    })
}

/// The job's end from a seda report.
fn outcome(report: &dsfiles_core::wire::SedaReport) -> SyncOutcome {
    let failures = report
        .failed
        .iter()
        .map(|f| FileFailure {
            key: format!("dossier {}", f.dossier),
            reason: f.reason.clone(),
        })
        .collect();
    let result = SedaResult {
        dossiers: report.dossiers,
        packaged: report.packaged.len() as u64,
        unchanged: report.unchanged.len() as u64,
        skipped: report.skipped.len() as u64,
        failed: report.failed.len() as u64,
        bytes_written: report.bytes_written,
    };
    SyncOutcome {
        counters: Counters {
            dossiers: report.dossiers,
            files_stored: result.packaged,
            files_skipped: result.unchanged + result.skipped,
            files_failed: result.failed,
            bytes_stored: report.bytes_written,
            ..Counters::default()
        },
        failures,
        cancelled: report.cancelled,
        unsuccessful: report.exit_status() != dsfiles_core::RunStatus::Ok,
        warnings: Vec::new(),
        seda: Some(result),
    }
}

/// Whether another live writer holds OUT's seda lease right now (reads only).
pub(crate) async fn check_lease(
    out: &str,
    dest_options: &[(String, String)],
) -> Result<Option<DestinationBusy>, PipelineError> {
    let sink = open(out, dest_options)?;
    let scope = dsfiles_core::lease::LeaseScope::Seda;
    match dsfiles_core::lease::check_scope(sink.as_ref(), scope).await {
        Ok(()) => Ok(None),
        Err(dsfiles_core::Error::DestinationBusy(busy)) => {
            Ok(Some(crate::core_pipeline::destination_busy(&busy)))
        }
        Err(e) => Err(PipelineError::new(
            crate::core_pipeline::classify(&e),
            e.to_string(),
        )),
    }
}
