//! Reading and writing the state files of [`crate::wire`] through the sink (so that object
//! stores work unchanged: every write is one atomic `put_small`). State kept per démarche is
//! read from the démarche's own keys, falling back to the single legacy file of a destination
//! written by an earlier version when it names the démarche ([`read_demarche`]).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::sink::{STATE_DIR, Sink};
use crate::wire::{
    LEGACY_RECHECK_KEY, LEGACY_SYNC_POINT_KEY, Recheck, SyncPoint, WIRE_VERSION, recheck_key,
    sync_point_key,
};

/// Reads the JSON state file at `key`; `Ok(None)` when absent. A file that does not parse, or
/// has a `version` this build does not know, is an [`Error::Manifest`].
pub(crate) async fn read<T: DeserializeOwned>(
    sink: &dyn Sink,
    key: &str,
) -> Result<Option<T>, Error> {
    let Some(bytes) = sink.get_small(key).await? else {
        return Ok(None);
    };
    parse(key, &bytes).map(Some)
}

/// Parses a state file, checking its version first.
pub(crate) fn parse<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    let invalid = |reason: String| Error::Manifest {
        key: key.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(WIRE_VERSION) => {}
        Some(v) => {
            return Err(invalid(format!(
                "version `{v}` is not supported (this build reads `{WIRE_VERSION}`)"
            )));
        }
        None => return Err(invalid("no `version`".to_owned())),
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// Atomically replaces the JSON state file at `key`.
pub(crate) async fn write<T: Serialize>(
    sink: &dyn Sink,
    key: &str,
    value: &T,
) -> Result<(), Error> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| Error::Manifest {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    json.push(b'\n');
    sink.put_small(key, Bytes::from(json)).await?;
    Ok(())
}

/// Writes an empty object at `key` unless one is there.
pub(crate) async fn put_marker(sink: &dyn Sink, key: &str) -> Result<(), Error> {
    if sink.head(key).await?.is_none() {
        sink.put_small(key, Bytes::new()).await?;
    }
    Ok(())
}

/// What a run of one démarche starts from: its sync point and recheck list.
#[derive(Debug, Default)]
pub(crate) struct DemarcheState {
    pub sync_point: Option<SyncPoint>,
    pub recheck: Recheck,
    /// Whether `recheck` came from [`LEGACY_RECHECK_KEY`] (then it is written to the démarche's
    /// own key even if unchanged).
    pub recheck_legacy: bool,
    /// An unreadable recheck list, ignored (the warning).
    pub warning: Option<String>,
}

/// Reads `demarche`'s state from its own keys, else from the legacy keys of a destination
/// written by an earlier version when they name `demarche`. An unreadable sync point is an
/// error (the run would not know where to start); an unreadable recheck list is ignored.
pub(crate) async fn read_demarche(sink: &dyn Sink, demarche: u64) -> Result<DemarcheState, Error> {
    let (sync_point, _) = read_own_or_legacy(
        sink,
        &sync_point_key(demarche),
        LEGACY_SYNC_POINT_KEY,
        |p: &SyncPoint| p.demarche == demarche,
    )
    .await?;
    let recheck = read_own_or_legacy(
        sink,
        &recheck_key(demarche),
        LEGACY_RECHECK_KEY,
        |r: &Recheck| r.demarche == demarche,
    )
    .await;
    let (recheck, recheck_legacy, warning) = match recheck {
        Ok((recheck, legacy)) => (recheck.unwrap_or_default(), legacy, None),
        Err(Error::Manifest { key, reason }) => (
            Recheck::default(),
            false,
            Some(format!("ignoring `{key}`: {reason}")),
        ),
        Err(e) => return Err(e),
    };
    Ok(DemarcheState {
        sync_point: sync_point.filter(|p| p.demarche == demarche),
        recheck: Recheck {
            demarche,
            ..recheck
        },
        recheck_legacy,
        warning,
    })
}

/// The state file at `own`, else the one at `legacy` if `ours` accepts it; with whether it
/// came from `legacy`.
async fn read_own_or_legacy<T: DeserializeOwned>(
    sink: &dyn Sink,
    own: &str,
    legacy: &str,
    ours: impl Fn(&T) -> bool,
) -> Result<(Option<T>, bool), Error> {
    if let Some(value) = read(sink, own).await? {
        return Ok((Some(value), false));
    }
    let old: Option<T> = read(sink, legacy).await?;
    Ok(match old.filter(|v| ours(v)) {
        Some(value) => (Some(value), true),
        None => (None, false),
    })
}

/// `Err` unless something is stored under `.dsfiles/`: a destination `dsfiles sync` never
/// wrote (or a mistyped one) is an error for the commands that read its state (`index`,
/// `seda`), not an empty result.
pub(crate) async fn require_state(sink: &dyn Sink) -> Result<(), Error> {
    use futures::StreamExt as _;
    match sink.list(&format!("{STATE_DIR}/")).next().await {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.into()),
        None => Err(Error::InvalidOption {
            name: "dest",
            reason: format!(
                "`{}` holds no dsfiles state (nothing under `{STATE_DIR}/`): \
                 it is not a destination `dsfiles sync` wrote",
                sink.describe()
            ),
        }),
    }
}
