//! `fixtures/responses/*.json`: representative DS responses, generated from the simulator.
//! Regenerate with `DSFILES_UPDATE_FIXTURES=1 cargo test -p dsfiles-sim fixtures`.

use anyhow::{Context as _, Result};
use dsfiles_sim::{SimClock, SimConfig};
use serde_json::{Value, json};

use crate::support::{FULL_QUERY, post, sim};

fn check(name: &str, actual: &Value) -> Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/responses")
        .join(name);
    let rendered = serde_json::to_string_pretty(actual)? + "\n";
    if std::env::var_os("DSFILES_UPDATE_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().context("fixtures dir")?)?;
        std::fs::write(&path, rendered)?;
        return Ok(());
    }
    let stored = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} missing: run with DSFILES_UPDATE_FIXTURES=1",
            path.display()
        )
    })?;
    assert_eq!(
        stored,
        rendered,
        "{} is stale: run with DSFILES_UPDATE_FIXTURES=1",
        path.display()
    );
    Ok(())
}

#[tokio::test]
async fn representative_responses() -> Result<()> {
    let clock =
        SimClock::fixed(chrono::DateTime::from_timestamp(1_735_725_600, 0).context("time")?);
    let s = sim(SimConfig {
        seed: 2024,
        dossiers: 3,
        files_per_dossier: 2..=3,
        clock,
        ..SimConfig::default()
    })
    .await;
    let origin = format!("http://{}", s.api_addr());
    let redact = |reply: &crate::support::Reply| -> Result<Value> {
        Ok(serde_json::from_str(
            &reply
                .text
                .replace(&origin, "https://www.demarches-simplifiees.fr"),
        )?)
    };
    let page = post(&s, Some("t"), FULL_QUERY, Some("demarcheFiles"),
        json!({"demarche": s.demarche(), "first": 2, "includeGenerated": true, "includeEntreprise": true})).await?;
    assert_eq!(page.status, 200);
    check("dossiers_page.json", &redact(&page)?)?;
    let not_found = post(
        &s,
        Some("t"),
        "query d($n: Int!) { dossier(number: $n) { id number } }",
        None,
        json!({"n": 1}),
    )
    .await?;
    check("error_not_found.json", &redact(&not_found)?)?;
    let forbidden = post(&s, None, FULL_QUERY, Some("demarcheFiles"), json!({})).await?;
    assert_eq!(forbidden.status, 403);
    check("forbidden_403.json", &redact(&forbidden)?)?;
    s.shutdown().await;
    Ok(())
}
