//! A hostile or broken DS: absurd rate-limit headers, lying `Content-Length`, oversized
//! answers and gzip bombs end in a typed error or a retry, quickly, never in a panic.

use std::io::Write as _;
use std::time::{Duration, Instant};

use dsfiles_ds_client::{Client, DossierFilter, Error, ErrorKind};
use futures::TryStreamExt;
use serde_json::Value;

use crate::client::{DEMARCHE, numbers, page};
use crate::mock::{MockDs, Reply, TOKEN};

/// Generous bound for "quickly": each case needs milliseconds; a case that waited for
/// what the headers ask (hours, centuries) or read a gigabyte would not finish in time.
const QUICK: Duration = Duration::from_secs(20);

/// A mock client whose answers may not exceed `limit` bytes.
fn limited(mock: &MockDs, limit: u64) -> anyhow::Result<Client> {
    let mut config = mock.config()?;
    config.max_response_bytes = limit;
    Ok(Client::new(config)?)
}

/// `json` preceded by `padding` spaces: still valid JSON, only larger.
fn padded(json: &Value, padding: usize) -> Vec<u8> {
    let mut body = vec![b' '; padding];
    body.extend_from_slice(json.to_string().as_bytes());
    body
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// Lists démarche 1234 with `client`, within [`QUICK`].
async fn list(client: &Client) -> anyhow::Result<Result<Vec<u64>, Error>> {
    let start = Instant::now();
    let listed: Result<Vec<_>, Error> = client
        .dossiers(DEMARCHE, DossierFilter::default())
        .try_collect()
        .await;
    anyhow::ensure!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    Ok(listed.map(|batches| numbers(&batches)))
}

#[tokio::test]
async fn hostile_rate_limit_headers_cost_one_bounded_wait() -> anyhow::Result<()> {
    let hostile = [
        ("RateLimit-Reset", "10000000000000000000"),
        ("RateLimit-Reset", "-1"),
        ("RateLimit-Reset", "1.5e300"),
        ("RateLimit-Reset", ""),
        ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("Retry-After", "18446744073709551615"),
        ("Retry-After", "à la saint-glinglin"),
    ];
    for (name, value) in hostile {
        let limited = Reply::status_json(429, Value::Null).header(name, value);
        let mock = MockDs::start([limited, Reply::json(page(&[7], None))]).await?;
        let client = mock.client()?;
        let listed = list(&client).await?;
        assert_eq!(listed.ok(), Some(vec![7]), "{name}: {value}");
        assert_eq!(client.stats().rate_limited, 1, "{name}: {value}");
    }
    Ok(())
}

#[tokio::test]
async fn a_429_without_headers_backs_off_and_retries() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::html(429, "Too many requests"),
        Reply::json(page(&[1], None)),
    ])
    .await?;
    let client = mock.client()?;
    assert_eq!(list(&client).await?.ok(), Some(vec![1]));
    assert_eq!(client.stats().retries, 1);
    Ok(())
}

#[tokio::test]
async fn a_lying_content_length_is_a_transient_error_then_retried() -> anyhow::Result<()> {
    let body = page(&[1], None).to_string();
    for announced in ["3", "1099511627776"] {
        let liar = Reply::raw_json(body.clone().into_bytes()).header("content-length", announced);
        let mock = MockDs::start([liar, Reply::json(page(&[2], None))]).await?;
        let client = mock.client()?;
        let listed = list(&client).await?;
        // Either the client noticed the lie (a cut-short body is retried) or the server
        // refused to send it as announced; both end on the honest answer.
        assert_eq!(listed.ok(), Some(vec![2]), "Content-Length: {announced}");
    }
    Ok(())
}

#[tokio::test]
async fn an_answer_beyond_the_limit_is_a_typed_error_naming_it() -> anyhow::Result<()> {
    let dossier = serde_json::json!({"data": {"dossier": crate::client::dossier(5)}});
    let mock = MockDs::start([Reply::raw_json(padded(&dossier, 4096))]).await?;
    let err = limited(&mock, 1024)?
        .dossier(5, &DossierFilter::default())
        .await
        .err();
    let Some(err) = err else {
        anyhow::bail!("a 4 KiB answer cannot fit in 1 KiB")
    };
    assert!(
        matches!(err, Error::ResponseTooLarge { limit: 1024, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    assert!(!err.is_transient());
    assert_eq!(mock.requests().len(), 1, "not retried as is");
    let endpoint = mock.url.as_str();
    assert_eq!(
        err.to_string(),
        format!(
            "DS's answer to `Dossier` from `{endpoint}` is larger than the limit of `1024` bytes (`max_response_bytes`)"
        )
    );
    assert!(!format!("{err:?}").contains(TOKEN));
    Ok(())
}

#[tokio::test]
async fn a_page_beyond_the_limit_is_asked_again_smaller() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::raw_json(padded(&page(&[1, 2], None), 8192)),
        Reply::json(page(&[1], Some("c1"))),
        Reply::json(page(&[2], None)),
    ])
    .await?;
    let client = limited(&mock, 4096)?;
    assert_eq!(list(&client).await?.ok(), Some(vec![1, 2]));
    assert_eq!(client.stats().page_size_reductions, 1);
    assert_eq!(mock.page_sizes(), [Some(100), Some(50), Some(100)]);
    Ok(())
}

#[tokio::test]
async fn a_gzip_bomb_stops_at_the_limit() -> anyhow::Result<()> {
    // 64 MiB of (valid JSON) whitespace inflate from about 64 KiB on the wire; the client
    // must stop after 1 MiB of decompressed bytes, every time, down to pages of 1.
    let bomb = gzip(&padded(&page(&[1], None), 64 << 20))?;
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let replies = (0..7).map(|_| Reply::raw_json(bomb.clone()).header("content-encoding", "gzip"));
    let mock = MockDs::start(replies).await?;
    let client = limited(&mock, 1 << 20)?;
    let err = list(&client).await?.err();
    assert!(
        matches!(
            err,
            Some(Error::ResponseTooLarge {
                limit: 1_048_576,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        mock.page_sizes(),
        [100, 50, 25, 12, 6, 3, 1].map(Some),
        "halved down to 1, then given up"
    );
    assert_eq!(mock.unused_replies(), 0);
    Ok(())
}
