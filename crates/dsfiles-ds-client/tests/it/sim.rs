//! The client against the simulator (which shares no code with it): hostile GraphQL faults
//! end in a bounded retry or a typed error, and batched `dossier(number)` requests.

use std::time::{Duration, Instant};

use dsfiles_ds_client::{Client, ClientConfig, DossierFilter, Error, Token};
use dsfiles_sim::{Fault, FaultPlan, SimConfig, SimHandle, Target};
use futures::TryStreamExt;

/// A simulator with `dossiers` dossiers and `faults`.
pub async fn start(dossiers: usize, faults: FaultPlan) -> anyhow::Result<SimHandle> {
    Ok(dsfiles_sim::start(SimConfig {
        dossiers,
        faults,
        ..SimConfig::default()
    })
    .await?)
}

/// A client of `sim` with fast backoff (at most 50 ms between attempts).
pub fn client(sim: &SimHandle, change: impl FnOnce(&mut ClientConfig)) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(sim.endpoint(), Token::new(sim.token())?);
    config.requests_per_minute = 0;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(50);
    change(&mut config);
    Ok(Client::new(config)?)
}

async fn list(client: &Client, demarche: u64) -> Result<usize, Error> {
    let batches: Vec<_> = client
        .dossiers(demarche, DossierFilter::default())
        .try_collect()
        .await?;
    Ok(batches.iter().map(|b| b.dossiers.len()).sum())
}

#[tokio::test]
async fn a_reset_centuries_away_costs_one_wait_of_backoff_max() -> anyhow::Result<()> {
    let hostile = FaultPlan::new()
        .with(
            Fault::HostileRateLimit {
                reset: "10000000000000000000".to_owned(),
                retry_after: Some("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
            },
            Target::Always,
            Some(1),
        )
        .with(
            Fault::HostileRateLimit {
                reset: "-1".to_owned(),
                retry_after: Some("tomorrow".to_owned()),
            },
            Target::Every { every: 2 },
            Some(1),
        );
    let sim = start(5, hostile).await?;
    let client = client(&sim, |_| {})?;
    let start = Instant::now();
    assert_eq!(list(&client, sim.demarche()).await?, 5);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.stats().rate_limited, 2);
    assert_eq!(sim.stats().rate_limited, 2);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_gigantic_page_is_asked_again_smaller_then_fails_typed() -> anyhow::Result<()> {
    let once = FaultPlan::new().with(
        Fault::GiganticPage { bytes: 4 << 20 },
        Target::Always,
        Some(1),
    );
    let sim = start(5, once).await?;
    let client = client(&sim, |c| c.max_response_bytes = 1 << 20)?;
    assert_eq!(list(&client, sim.demarche()).await?, 5);
    assert_eq!(client.stats().page_size_reductions, 1);

    sim.set_faults(FaultPlan::new().with(
        Fault::GiganticPage { bytes: 4 << 20 },
        Target::Always,
        None,
    ));
    let err = list(&client, sim.demarche()).await.err();
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
    let err = client.dossier(1, &DossierFilter::default()).await.err();
    assert!(
        matches!(err, Some(Error::ResponseTooLarge { .. })),
        "{err:?}"
    );
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn dossiers_by_number_come_many_per_request_and_missing_ones_as_none() -> anyhow::Result<()> {
    let sim = start(30, FaultPlan::new()).await?;
    let client = client(&sim, |_| {})?;
    let mut numbers: Vec<u64> = sim.dossier_numbers().into_iter().take(23).collect();
    anyhow::ensure!(numbers.len() == 23, "the simulator has 30 dossiers");
    let missing = [9_999_991, 9_999_992];
    numbers.insert(5, missing[0]);
    numbers.push(missing[1]);
    let filter = DossierFilter {
        include_generated: true,
        include_entreprise: true,
        ..DossierFilter::default()
    };
    let settled = client.dossiers_by_number(&numbers, &filter).await?;
    let order: Vec<u64> = settled.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        order, numbers,
        "one entry per number, in the caller's order"
    );
    for (number, result) in &settled {
        match result {
            Ok(None) => assert!(missing.contains(number), "{number} reported missing"),
            Ok(Some(dossier)) => {
                assert_eq!(dossier["number"].as_u64(), Some(*number));
                assert_eq!(dossier["demarche"]["number"].as_u64(), Some(sim.demarche()));
                assert!(dossier["champs"].is_array(), "the full dossier selection");
            }
            Err(err) => anyhow::bail!("dossier {number}: {err}"),
        }
    }
    let found = settled
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(found, 23);
    // One request finds the first missing one, the next the second, the third gets all.
    assert_eq!(client.stats().api_calls, 3);
    assert_eq!(sim.stats().graphql_requests, 3);
    assert_eq!(sim.stats().sim_bugs, 0);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn more_numbers_than_a_request_holds_are_split() -> anyhow::Result<()> {
    let per_request = dsfiles_ds_client::DOSSIERS_PER_REQUEST;
    let sim = start(per_request + 5, FaultPlan::new()).await?;
    let client = client(&sim, |_| {})?;
    let mut numbers = sim.dossier_numbers();
    // Repeated numbers are asked once; a number beyond DS's `Int` is never sent.
    numbers.push(numbers[0]);
    numbers.push(u64::from(u32::MAX) + 1);
    let settled = client
        .dossiers_by_number(&numbers, &DossierFilter::default())
        .await?;
    assert_eq!(settled.len(), per_request + 6);
    let found = settled
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(found, per_request + 5);
    assert!(
        matches!(settled.last(), Some((_, Err(Error::InvalidConfig { reason }))) if reason.contains("`4294967296`")),
        "{:?}",
        settled
            .last()
            .map(|(n, r)| (n, r.as_ref().err().map(ToString::to_string)))
    );
    assert_eq!(client.stats().api_calls, 2);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_revisions_labels_are_the_simulated_demarches() -> anyhow::Result<()> {
    let sim = start(2, FaultPlan::new()).await?;
    let labels = client(&sim, |_| {})?
        .revision_labels(sim.demarche())
        .await?;
    assert!(
        labels.champs.iter().any(|l| l == "Nom du projet"),
        "{labels:?}"
    );
    assert!(!labels.annotations.is_empty(), "{labels:?}");
    let missing = client(&sim, |_| {})?
        .revision_labels(sim.demarche() + 1)
        .await;
    assert!(missing.is_err(), "{missing:?}");
    sim.shutdown().await;
    Ok(())
}

/// Every dossier of the démarche as the listing returns them with `fields`, the simulator's
/// answer bytes for it, and the dossier returned by number.
async fn dossiers_with(
    sim: &SimHandle,
    fields: dsfiles_ds_client::DossierFields,
) -> anyhow::Result<(Vec<serde_json::Value>, u64, serde_json::Value)> {
    let client = client(sim, |_| {})?;
    let filter = DossierFilter {
        fields,
        ..DossierFilter::default()
    };
    let before = sim.stats().graphql_response_bytes;
    let batches: Vec<_> = client
        .dossiers(sim.demarche(), filter.clone())
        .try_collect()
        .await?;
    let bytes = sim.stats().graphql_response_bytes - before;
    let dossiers: Vec<serde_json::Value> = batches.into_iter().flat_map(|b| b.dossiers).collect();
    let number = sim.dossier_numbers()[0];
    let settled = client.dossiers_by_number(&[number], &filter).await?;
    let by_number = settled.into_iter().next().expect("one").1?.expect("found");
    Ok((dossiers, bytes, by_number))
}

/// Whether `dossier` carries a value of each group: démarche title, groupe, applicant
/// details, champ values, message bodies.
fn groups_present(dossier: &serde_json::Value) -> [bool; 5] {
    let champs = dossier["champs"].as_array().into_iter().flatten();
    let messages = dossier["messages"].as_array().into_iter().flatten();
    [
        dossier["demarche"].get("title").is_some(),
        dossier.get("groupeInstructeur").is_some(),
        ["nom", "siret"]
            .iter()
            .any(|k| dossier["demandeur"].get(k).is_some()),
        champs.clone().any(|c| c.get("stringValue").is_some()),
        messages.clone().any(|m| m.get("body").is_some()),
    ]
}

#[tokio::test]
async fn dossier_values_are_asked_for_by_group() -> anyhow::Result<()> {
    use dsfiles_ds_client::DossierFields;
    let sim = start(12, FaultPlan::new()).await?;
    let (all, all_bytes, all_one) = dossiers_with(&sim, DossierFields::ALL).await?;
    let (none, none_bytes, none_one) = dossiers_with(&sim, DossierFields::NONE).await?;
    assert_eq!(all.len(), none.len());
    // Somewhere in the démarche, every group has a value; with none asked, none comes.
    let any =
        |dossiers: &[serde_json::Value], i: usize| dossiers.iter().any(|d| groups_present(d)[i]);
    for i in 0..5 {
        assert!(any(&all, i), "group {i} never present");
        assert!(!any(&none, i), "group {i} present though not asked for");
    }
    assert!(groups_present(&all_one).iter().filter(|p| **p).count() >= 3);
    assert_eq!(groups_present(&none_one), [false; 5]);
    // Files and what names them come either way.
    for (a, n) in all.iter().zip(&none) {
        assert_eq!(a["number"], n["number"]);
        assert_eq!(a["dateDerniereModification"], n["dateDerniereModification"]);
        let labels = |d: &serde_json::Value| d["champs"].to_string().matches("\"label\"").count();
        assert_eq!(labels(a), labels(n));
        assert_eq!(
            a["champs"].to_string().matches("\"url\"").count(),
            n["champs"].to_string().matches("\"url\"").count()
        );
    }
    // One group alone: the applicant, nothing else.
    let applicant = DossierFields {
        applicant: true,
        ..DossierFields::NONE
    };
    let (only, only_bytes, _) = dossiers_with(&sim, applicant).await?;
    assert!(any(&only, 2) && !any(&only, 3) && !any(&only, 0));
    assert!(none_bytes < only_bytes && only_bytes < all_bytes);
    #[allow(clippy::print_stdout, reason = "the sizes are the test's report")]
    {
        println!(
            "listing answer bytes: all {all_bytes}, applicant only {only_bytes}, none {none_bytes}"
        );
    }
    Ok(())
}
