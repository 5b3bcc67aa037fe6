//! Which layout and dossier.json choice a run uses, and the record that keeps them in the
//! destination ([`LayoutRecord`] at `.dsfiles/demarches/{n}/layout.json`).
//!
//! Rules, for each of the two settings (the file layout; where dossier.json goes) on its own:
//! - given in the run's options → used (`given`) and recorded;
//! - not given → the destination's record (`destination`), else the default (`default`:
//!   [`Layout::DEFAULT`], dossier.json next to the files);
//! - "dossier.json next to the files" follows the layout the run uses, wherever that came
//!   from; a recorded `--data-layout` or `--no-data` stays when only the layout is given.
//!
//! Without the record, a run that names no layout (a webhook or scheduled job of the service,
//! a plain `dsfiles sync`) would move every file of a destination synced with a custom layout
//! back to the default names. So a record this build cannot use (a template that no longer
//! parses, another démarche's) is an error naming its key, never a silent fallback to the
//! default.
//!
//! The record is written when it is absent or differs from what the run uses, *before* the run
//! stores or moves anything: the record always names the layout of the last run that may have
//! moved files. A run killed midway through moving files to a new layout leaves the record
//! naming that layout, and the next run without one carries on with it instead of moving
//! the files back. A destination written before the record existed has none: its runs use the
//! default, as they always did.

use chrono::Utc;

use crate::extract::{DataLayout, Layout};
use crate::options::{DataOutput, SyncOptions};
use crate::wire::{DataChoice, LayoutRecord, LayoutUsed, SettingOrigin, WIRE_VERSION, layout_key};
use crate::{Error, sink::Sink, state};

/// What a run names its files with.
#[derive(Debug)]
pub(super) struct Naming {
    pub layout: Layout,
    /// Where dossier.json goes, `None` without one.
    pub data_layout: Option<DataLayout>,
    /// For the report and the record.
    pub used: LayoutUsed,
}

impl Naming {
    /// Whether the file layout keeps dossiers apart and dossier.json, if any, goes into the
    /// same dossier directory ([`crate::extract::DossierDir`]): then no key of one dossier can
    /// meet another's.
    pub fn keeps_dossiers_apart(&self, demarche: u64) -> bool {
        let Some(dir) = self.layout.dossier_dir(demarche) else {
            return false;
        };
        (self.data_layout.as_ref()).is_none_or(|data| data.dossier_dir(demarche) == Some(dir))
    }
}

/// The run's [`Naming`] from its options and the destination's `recorded` one (see the module
/// docs); `Err` naming `key` when the record cannot be used.
pub(super) fn resolve(
    layout: Option<&Layout>,
    data: Option<&DataOutput>,
    recorded: Option<&LayoutRecord>,
    demarche: u64,
) -> Result<Naming, Error> {
    let unusable = |reason: String| Error::Manifest {
        key: layout_key(demarche),
        reason,
    };
    if let Some(record) = recorded
        && record.demarche != demarche
    {
        return Err(unusable(format!(
            "it names démarche `{}`, not `{demarche}`",
            record.demarche
        )));
    }
    let (layout, layout_from) = match (layout, recorded) {
        (Some(layout), _) => (layout.clone(), SettingOrigin::Given),
        (None, Some(record)) => (
            Layout::parse(&record.layout).map_err(|e| unusable(e.to_string()))?,
            SettingOrigin::Destination,
        ),
        (None, None) => (Layout::default(), SettingOrigin::Default),
    };
    let (data, data_from) = match (data, recorded) {
        (Some(data), _) => (data.clone(), SettingOrigin::Given),
        (None, Some(record)) => (
            data_output(&record.data).map_err(|e| unusable(e.to_string()))?,
            SettingOrigin::Destination,
        ),
        (None, None) => (DataOutput::FollowLayout, SettingOrigin::Default),
    };
    Ok(Naming {
        data_layout: data.data_layout(&layout),
        used: LayoutUsed {
            layout: layout.template().to_owned(),
            layout_from,
            data: data_choice(&data),
            data_from,
        },
        layout,
    })
}

/// The recorded choice as an option.
fn data_output(choice: &DataChoice) -> Result<DataOutput, crate::extract::Error> {
    Ok(match choice {
        DataChoice::FollowLayout => DataOutput::FollowLayout,
        DataChoice::At(template) => DataOutput::At(DataLayout::parse(template)?),
        DataChoice::Off => DataOutput::Off,
    })
}

/// The option as recorded and reported.
fn data_choice(data: &DataOutput) -> DataChoice {
    match data {
        DataOutput::FollowLayout => DataChoice::FollowLayout,
        DataOutput::At(layout) => DataChoice::At(layout.template().to_owned()),
        DataOutput::Off => DataChoice::Off,
    }
}

/// Whether `naming` must be recorded over `recorded`: it is absent or says something else.
pub(super) fn must_record(naming: &Naming, recorded: Option<&LayoutRecord>) -> bool {
    recorded.is_none_or(|r| r.layout != naming.used.layout || r.data != naming.used.data)
}

/// Reads the démarche's record and resolves the run's naming from it and `opts`.
pub(super) async fn decide(
    sink: &dyn Sink,
    opts: &SyncOptions,
) -> Result<(Naming, Option<LayoutRecord>), Error> {
    let recorded: Option<LayoutRecord> = state::read(sink, &layout_key(opts.demarche)).await?;
    let naming = resolve(
        opts.layout.as_ref(),
        opts.data.as_ref(),
        recorded.as_ref(),
        opts.demarche,
    )?;
    let used = &naming.used;
    tracing::info!(
        demarche = opts.demarche,
        layout = used.layout,
        layout_from = used.layout_from.describe(),
        data = ?used.data,
        data_from = used.data_from.describe(),
        "naming files with layout `{}` ({})",
        used.layout,
        used.layout_from.describe()
    );
    Ok((naming, recorded))
}

/// Writes the démarche's record of `naming` when [`must_record`] says so; a failure is a
/// run-level error (nothing may move before the record names the layout).
pub(super) async fn record(
    sink: &dyn Sink,
    demarche: u64,
    naming: &Naming,
    recorded: Option<&LayoutRecord>,
    run_id: &str,
) -> Result<(), Error> {
    if !must_record(naming, recorded) {
        return Ok(());
    }
    let record = LayoutRecord {
        version: WIRE_VERSION,
        demarche,
        layout: naming.used.layout.clone(),
        data: naming.used.data.clone(),
        run_id: run_id.to_owned(),
        recorded_at: Utc::now(),
    };
    state::write(sink, &layout_key(demarche), &record).await
}

#[cfg(test)]
mod tests;
