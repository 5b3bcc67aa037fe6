//! Reading and writing the state files of [`crate::wire`] through the sink (so that object
//! stores work unchanged: every write is one atomic `put_small`).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::sink::Sink;
use crate::wire::WIRE_VERSION;

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
