//! The client's happy paths and retries against the scripted mock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsfiles_ds_client::{DossierBatch, DossierFilter, DossierState, Error, QUERIES};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::mock::{MockDs, Reply, TOKEN};

pub const DEMARCHE: u64 = 1234;

/// A dossier as the queries select it (trimmed to what the client reads).
pub fn dossier(number: u64) -> Value {
    json!({
        "__typename": "Dossier",
        "id": format!("RG9zc2llci0{number}"),
        "number": number,
        "state": "en_construction",
        "demarche": {"number": DEMARCHE},
        "champs": [],
        "annotations": [],
        "messages": [],
        "avis": [],
        "attestation": null,
        "motivationAttachment": null,
    })
}

/// A `DemarcheDossiers` page holding `numbers`, followed by `next` when given.
pub fn page(numbers: &[u64], next: Option<&str>) -> Value {
    let nodes: Vec<Value> = numbers.iter().map(|&n| dossier(n)).collect();
    json!({"data": {"demarche": {"id": "UHJvY2VkdXJlLTEyMzQ=", "number": DEMARCHE, "dossiers": {
        "pageInfo": {"hasNextPage": next.is_some(), "endCursor": next},
        "nodes": nodes,
    }}}})
}

pub fn numbers(batches: &[DossierBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| &b.dossiers)
        .filter_map(|d| d["number"].as_u64())
        .collect()
}

/// The `after` variable of every request the mock received, in order.
fn after_variables(mock: &MockDs) -> Vec<Option<String>> {
    mock.requests()
        .iter()
        .map(|r| {
            r.variable("after")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Every page of the démarche's dossiers through `client`.
async fn every_page(
    client: &dsfiles_ds_client::Client,
    filter: DossierFilter,
) -> Result<Vec<DossierBatch>, Error> {
    client.dossiers(DEMARCHE, filter).try_collect().await
}

pub async fn collect(mock: &MockDs, filter: DossierFilter) -> Result<Vec<DossierBatch>, Error> {
    let client = mock.client().map_err(|e| Error::InvalidConfig {
        reason: e.to_string(),
    })?;
    client.dossiers(DEMARCHE, filter).try_collect().await
}

#[tokio::test]
async fn pages_follow_the_cursor_and_send_the_token() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::json(page(&[1, 2], Some("c1"))),
        Reply::json(page(&[3, 4], Some("c2"))),
        Reply::json(page(&[5], None)),
    ])
    .await?;
    let mut config = mock.config()?;
    config.page_size = 2;
    let client = dsfiles_ds_client::Client::new(config)?;
    let filter = DossierFilter {
        updated_since: Some("2024-03-01T10:00:00Z".parse()?),
        state: Some(DossierState::Accepte),
        archived: Some(false),
        include_generated: true,
        ..DossierFilter::default()
    };
    let batches = every_page(&client, filter).await?;

    assert_eq!(numbers(&batches), [1, 2, 3, 4, 5]);
    assert_eq!(batches.len(), 3);
    assert_eq!(
        after_variables(&mock),
        [None, Some("c1".into()), Some("c2".into())]
    );
    assert_eq!(mock.page_sizes(), [Some(2); 3]);
    let expected_document = QUERIES
        .iter()
        .find(|(name, _)| *name == "DemarcheDossiers")
        .map(|(_, d)| *d);
    for request in &mock.requests() {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(request.body["operationName"], "DemarcheDossiers");
        assert_eq!(request.body["query"].as_str(), expected_document);
        assert_eq!(request.variable("demarche"), Some(&json!(DEMARCHE)));
        assert_eq!(
            request.variable("updatedSince"),
            Some(&json!("2024-03-01T10:00:00Z"))
        );
        assert_eq!(request.variable("state"), Some(&json!("accepte")));
        assert_eq!(request.variable("archived"), Some(&json!(false)));
        assert_eq!(request.variable("includeGenerated"), Some(&json!(true)));
        assert_eq!(request.variable("includeEntreprise"), Some(&json!(false)));
        // Filters not asked for are not sent at all.
        assert_eq!(request.variable("createdSince"), None);
    }
    let stats = client.stats();
    assert_eq!(
        (stats.api_calls, stats.retries, stats.rate_limited),
        (3, 0, 0)
    );
    Ok(())
}

#[tokio::test]
async fn a_dossier_seen_on_an_earlier_page_is_not_returned_twice() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::json(page(&[1, 2, 3], Some("c1"))),
        Reply::json(page(&[2, 4], Some("c2"))),
        Reply::json(page(&[4, 5], None)),
    ])
    .await?;
    let batches = collect(&mock, DossierFilter::default()).await?;
    assert_eq!(numbers(&batches), [1, 2, 3, 4, 5]);
    assert!(batches.iter().all(|b| b.errors.is_empty()));
    Ok(())
}

#[tokio::test]
async fn rate_limited_request_waits_for_ratelimit_reset_then_succeeds() -> anyhow::Result<()> {
    // DS's window ends in an hour: the wait is capped at `backoff_max` (30 ms here), far
    // longer than the 1 ms backoff the retry would use without the header.
    let reset = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let mock = MockDs::start([
        Reply::status_json(429, json!({"errors": [{"message": "Too many requests"}]}))
            .header("ratelimit-reset", reset.to_string()),
        Reply::json(page(&[7], None)),
    ])
    .await?;
    let mut config = mock.config()?;
    config.backoff_max = Duration::from_millis(30);
    let client = dsfiles_ds_client::Client::new(config)?;
    let start = Instant::now();
    let batches = every_page(&client, DossierFilter::default()).await?;
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(numbers(&batches), [7]);
    let stats = client.stats();
    assert_eq!(
        (stats.api_calls, stats.retries, stats.rate_limited),
        (2, 1, 1)
    );
    Ok(())
}

#[tokio::test]
async fn rate_limit_reset_in_the_past_retries_at_once() -> anyhow::Result<()> {
    let reset = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() - 5;
    let mock = MockDs::start([
        Reply::status_json(429, json!({})).header("ratelimit-reset", reset.to_string()),
        Reply::status_json(429, json!({})).header("retry-after", "0"),
        Reply::json(page(&[7], None)),
    ])
    .await?;
    let mut config = mock.config()?;
    config.backoff_max = Duration::from_secs(10);
    config.backoff_base = Duration::from_secs(10);
    let client = dsfiles_ds_client::Client::new(config)?;
    let start = Instant::now();
    let batches = every_page(&client, DossierFilter::default()).await?;
    // With a 10 s backoff, finishing quickly proves the headers were used.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(numbers(&batches), [7]);
    assert_eq!(client.stats().rate_limited, 2);
    Ok(())
}

#[tokio::test]
async fn html_502_is_retried_then_succeeds() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::html(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
        Reply::html(
            504,
            "<html><body><h1>504 Gateway Time-out</h1></body></html>",
        ),
        Reply::json(page(&[1], None)),
    ])
    .await?;
    let client = mock.client()?;
    let batches = every_page(&client, DossierFilter::default()).await?;
    assert_eq!(numbers(&batches), [1]);
    assert_eq!((client.stats().api_calls, client.stats().retries), (3, 2));
    Ok(())
}

#[tokio::test]
async fn graphql_timeout_halves_the_page_then_grows_it_back() -> anyhow::Result<()> {
    let timeout = json!({
        "data": {"demarche": {"id": "x", "number": DEMARCHE, "dossiers": null}},
        "errors": [{"message": "Timeout on Demarche.dossiers", "path": ["demarche", "dossiers"], "extensions": {"code": "timeout"}}]
    });
    let mock = MockDs::start([
        Reply::json(timeout.clone()),
        Reply::json(timeout),
        Reply::json(page(&[1, 2], Some("c1"))),
        Reply::json(page(&[3, 4, 5, 6], Some("c2"))),
        Reply::json(page(&[7, 8, 9], None)),
    ])
    .await?;
    let mut config = mock.config()?;
    config.page_size = 8;
    let client = dsfiles_ds_client::Client::new(config)?;
    let batches = every_page(&client, DossierFilter::default()).await?;
    assert_eq!(numbers(&batches), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(
        mock.page_sizes(),
        [Some(8), Some(4), Some(2), Some(4), Some(8)]
    );
    // The failed pages were asked again from the same cursor.
    let cursors: Vec<Option<String>> = mock
        .requests()
        .iter()
        .map(|r| {
            r.variable("after")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        cursors,
        [
            None,
            None,
            None,
            Some("c1".to_owned()),
            Some("c2".to_owned())
        ]
    );
    assert_eq!(client.stats().page_size_reductions, 2);
    Ok(())
}

#[tokio::test]
async fn complexity_error_shrinks_down_to_one_then_fails() -> anyhow::Result<()> {
    let complexity = json!({"errors": [{"message": "Query has complexity of 30500, which exceeds max complexity of 25000"}]});
    let mock = MockDs::start(std::iter::repeat_n(Reply::json(complexity), 3)).await?;
    let mut config = mock.config()?;
    config.page_size = 4;
    let client = dsfiles_ds_client::Client::new(config)?;
    let result: Result<Vec<DossierBatch>, Error> = client
        .dossiers(DEMARCHE, DossierFilter::default())
        .try_collect()
        .await;
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("Query has complexity"), "{err}");
    assert_eq!(mock.page_sizes(), [Some(4), Some(2), Some(1)]);
    Ok(())
}

#[tokio::test]
async fn data_with_errors_gives_the_data_and_the_errors() -> anyhow::Result<()> {
    let mut body = page(&[1, 2], None);
    if let Some(nodes) = body
        .pointer_mut("/data/demarche/dossiers/nodes")
        .and_then(Value::as_array_mut)
    {
        nodes.insert(1, Value::Null);
    }
    body["errors"] = json!([{
        "message": "Cannot return null for non-nullable field PieceJustificativeChamp.files",
        "path": ["demarche", "dossiers", "nodes", 1, "champs", 0, "files"],
        "extensions": {"code": "invalid_null"}
    }]);
    let mock = MockDs::start([Reply::json(body)]).await?;
    let batches = collect(&mock, DossierFilter::default()).await?;
    assert_eq!(numbers(&batches), [1, 2]);
    let errors: Vec<String> = batches
        .iter()
        .flat_map(|b| &b.errors)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "`invalid_null`: Cannot return null for non-nullable field PieceJustificativeChamp.files (at `demarche.dossiers.nodes.1.champs.0.files`)",
            "the dossier at `nodes[1]` of this page is null: DS could not return it (at `demarche.dossiers.nodes.1`)",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn groupe_instructeur_lists_through_its_own_operation() -> anyhow::Result<()> {
    let body = json!({"data": {"groupeInstructeur": {"id": "g", "number": 55, "dossiers": {
        "pageInfo": {"hasNextPage": false, "endCursor": null},
        "nodes": [dossier(1), dossier(2)],
    }}}});
    let mock = MockDs::start([Reply::json(body)]).await?;
    let filter = DossierFilter {
        groupe_instructeur: Some(55),
        ..DossierFilter::default()
    };
    let batches = collect(&mock, filter).await?;
    assert_eq!(numbers(&batches), [1, 2]);
    let requests = mock.requests();
    assert_eq!(
        requests[0].body["operationName"],
        "GroupeInstructeurDossiers"
    );
    assert_eq!(requests[0].variable("groupeInstructeur"), Some(&json!(55)));
    assert_eq!(requests[0].variable("demarche"), None);
    Ok(())
}

#[tokio::test]
async fn a_groupe_of_another_demarche_is_an_error_naming_it() -> anyhow::Result<()> {
    let mut other = dossier(1);
    other["demarche"]["number"] = json!(999);
    let body = json!({"data": {"groupeInstructeur": {"id": "g", "number": 55, "dossiers": {
        "pageInfo": {"hasNextPage": false, "endCursor": null}, "nodes": [other],
    }}}});
    let mock = MockDs::start([Reply::json(body)]).await?;
    let filter = DossierFilter {
        groupe_instructeur: Some(55),
        ..DossierFilter::default()
    };
    let err = collect(&mock, filter)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "groupe instructeur `55` belongs to démarche `999`, not to démarche `1234`"
    );
    Ok(())
}

#[tokio::test]
async fn listed_dossiers_are_fetched_one_by_one() -> anyhow::Result<()> {
    let one = |n: u64| Reply::json(json!({"data": {"dossier": dossier(n)}}));
    let mock = MockDs::start([one(11), one(12)]).await?;
    let filter = DossierFilter {
        dossiers: vec![11, 12, 11],
        include_entreprise: true,
        ..DossierFilter::default()
    };
    let batches = collect(&mock, filter).await?;
    assert_eq!(numbers(&batches), [11, 12]);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.body["operationName"] == "Dossier")
    );
    assert_eq!(requests[1].variable("number"), Some(&json!(12)));
    assert_eq!(
        requests[1].variable("includeEntreprise"),
        Some(&json!(true))
    );
    Ok(())
}

#[tokio::test]
async fn a_listed_dossier_of_another_demarche_is_an_error_naming_it() -> anyhow::Result<()> {
    let mut other = dossier(11);
    other["demarche"]["number"] = json!(77);
    let mock = MockDs::start([Reply::json(json!({"data": {"dossier": other}}))]).await?;
    let filter = DossierFilter {
        dossiers: vec![11],
        ..DossierFilter::default()
    };
    let err = collect(&mock, filter).await.err();
    assert_eq!(
        err.as_ref().map(Error::kind),
        Some(dsfiles_ds_client::ErrorKind::NotFound)
    );
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "dossier `11` belongs to démarche `77`, not to démarche `1234`"
    );
    Ok(())
}

#[tokio::test]
async fn one_dossier_is_fetched_fresh() -> anyhow::Result<()> {
    let mock = MockDs::start([Reply::json(json!({"data": {"dossier": dossier(42)}}))]).await?;
    let client = mock.client()?;
    let filter = DossierFilter {
        include_generated: true,
        ..DossierFilter::default()
    };
    let got = client.dossier(42, &filter).await?;
    assert_eq!(got, dossier(42));
    assert_eq!(
        mock.requests()[0].variable("includeGenerated"),
        Some(&json!(true))
    );
    Ok(())
}

#[tokio::test]
async fn deleted_dossiers_are_paged_and_parsed() -> anyhow::Result<()> {
    let deleted_page = |nodes: Value, next: Option<&str>| {
        Reply::json(
            json!({"data": {"demarche": {"id": "d", "number": DEMARCHE, "deletedDossiers": {
                "pageInfo": {"hasNextPage": next.is_some(), "endCursor": next}, "nodes": nodes,
            }}}}),
        )
    };
    let mock = MockDs::start([
        deleted_page(
            json!([{"id": "a", "number": 3, "state": "accepte", "reason": "user_request", "dateSupression": "2024-05-01T10:00:00+02:00"}]),
            Some("d1"),
        ),
        deleted_page(
            json!([{"id": "b", "number": 4, "state": "refuse", "reason": "expired", "dateSupression": "2024-05-02T10:00:00+02:00"}]),
            None,
        ),
    ])
    .await?;
    let client = mock.client()?;
    let pages: Vec<Vec<dsfiles_ds_client::DeletedDossier>> = client
        .deleted_dossiers(DEMARCHE, Some("2024-04-01T00:00:00Z".parse()?))
        .try_collect()
        .await?;
    let got: Vec<(u64, &str, &str)> = pages
        .iter()
        .flatten()
        .map(|d| (d.number, d.state.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [(3, "accepte", "user_request"), (4, "refuse", "expired")]
    );
    assert_eq!(pages[0][0].deleted_at, "2024-05-01T10:00:00+02:00");
    let requests = mock.requests();
    assert_eq!(requests[0].body["operationName"], "DeletedDossiers");
    assert_eq!(
        requests[0].variable("deletedSince"),
        Some(&json!("2024-04-01T00:00:00Z"))
    );
    assert_eq!(requests[1].variable("after"), Some(&json!("d1")));
    Ok(())
}

#[tokio::test]
async fn clones_share_the_counters() -> anyhow::Result<()> {
    let mock =
        MockDs::start([Reply::json(page(&[1], None)), Reply::json(page(&[2], None))]).await?;
    let client = mock.client()?;
    let clone = client.clone();
    let _ = every_page(&client, DossierFilter::default()).await?;
    let _ = every_page(&clone, DossierFilter::default()).await?;
    assert_eq!(client.stats().api_calls, 2);
    assert_eq!(mock.unused_replies(), 0);
    Ok(())
}

#[tokio::test]
async fn each_page_names_its_cursor_and_a_listing_can_start_after_one() -> anyhow::Result<()> {
    let mock = MockDs::start([
        Reply::json(page(&[1, 2], Some("c1"))),
        Reply::json(page(&[3, 4], None)),
        // The same démarche, listed again from the second page.
        Reply::json(page(&[3, 4], None)),
    ])
    .await?;
    let client = mock.client()?;
    let batches = every_page(&client, DossierFilter::default()).await?;
    let resumes: Vec<Option<&str>> = batches.iter().map(|b| b.resume.as_deref()).collect();
    assert_eq!(resumes, [None, Some("c1")]);

    let filter = DossierFilter {
        after: batches[1].resume.clone(),
        ..DossierFilter::default()
    };
    let again = every_page(&client, filter).await?;
    assert_eq!(numbers(&again), [3, 4]);
    assert_eq!(again[0].resume.as_deref(), Some("c1"));
    assert_eq!(
        after_variables(&mock),
        [None, Some("c1".into()), Some("c1".into())]
    );
    Ok(())
}

#[tokio::test]
async fn a_start_cursor_ds_refuses_is_named_as_such() -> anyhow::Result<()> {
    let refused = json!({
        "data": {"demarche": null},
        "errors": [{"message": "invalid cursor `zz`", "extensions": {"code": "invalid_argument"}, "path": ["demarche", "dossiers"]}],
    });
    let mock = MockDs::start([Reply::json(refused)]).await?;
    let filter = DossierFilter {
        after: Some("zz".into()),
        ..DossierFilter::default()
    };
    let err = collect(&mock, filter).await.err();
    assert!(matches!(err, Some(Error::CursorRejected { .. })), "{err:?}");
    let err = err.map(|e| (e.kind(), e.is_transient(), e.to_string()));
    assert!(
        err.as_ref().is_some_and(|(kind, transient, message)| {
            *kind == dsfiles_ds_client::ErrorKind::Config
                && !transient
                && message.contains("invalid cursor `zz`")
        }),
        "{err:?}"
    );
    assert_eq!(mock.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_same_error_without_a_start_cursor_stays_a_graphql_error() -> anyhow::Result<()> {
    let failed = json!({
        "data": {"demarche": null},
        "errors": [{"message": "invalid cursor `c1`", "extensions": {"code": "invalid_argument"}}],
    });
    let mock = MockDs::start([Reply::json(page(&[1, 2], Some("c1"))), Reply::json(failed)]).await?;
    let err = collect(&mock, DossierFilter::default()).await.err();
    assert!(matches!(err, Some(Error::GraphQl { .. })), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_start_cursor_does_not_apply_to_dossiers_fetched_by_number() -> anyhow::Result<()> {
    let mock = MockDs::start([]).await?;
    let filter = DossierFilter {
        dossiers: vec![11],
        after: Some("c1".into()),
        ..DossierFilter::default()
    };
    let err = collect(&mock, filter).await.err();
    assert!(
        matches!(&err, Some(Error::InvalidConfig { reason }) if reason.contains("`after`")),
        "{err:?}"
    );
    assert!(mock.requests().is_empty());
    Ok(())
}
