//! The human summaries printed on stderr at the end of `sync` and `verify`. Failures and DS
//! warnings are printed even with `--quiet`: they are errors.

use std::fmt::Write as _;

use dsfiles_core::wire::{DataChoice, LayoutUsed};
use dsfiles_core::{SyncReport, VerifyReport};

use anyhow::Context as _;

use crate::logging;
use crate::progress::human_bytes;

/// At most this many entries of a list are named one by one; the rest are counted (the report
/// in `--summary-json` has the first `REPORT_LISTED`, its `lists` object all of them).
const MAX_LISTED: usize = 50;

pub fn print_sync(report: &SyncReport, quiet: bool) {
    let mut out = String::new();
    if !quiet {
        headline(&mut out, report);
        details(&mut out, report);
    }
    let warnings = (&report.warnings[..], report.counts.warnings);
    listed(&mut out, report, warnings, "DS warnings", |warning| {
        format!("DS warning: {warning}")
    });
    // Objects the manifest named but dsfiles did not write (a tampered manifest, or another
    // writer): printed even with --quiet, the operator should look at them.
    let kept = (&report.kept[..], report.counts.kept);
    listed(&mut out, report, kept, "left in place", |kept| {
        format!(
            "left in place `{}` (dossier {}): {}",
            kept.key, kept.dossier, kept.reason
        )
    });
    let failed = (&report.failed[..], report.counts.failed);
    listed(&mut out, report, failed, "failed", |failure| {
        format!("failed `{}`: {}", failure.key, failure.reason)
    });
    if !out.is_empty() {
        logging::write_stderr(out.as_bytes()).ok();
    }
}

/// Which layout and dossier.json choice the run used, and where each came from.
fn naming(out: &mut String, used: &LayoutUsed) {
    let data = match &used.data {
        DataChoice::FollowLayout => "next to the files".to_owned(),
        DataChoice::At(template) => format!("at `{template}`"),
        DataChoice::Off => "none (--no-data)".to_owned(),
    };
    let _ = writeln!(
        out,
        "  layout `{}` ({}); dossier.json {data} ({})",
        used.layout,
        used.layout_from.describe(),
        used.data_from.describe()
    );
}

/// The one-line summary of a sync.
fn headline(out: &mut String, report: &SyncReport) {
    let _ = writeln!(
        out,
        "{verb} démarche {} to {}: {} dossiers; {} files stored, {} skipped as unchanged, \
         {} flagged, {} failed; {} downloaded in {:.1}s ({:.1} MB/s); {} API calls ({} listing, \
         {} re-check, {} URL refresh, {} deleted), {} retries",
        report.demarche,
        report.dest,
        report.dossiers,
        report.stored,
        report.skipped_unchanged,
        report.counts.flagged,
        report.counts.failed,
        human_bytes(report.bytes_downloaded),
        report.duration_secs,
        report.mb_per_sec,
        report.api.api_calls,
        report.api_calls.listing,
        report.api_calls.recheck,
        report.api_calls.refresh,
        report.api_calls.deleted,
        report.api.retries,
        verb = if report.lease_lost {
            "lease lost: synced part of"
        } else if report.cancelled {
            "cancelled: synced part of"
        } else {
            "synced"
        },
    );
}

/// What was flagged, left out, re-checked, cancelled or deleted (not printed with --quiet).
fn details(out: &mut String, report: &SyncReport) {
    if let Some(used) = &report.layout {
        naming(out, used);
    }
    let flagged = (&report.flagged[..], report.counts.flagged);
    listed(out, report, flagged, "flagged", |flagged| {
        format!(
            "flagged {} `{}`: {}",
            flagged.flag, flagged.key, flagged.detail
        )
    });
    let unscanned = (
        &report.skipped_unscanned[..],
        report.counts.skipped_unscanned,
    );
    listed(out, report, unscanned, "not downloaded", |skipped| {
        format!(
            "not downloaded (virus scan `{}`): dossier {} `{}` (--allow-unscanned downloads it)",
            skipped.virus_scan, skipped.dossier, skipped.filename
        )
    });
    if report.moved > 0 {
        let _ = writeln!(
            out,
            "  {} stored files moved to a new key (a dossier value of the layout changed)",
            report.moved
        );
    }
    if report.data_stored + report.data_unchanged > 0 {
        let _ = writeln!(
            out,
            "  dossier.json: {} written, {} unchanged",
            report.data_stored, report.data_unchanged
        );
    }
    if report.updated > 0 {
        let _ = writeln!(
            out,
            "  {} stored files re-checked without a download (status updated, e.g. a \
             pending virus scan now safe)",
            report.updated
        );
    }
    if report.cancelled {
        let _ = writeln!(
            out,
            "  cancelled: the {} files stored are kept and recorded, nothing partial was \
             left; run the same command again to finish",
            report.stored
        );
    }
    if report.lease_lost {
        let _ = writeln!(
            out,
            "  lease lost: another writer took this démarche's lease on the destination over \
             during the run, which stopped writing; the files stored before are kept"
        );
    }
    if report.counts.deleted_dossiers > 0 || report.removed_upstream > 0 {
        let _ = writeln!(
            out,
            "  {} dossiers deleted on DS, {} stored files no longer in DS{}",
            report.counts.deleted_dossiers,
            report.removed_upstream,
            if report.pruned {
                " (pruned)"
            } else {
                " (kept; --prune deletes them)"
            }
        );
    }
}

/// The first [`MAX_LISTED`] `items`, one indented line each, then how many more of the
/// `total` there are and where they all are (the report lists its first `REPORT_LISTED`, its
/// `lists` object every one).
fn listed<T>(
    out: &mut String,
    report: &SyncReport,
    (items, total): (&[T], u64),
    what: &str,
    line: impl Fn(&T) -> String,
) {
    for item in items.iter().take(MAX_LISTED) {
        let _ = writeln!(out, "  {}", line(item));
    }
    let shown = items.len().min(MAX_LISTED) as u64;
    if total > shown {
        let all = match &report.lists {
            Some(key) => format!("`{key}` in the destination lists them all"),
            None => "see --summary-json".to_owned(),
        };
        let _ = writeln!(out, "  ... and {} more {what} ({all})", total - shown);
    }
}

pub fn print_verify(report: &VerifyReport, quiet: bool) {
    let mut out = String::new();
    if !quiet {
        let _ = writeln!(
            out,
            "{} {}: {} dossiers, {} files ok ({} checked against dsfiles' SHA-256 only), \
             {} missing, {} corrupt; {} read",
            if report.cancelled {
                "cancelled: verified part of"
            } else {
                "verified"
            },
            report.dest,
            report.dossiers,
            report.ok,
            report.unverifiable,
            report.missing_count.max(report.missing.len() as u64),
            report.corrupt_count.max(report.corrupt.len() as u64),
            human_bytes(report.bytes_read),
        );
    }
    for key in &report.missing {
        let _ = writeln!(out, "  missing `{key}`");
    }
    not_listed(
        &mut out,
        report.missing_count,
        report.missing.len(),
        "missing",
    );
    for corrupt in &report.corrupt {
        let _ = writeln!(out, "  corrupt `{}`: {}", corrupt.key, corrupt.reason);
    }
    not_listed(
        &mut out,
        report.corrupt_count,
        report.corrupt.len(),
        "corrupt",
    );
    if !out.is_empty() {
        logging::write_stderr(out.as_bytes()).ok();
    }
}

/// The rest of a list the verify report capped (`dsfiles_core::wire::VERIFY_LISTED`).
fn not_listed(out: &mut String, count: u64, listed: usize, what: &str) {
    let rest = count.saturating_sub(listed as u64);
    if rest > 0 {
        let _ = writeln!(out, "  ... and {rest} more {what} files not listed");
    }
}

/// Writes a report as pretty JSON for `--summary-json`.
pub fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(report).context("cannot serialize the report")?;
    json.push(b'\n');
    std::fs::write(path, json)
        .with_context(|| format!("cannot write `--summary-json` to `{}`", path.display()))
}
