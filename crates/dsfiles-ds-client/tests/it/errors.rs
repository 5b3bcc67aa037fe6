//! Typed errors, their messages, and secrets kept out of `Debug` and logs.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use dsfiles_ds_client::{DossierBatch, DossierFilter, Error, ErrorKind};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::client::{DEMARCHE, collect, page};
use crate::mock::{MockDs, Reply, TOKEN};

/// An error and its sources on one line, as the CLI prints it.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn ds_error(code: &str, message: &str) -> serde_json::Value {
    json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]})
}

/// Lists démarche 1234 against a mock answering `replies`; the error, and the mock.
async fn fail_with(replies: Vec<Reply>) -> anyhow::Result<(Error, MockDs)> {
    let mock = MockDs::start(replies).await?;
    let err = match collect(&mock, DossierFilter::default()).await {
        Ok(batches) => anyhow::bail!("expected an error, got {batches:?}"),
        Err(err) => err,
    };
    Ok((err, mock))
}

#[tokio::test]
async fn persistent_502_gives_up_after_max_attempts_with_status_and_snippet() -> anyhow::Result<()>
{
    let html = format!(
        "<html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "nginx ".repeat(80)
    );
    let (err, mock) = fail_with(vec![Reply::html(502, &html); 4]).await?;
    assert_eq!(mock.requests().len(), 4);
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    let message = chain(&err);
    assert!(
        message.starts_with("gave up after 4 attempts in "),
        "{message}"
    );
    assert!(
        message.contains(": DS answered HTTP 502 with a body that is not JSON: `<html><head><title>502 Bad Gateway</title></head><body>nginx nginx"),
        "{message}"
    );
    // The snippet is short: ~200 characters of a 500+ character page.
    assert!(message.len() < 400, "{}", message.len());
    Ok(())
}

#[tokio::test]
async fn forbidden_token_is_an_auth_error_and_not_retried() -> anyhow::Result<()> {
    let (err, mock) = fail_with(vec![Reply::status_json(
        403,
        ds_error("forbidden", "Le jeton utilisé est invalide"),
    )])
    .await?;
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(!err.is_transient());
    assert!(matches!(err, Error::TokenRejected { .. }), "{err:?}");
    assert!(chain(&err).contains("Le jeton utilisé est invalide"));
    Ok(())
}

#[tokio::test]
async fn http_401_is_an_expired_token() -> anyhow::Result<()> {
    let (err, _mock) = fail_with(vec![Reply::status_json(
        401,
        ds_error("unauthorized", "Votre jeton a expiré"),
    )])
    .await?;
    assert!(matches!(err, Error::TokenExpired { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(chain(&err).starts_with("the API token has expired (HTTP 401): Votre jeton a expiré"));
    Ok(())
}

#[tokio::test]
async fn token_restricted_to_other_networks_names_them() -> anyhow::Result<()> {
    let message =
        "Le jeton utilisé n’est autorisé que depuis les réseaux 10.20.0.0/16 et 192.0.2.0/24";
    let (err, _mock) = fail_with(vec![Reply::status_json(
        403,
        ds_error("forbidden", message),
    )])
    .await?;
    assert_eq!(err.kind(), ErrorKind::Auth);
    let shown = chain(&err);
    assert!(shown.contains("`10.20.0.0/16, 192.0.2.0/24`"), "{shown}");
    assert!(shown.contains(message), "{shown}");
    Ok(())
}

#[tokio::test]
async fn deprecated_token_is_an_auth_error() -> anyhow::Result<()> {
    let body = ds_error(
        "deprecated_token",
        "Pour effectuer cette opération, vous avez besoin d’un jeton au nouveau format.",
    );
    let (err, _mock) = fail_with(vec![Reply::json(body)]).await?;
    assert!(matches!(err, Error::TokenDeprecated { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Auth);
    Ok(())
}

#[tokio::test]
async fn missing_demarche_is_not_found_naming_it() -> anyhow::Result<()> {
    let (err, mock) = fail_with(vec![Reply::json(ds_error(
        "not_found",
        "Demarche not found",
    ))])
    .await?;
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        chain(&err),
        "démarche `1234` not found (`not_found`): Demarche not found"
    );
    Ok(())
}

#[tokio::test]
async fn inaccessible_demarche_is_an_access_error_naming_it() -> anyhow::Result<()> {
    let body = ds_error(
        "unauthorized",
        "An object of type Demarche was hidden due to permissions",
    );
    let (err, _mock) = fail_with(vec![Reply::json(body)]).await?;
    assert_eq!(err.kind(), ErrorKind::Access);
    assert!(
        chain(&err)
            .starts_with("démarche `1234` is not accessible with this token (`unauthorized`)")
    );
    Ok(())
}

#[tokio::test]
async fn missing_dossier_is_not_found_naming_it() -> anyhow::Result<()> {
    let mock = MockDs::start([Reply::json(ds_error("not_found", "Dossier not found"))]).await?;
    let err = mock
        .client()?
        .dossier(404, &DossierFilter::default())
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "dossier `404` not found (`not_found`): Dossier not found"
    );
    Ok(())
}

/// A named dossier DS does not find (deleted since a webhook named it) is its batch's `missing`;
/// the dossiers named after it still come. Another error still ends the walk.
#[tokio::test]
async fn a_named_dossier_not_found_is_skipped_and_the_others_follow() -> anyhow::Result<()> {
    let one = |n: u64| Reply::json(json!({"data": {"dossier": crate::client::dossier(n)}}));
    let missing = Reply::json(ds_error("not_found", "Dossier not found"));
    let denied = Reply::json(ds_error("unauthorized", "Hidden"));
    let mock = MockDs::start([one(11), missing, one(13), denied]).await?;
    let filter = DossierFilter {
        dossiers: vec![11, 12, 13, 14, 15],
        ..DossierFilter::default()
    };
    let client = mock.client()?;
    let got: Vec<Result<DossierBatch, Error>> = client.dossiers(DEMARCHE, filter).collect().await;
    let summary: Vec<String> = got
        .iter()
        .map(|batch| match batch {
            Ok(batch) => format!(
                "{:?} {:?} missing {:?}",
                crate::client::numbers(std::slice::from_ref(batch)),
                batch.errors,
                batch.missing
            ),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "[11] [] missing []",
            "[] [] missing [12]",
            "[13] [] missing []",
            "error: dossier `14` is not accessible with this token (`unauthorized`): Hidden",
        ]
    );
    assert_eq!(mock.requests().len(), 4, "nothing asked after the error");
    Ok(())
}

#[tokio::test]
async fn unreachable_endpoint_is_a_network_error_after_retries() -> anyhow::Result<()> {
    // A port that was free a moment ago: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let mut config = dsfiles_ds_client::ClientConfig::new(
        format!("http://{addr}/api/v2/graphql").parse()?,
        dsfiles_ds_client::Token::new(TOKEN)?,
    );
    config.max_attempts = 3;
    config.backoff_base = std::time::Duration::from_millis(1);
    config.backoff_max = std::time::Duration::from_millis(5);
    let client = dsfiles_ds_client::Client::new(config)?;
    let result: Result<Vec<DossierBatch>, Error> = client
        .dossiers(DEMARCHE, DossierFilter::default())
        .try_collect()
        .await;
    let Err(err) = result else {
        anyhow::bail!("a refused connection cannot succeed")
    };
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.is_transient());
    assert!(
        chain(&err).starts_with("gave up after 3 attempts in "),
        "{}",
        chain(&err)
    );
    assert_eq!(client.stats().api_calls, 3);
    Ok(())
}

#[tokio::test]
async fn token_never_shows_in_debug_output() -> anyhow::Result<()> {
    let mock = MockDs::start([Reply::status_json(
        403,
        ds_error("forbidden", "jeton invalide"),
    )])
    .await?;
    let config = mock.config()?;
    let client = dsfiles_ds_client::Client::new(config.clone())?;
    let err = client.dossier(1, &DossierFilter::default()).await.err();
    for shown in [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{err:?}"),
        format!("{:#?}", config.token),
    ] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert!(format!("{client:?}").contains("Token(<redacted>)"));
    Ok(())
}

/// Collects everything `tracing` emits, at every level, while the guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_requests_but_no_token_and_no_url_signature() -> anyhow::Result<()> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let signed = "https://object.storage.example/bucket/piece.pdf?temp_url_sig=SIGNATURE123&temp_url_expires=1";
    let mock = MockDs::start([
        Reply::html(502, &format!("<html>upstream {signed} failed</html>")),
        Reply::json(page(&[1], None)),
    ])
    .await?;
    let batches = collect(&mock, DossierFilter::default()).await?;
    assert_eq!(batches.len(), 1);

    let logs = String::from_utf8(
        captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )?;
    assert!(
        logs.contains("DS request") && logs.contains("DemarcheDossiers"),
        "{logs}"
    );
    assert!(
        logs.contains("retrying") && logs.contains("HTTP 502"),
        "{logs}"
    );
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("SIGNATURE123"), "{logs}");
    Ok(())
}

#[tokio::test]
async fn a_dossier_hidden_from_the_token_is_its_own_error_and_the_others_come() -> anyhow::Result<()>
{
    let hidden = json!({"data": null, "errors": [{"message": "An object of type Dossier was hidden due to permissions", "path": ["d2"], "extensions": {"code": "unauthorized"}}]});
    let both = json!({"data": {"d1": crate::client::dossier(1), "d3": crate::client::dossier(3)}});
    let mock = MockDs::start([Reply::json(hidden), Reply::json(both)]).await?;
    let settled = mock
        .client()?
        .dossiers_by_number(&[1, 2, 3], &DossierFilter::default())
        .await?;
    let shown: Vec<(u64, String)> = settled
        .iter()
        .map(|(n, r)| match r {
            Ok(d) => (*n, format!("{}", d.is_some())),
            Err(e) => (*n, e.to_string()),
        })
        .collect();
    assert_eq!(
        shown,
        [
            (1, "true".to_owned()),
            (2, "dossier `2` is not accessible with this token (`unauthorized`): An object of type Dossier was hidden due to permissions".to_owned()),
            (3, "true".to_owned()),
        ]
    );
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.body["query"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(sent[0].contains("d2: dossier(number: 2)"));
    assert!(!sent[1].contains("d2:") && sent[1].contains("d3: dossier(number: 3)"));
    Ok(())
}

#[tokio::test]
async fn a_batch_too_complex_for_ds_is_halved() -> anyhow::Result<()> {
    let complexity = ds_error(
        "max_complexity",
        "Query has complexity of 70000, which exceeds max complexity of 60000",
    );
    let mock = MockDs::start([
        Reply::json(complexity),
        Reply::json(json!({"data": {"d1": crate::client::dossier(1)}})),
        Reply::json(json!({"data": {"d2": crate::client::dossier(2)}})),
    ])
    .await?;
    let client = mock.client()?;
    let settled = client
        .dossiers_by_number(&[1, 2], &DossierFilter::default())
        .await?;
    assert!(
        settled.iter().all(|(_, r)| matches!(r, Ok(Some(_)))),
        "{settled:?}"
    );
    assert_eq!(client.stats().page_size_reductions, 1);
    assert_eq!(mock.unused_replies(), 0);
    Ok(())
}
