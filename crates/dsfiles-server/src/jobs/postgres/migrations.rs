//! The schema's migrations, embedded in the binary and applied by `JobDb::connect`.
//!
//! Each file of `crates/dsfiles-server/migrations/` is listed in [`FILES`] by hand instead of
//! through sqlx's `migrate!` macro: the macro is a proc-macro that links sqlx's PostgreSQL
//! driver, so a fresh build compiled the driver (and rustls, tokio…) a second time for the
//! build host (issue 12, "time to a first run"). A test checks that the list is exactly the
//! directory, and the version, description and checksum follow sqlx's own rules for a
//! migrations directory (`{version}_{description}.sql`, `_` read as a space, SHA-384 of the
//! text through [`Migration::new`]), so a database migrated by an earlier build that used the
//! macro sees the same migrations.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Every migration file: its name and its text.
const FILES: &[(&str, &str)] = &[
    (
        "20261204000001_jobs.sql",
        include_str!("../../../migrations/20261204000001_jobs.sql"),
    ),
    (
        "20261204000002_schedules.sql",
        include_str!("../../../migrations/20261204000002_schedules.sql"),
    ),
];

/// The migrator over [`FILES`].
pub(super) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            FILES
                .iter()
                .map(|(name, sql)| migration(name, sql))
                .collect()
        })
    }
}

/// One file as sqlx's directory resolver reads it.
fn migration(name: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, rest) = name
        .split_once('_')
        .filter(|(_, rest)| rest.ends_with(".sql"))
        .ok_or_else(|| format!("migration `{name}`: expected `<version>_<description>.sql`"))?;
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration `{name}`: the version is not an integer"))?;
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Ok(Migration::new(
        version,
        Cow::Owned(description),
        kind,
        Cow::Borrowed(sql),
        no_tx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_the_migrations_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("migrations/")
            .map(|e| {
                let path = e.expect("entry").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (
                    name,
                    std::fs::read_to_string(&path).expect("utf-8 migration"),
                )
            })
            .collect();
        on_disk.sort();
        let listed: Vec<(String, String)> = FILES
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        assert_eq!(
            listed, on_disk,
            "list every file of migrations/ in FILES, in order"
        );
    }

    #[tokio::test]
    async fn migrations_read_as_sqlx_reads_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_dir = Migrator::new(dir.as_path()).await.expect("directory");
        let embedded = migrator().await.expect("embedded");
        let key = |m: &Migration| {
            let (v, d, s, c) = (
                m.version,
                m.description.to_string(),
                m.sql.to_string(),
                m.checksum.to_vec(),
            );
            (v, d, s, c, m.no_tx)
        };
        let a: Vec<_> = from_dir.iter().map(key).collect();
        let b: Vec<_> = embedded.iter().map(key).collect();
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_names_are_errors() {
        for name in ["jobs.sql", "x_jobs.sql", "1_jobs.txt"] {
            assert!(migration(name, "").is_err(), "{name}");
        }
    }
}
