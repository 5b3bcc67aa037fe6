//! DS webhooks: signed JSON (current) and form with a secret path (legacy).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsfiles_server::api::{JobState, WebhookAccepted};
use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::Sha256;

use crate::support::{
    Blocking, Dirs, TestServer, WEBHOOK_PREVIOUS, WEBHOOK_SECRET, assert_terminal, config,
    error_code, pipeline_for, sim, small, stored_data, stored_files,
};

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn delivery(demarche: u64, events: &[(u64, u64)]) -> Vec<u8> {
    let events: Vec<_> = events
        .iter()
        .map(|(sequence, dossier)| {
            json!({"sequence": sequence, "type": "dossier_depose", "dossier_number": dossier, "timestamp": "2025-01-01T00:00:00Z"})
        })
        .collect();
    serde_json::to_vec(
        &json!({"webhook_id": "wh-1", "demarche_number": demarche, "events": events}),
    )
    .expect("json")
}

async fn post_signed(
    server: &TestServer,
    body: Vec<u8>,
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = server
        .http
        .post(server.url("/v1/webhooks/ds"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-webhook-signature-256", signature);
    }
    request.send().await.expect("send")
}

/// A server whose webhooks for the simulator's démarche sync into `dirs`' destination `name`.
async fn hooked(sim: &dsfiles_sim::SimHandle, dirs: &Dirs, name: &str) -> (String, TestServer) {
    let dest = dirs.dest(name);
    let mut config = config(dirs);
    config
        .webhook_destinations
        .insert(sim.demarche(), dest.clone());
    (dest, TestServer::start(config, pipeline_for(sim)).await)
}

/// The dossiers (first key component) that have files under `dest`.
fn stored_dossiers(dest: &str) -> BTreeSet<u64> {
    stored_files(Path::new(dest))
        .iter()
        .filter_map(|p| p.split('/').next().and_then(|d| d.parse().ok()))
        .collect()
}

#[tokio::test]
async fn a_signed_webhook_syncs_the_named_dossiers() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let (dest, server) = hooked(&sim, &dirs, "hook").await;
    let numbers = sim.dossier_numbers();
    let chosen = [numbers[0], numbers[2]];

    let body = delivery(sim.demarche(), &[(1, chosen[0]), (2, chosen[1])]);
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(response.status(), 202);
    let accepted: WebhookAccepted = response.json().await.expect("json");
    assert_eq!(accepted.duplicates, 0);
    let [id] = accepted.jobs.as_slice() else {
        panic!("one job expected: {accepted:?}")
    };
    let done = server.finish(id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert_eq!(done.dossiers, chosen);

    // Only the named dossiers' files were stored.
    let expected: BTreeSet<u64> = sim
        .expected_files(false, false)
        .iter()
        .filter(|f| chosen.contains(&f.dossier))
        .map(|f| f.dossier)
        .collect();
    let stored = stored_dossiers(&dest);
    assert_eq!(stored, expected);

    // A redelivery (same sequences) starts nothing.
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(response.status(), 202);
    let again: WebhookAccepted = response.json().await.expect("json");
    assert_eq!((again.jobs.len(), again.duplicates), (0, 2));

    // The previous secret is still accepted during a rotation.
    let body = delivery(sim.demarche(), &[(3, chosen[0])]);
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_PREVIOUS, &body))).await;
    assert_eq!(response.status(), 202);
    let rotated: WebhookAccepted = response.json().await.expect("json");
    assert_eq!(rotated.jobs.len(), 1);
    assert_terminal(&server.finish(&rotated.jobs[0]).await, JobState::Succeeded);
    server.stop().await;
    sim.shutdown().await;
}

/// A delivery naming a dossier DS deleted (`dossier_supprime`) and one DS never had: neither
/// holds back the delivery's other dossiers, which are stored. The deleted one is recorded as
/// deleted, as a full run would; the unknown one ends the job `failed` with an error naming it
/// rather than a count of `0` failed files.
#[tokio::test]
async fn a_webhook_dossier_deleted_or_unknown_does_not_hold_back_the_others() {
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let (dest, server) = hooked(&sim, &dirs, "hook").await;
    let numbers = sim.dossier_numbers();
    let (deleted, kept) = (numbers[0], numbers[1]);
    sim.delete_dossier(deleted).expect("the simulator has it");

    let unknown = 7;
    let body = delivery(sim.demarche(), &[(1, kept), (2, deleted), (3, unknown)]);
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(response.status(), 202);
    let accepted: WebhookAccepted = response.json().await.expect("json");
    let done = server.finish(&accepted.jobs[0]).await;
    assert_eq!(
        done.dossiers,
        [unknown, deleted, kept],
        "the missing ones first"
    );
    assert_eq!(done.state, JobState::Failed);
    let error = done.error.expect("a failed job says why");
    assert_eq!(error.code, "incomplete");
    let only_the_unknown = format!("the run is incomplete: dossier `{unknown}` not found in DS");
    assert!(
        error.message.starts_with(&only_the_unknown) && !error.message.contains("more warnings"),
        "{}",
        error.message
    );
    let stored = stored_dossiers(&dest);
    assert_eq!(stored, BTreeSet::from([kept]));
    server.stop().await;
    sim.shutdown().await;
}

/// A webhook job names no layout: it keeps the one the destination was synced with, so an
/// operator's custom layout survives the next webhook (nothing moves, new files follow it).
#[tokio::test]
async fn a_webhook_job_keeps_the_layout_the_destination_was_synced_with() {
    // The default layout would put files and dossier.json under `{dossier}/`.
    const CUSTOM: &str = "{demarche}/{dossier}/{groupe}/{label}/{filename}";
    let sim = sim(small()).await;
    let dirs = Dirs::new();
    let (dest, server) = hooked(&sim, &dirs, "custom").await;
    let body = json!({"demarche": sim.demarche(), "dest": dest, "layout": CUSTOM});
    let job = server.start_sync(body).await;
    assert_terminal(&server.finish(&job.id).await, JobState::Succeeded);
    let objects = |dest: &str| {
        let (files, data) = (stored_files(Path::new(dest)), stored_data(Path::new(dest)));
        files.into_iter().chain(data).collect::<BTreeSet<String>>()
    };
    let before = objects(&dest);
    let prefix = format!("{}/", sim.demarche());
    assert!(before.iter().all(|k| k.starts_with(&prefix)), "{before:#?}");

    let new = sim.add_dossier();
    let old = sim.dossier_numbers()[0];
    sim.touch_dossier(old, false).expect("touch");
    let delivery = delivery(sim.demarche(), &[(1, old), (2, new)]);
    let signature = sign(WEBHOOK_SECRET, &delivery);
    let response = post_signed(&server, delivery, Some(signature)).await;
    assert_eq!(response.status(), 202);
    let accepted: WebhookAccepted = response.json().await.expect("json");
    let [id] = accepted.jobs.as_slice() else {
        panic!("one job expected: {accepted:?}")
    };
    let done = server.finish(id).await;
    assert_terminal(&done, JobState::Succeeded);
    assert_eq!(done.layout, None);
    let after = objects(&dest);
    assert!(
        before.is_subset(&after),
        "moved: {:#?}",
        before.difference(&after)
    );
    let added: Vec<&String> = after.difference(&before).collect();
    let new_dir = format!("{prefix}{new}/");
    assert!(
        !added.is_empty() && added.iter().all(|k| k.starts_with(&new_dir)),
        "{added:#?}"
    );
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn webhooks_refuse_bad_signatures_secrets_and_payloads() {
    let dirs = Dirs::new();
    let mut config = config(&dirs);
    config.webhook_destinations.insert(77, dirs.dest("w"));
    let server = TestServer::start(config, Arc::new(Blocking::default())).await;
    let body = delivery(77, &[(1, 10)]);
    // Missing, malformed, wrong-key and wrong-body signatures.
    for signature in [
        None,
        Some("sha256=zz".to_owned()),
        Some(sign("whsec_wrong", &body)),
        Some(sign(WEBHOOK_SECRET, b"another body")),
        Some(sign(WEBHOOK_SECRET, &body).replace("sha256=", "sha1=")),
    ] {
        let response = post_signed(&server, body.clone(), signature.clone()).await;
        assert_eq!(
            error_code(response, 401).await,
            "unauthorized",
            "{signature:?}"
        );
    }
    // Signed but malformed, too many events, or an unconfigured démarche.
    let garbage = b"{\"webhook_id\": 1".to_vec();
    let response = post_signed(
        &server,
        garbage.clone(),
        Some(sign(WEBHOOK_SECRET, &garbage)),
    )
    .await;
    assert_eq!(error_code(response, 400).await, "malformed_json");
    let many: Vec<(u64, u64)> = (1..=101).map(|i| (i, i)).collect();
    let body = delivery(77, &many);
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(error_code(response, 422).await, "invalid_value");
    let body = delivery(78, &[(1, 1)]);
    let response = post_signed(&server, body.clone(), Some(sign(WEBHOOK_SECRET, &body))).await;
    assert_eq!(error_code(response, 404).await, "demarche_not_configured");

    // Legacy: a wrong secret is a 404 like any unknown path; the right one queues a sync.
    let form = [
        ("procedure_id", "77"),
        ("dossier_id", "10"),
        ("state", "en_construction"),
        ("updated_at", "2025-01-01"),
    ];
    let response = server
        .http
        .post(server.url("/v1/webhooks/ds/not-the-secret"))
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 404).await, "not_found");
    let response = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);
    let legacy: WebhookAccepted = response.json().await.expect("json");
    assert_eq!(legacy.jobs.len(), 1);
    // A second legacy call while that job runs queues one follow-up; a third joins it.
    let form2 = [("procedure_id", "77"), ("dossier_id", "11")];
    let follow: WebhookAccepted = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_PREVIOUS}")))
        .form(&form2)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let form3 = [("procedure_id", "77"), ("dossier_id", "12")];
    let joined: WebhookAccepted = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .form(&form3)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(follow.jobs, joined.jobs);
    let queued = server.job(&follow.jobs[0]).await;
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.dossiers, [11, 12]);
    let response = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .body("procedure_id=x")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 400).await, "malformed_form");
    server.stop().await;
}

/// Both webhooks answer as soon as the sync is queued. The pipeline here never ends a sync on
/// its own, so a 202 (within a 2 s client timeout, DS gives up at 10 s) proves the handler does
/// not await the sync; the job is then seen running.
#[tokio::test]
async fn webhooks_answer_without_waiting_for_the_sync() {
    let dirs = Dirs::new();
    let mut config = config(&dirs);
    config.webhook_destinations.insert(77, dirs.dest("a"));
    config.webhook_destinations.insert(78, dirs.dest("b"));
    let server = TestServer::start(config, Arc::new(Blocking::default())).await;
    let body = delivery(77, &[(1, 10)]);
    let signed = server
        .http
        .post(server.url("/v1/webhooks/ds"))
        .header("content-type", "application/json")
        .header("x-webhook-signature-256", sign(WEBHOOK_SECRET, &body))
        .body(body);
    let legacy = server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .form(&[("procedure_id", "78"), ("dossier_id", "10")]);
    for request in [signed, legacy] {
        let started = Instant::now();
        let response = request
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("the webhook answers before its sync ends");
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 202);
        let accepted: WebhookAccepted = response.json().await.expect("json");
        let [id] = accepted.jobs.as_slice() else {
            panic!("one job expected: {accepted:?}")
        };
        // The sync runs after the answer (and runs until cancelled).
        drop(server.events_until(id, "\"state\":\"running\"").await);
        assert_eq!(server.job(id).await.state, JobState::Running);
        #[allow(clippy::print_stdout, reason = "the latency is the test's report")]
        {
            println!("webhook answered in {elapsed:?}");
        }
    }
    server.stop().await;
}
