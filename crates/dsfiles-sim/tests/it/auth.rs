//! Bearer auth with DS's error shapes.

use anyhow::Result;
use dsfiles_sim::SimConfig;
use serde_json::json;

use crate::support::{post, sim};

const Q: &str = "query { demarche(number: 1234) { id } }";

#[tokio::test]
async fn missing_wrong_and_expired_tokens() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 1,
        token: Some("good-token".into()),
        expired_tokens: vec!["old-token".into()],
        ..SimConfig::default()
    })
    .await;
    assert_eq!(sim.token(), "good-token");
    for (token, status, code) in [
        (None, 403, "forbidden"),
        (Some("bad"), 403, "forbidden"),
        (Some("old-token"), 401, "unauthorized"),
    ] {
        let reply = post(&sim, token, Q, None, json!({})).await?;
        assert_eq!(reply.status, status, "{token:?}: {}", reply.text);
        assert_eq!(
            reply.body["errors"][0]["extensions"]["code"], code,
            "{}",
            reply.text
        );
        assert!(reply.body["errors"][0]["message"].is_string());
        assert!(reply.body.get("data").is_none());
    }
    let ok = post(&sim, Some("good-token"), Q, None, json!({})).await?;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        ok.body["data"]["demarche"]["id"],
        json!("UHJvY2VkdXJlLTEyMzQ=")
    );
    assert_eq!(sim.stats().auth_failures, 3);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn any_non_empty_token_when_none_is_configured() -> Result<()> {
    let sim = sim(SimConfig {
        dossiers: 1,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(
        post(&sim, Some("whatever"), Q, None, json!({}))
            .await?
            .status,
        200
    );
    assert_eq!(post(&sim, Some(""), Q, None, json!({})).await?.status, 403);
    let unknown = post(
        &sim,
        Some("t"),
        "query { demarche(number: 999) { id } }",
        None,
        json!({}),
    )
    .await?;
    assert_eq!(unknown.body["errors"][0]["extensions"]["code"], "not_found");
    sim.shutdown().await;
    Ok(())
}
