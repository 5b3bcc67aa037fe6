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
