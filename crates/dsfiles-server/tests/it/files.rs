//! `GET /v1/demarches/{n}/files`: paging with opaque cursors.

use std::collections::BTreeMap;
use std::sync::Arc;

use dsfiles_server::api::FilePage;
use dsfiles_server::{CorePipeline, Pipeline as _};
use dsfiles_sim::SimConfig;

use crate::support::{Blocking, Dirs, TestServer, config, error_code};

#[tokio::test]
async fn pages_cover_every_record_exactly_once() {
    let dirs = Dirs::new();
    let server = TestServer::start(
        config(&dirs),
        Arc::new(Blocking {
            files: 25,
            stall_listing: false,
            ..Blocking::default()
        }),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/v1/demarches/9/files?limit=10".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: FilePage = server
            .get(&path)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("page");
        pages += 1;
        assert!(page.files.len() <= 10);
        seen.extend(page.files.iter().map(|f| f.filename.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("f{i}.pdf")).collect();
    assert_eq!(seen, expected);
    // A cursor is bound to its démarche.
    let first: FilePage = server
        .get("/v1/demarches/9/files?limit=10")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("page");
    let cursor = first.next_cursor.expect("more pages");
    let response = server
        .get(&format!("/v1/demarches/10/files?cursor={cursor}"))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(response, 400).await, "invalid_cursor");
    server.stop().await;
}

#[tokio::test]
async fn listing_the_simulator_returns_its_files_without_urls() {
    let sim = crate::support::sim(crate::support::small()).await;
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), crate::support::pipeline_for(&sim)).await;
    let expected = sim.expected_files(false, false);
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/demarches/{}/files?limit=7", sim.demarche());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = server.get(&path).send().await.expect("send");
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("text");
        assert!(
            !text.contains("\"url\""),
            "signed URLs are credentials: {text}"
        );
        let page: FilePage = serde_json::from_str(&text).expect("page");
        names.extend(page.files.iter().map(|f| (f.dossier, f.filename.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let truth: Vec<(u64, String)> = expected
        .iter()
        .map(|f| (f.dossier, f.filename.clone()))
        .collect();
    assert_eq!(names, truth);
    server.stop().await;
    sim.shutdown().await;
}

/// The cursor's JSON, as the service encodes it (base64url without padding).
fn cursor_json(cursor: &str) -> serde_json::Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .expect("base64url cursor");
    serde_json::from_slice(&bytes).expect("JSON cursor")
}

fn encode_cursor(json: &serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

/// `GET /files` of `demarche` with `limit` and the cursor `json` (encoded as the service does).
async fn get_with_cursor(
    server: &TestServer,
    demarche: u64,
    limit: usize,
    json: &serde_json::Value,
) -> reqwest::Response {
    server
        .get(&format!(
            "/v1/demarches/{demarche}/files?limit={limit}&cursor={}",
            encode_cursor(json)
        ))
        .send()
        .await
        .expect("send")
}

/// Pages of `limit` files from `cursor` on, with the DS requests each one cost.
async fn walk(
    server: &TestServer,
    pipeline: &CorePipeline,
    demarche: u64,
    limit: usize,
) -> Vec<(FilePage, u64)> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/demarches/{demarche}/files?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let before = pipeline.ds_stats().api_calls;
        let response = server.get(&path).send().await.expect("send");
        assert_eq!(response.status(), 200, "{path}");
        let page: FilePage = response.json().await.expect("page");
        let cost = pipeline.ds_stats().api_calls - before;
        cursor = page.next_cursor.clone();
        pages.push((page, cost));
        if cursor.is_none() {
            return pages;
        }
    }
}

#[tokio::test]
async fn deep_pages_cost_the_ds_requests_of_their_own_records() {
    let sim = crate::support::sim(SimConfig {
        dossiers: 30,
        ..crate::support::small()
    })
    .await;
    let mut ds_config = crate::support::core_pipeline_config(&sim);
    ds_config.page_size = 4;
    let pipeline = Arc::new(CorePipeline::new(ds_config, BTreeMap::new()).expect("pipeline"));
    let dirs = Dirs::new();
    let server = TestServer::start(config(&dirs), pipeline.clone()).await;
    let demarche = sim.demarche();

    let full = walk(&server, &pipeline, demarche, 1000).await;
    assert_eq!(full.len(), 1, "one page holds the whole démarche");
    let (full, full_cost) = &full[0];
    let everything: Vec<String> = full.files.iter().map(|f| f.file_id.clone()).collect();
    assert_eq!(everything.len(), sim.expected_files(false, false).len());
    // 30 dossiers in DS pages of 4.
    assert_eq!(*full_cost, 8);

    let pages = walk(&server, &pipeline, demarche, 3).await;
    let paged: Vec<String> = pages
        .iter()
        .flat_map(|(page, _)| page.files.iter().map(|f| f.file_id.clone()))
        .collect();
    assert_eq!(paged, everything, "no gap, no duplicate, same order");
    assert!(pages.len() > 10, "{} pages", pages.len());
    // Every dossier has a file, so 4 records follow the last one returned within the DS page
    // holding it and the next one. Listing from the start would cost up to 8 at the end.
    let costs: Vec<u64> = pages.iter().map(|(_, cost)| *cost).collect();
    assert!(
        costs.iter().all(|&cost| (1..=2).contains(&cost)),
        "{costs:?}"
    );

    // A version 1 cursor (no DS cursor) lists from the start, and still gives the next page.
    let mut v1 = cursor_json(pages[4].0.next_cursor.as_deref().expect("more pages"));
    assert_eq!(v1["v"], 2);
    assert!(v1["ds_page"].is_string(), "{v1}");
    let object = v1.as_object_mut().expect("object");
    object.remove("ds_page");
    object.insert("v".into(), 1.into());
    let before = pipeline.ds_stats().api_calls;
    let page: FilePage = get_with_cursor(&server, demarche, 3, &v1)
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page.files, pages[5].0.files);
    assert!(pipeline.ds_stats().api_calls - before >= 2);

    // A DS cursor DS refuses: the client starts over.
    let mut tampered = cursor_json(pages[4].0.next_cursor.as_deref().expect("more pages"));
    tampered["ds_page"] = "not a DS cursor".into();
    let response = get_with_cursor(&server, demarche, 3, &tampered).await;
    assert_eq!(error_code(response, 410).await, "cursor_expired");
    // One this service would never have issued.
    tampered["ds_page"] = "".into();
    let response = get_with_cursor(&server, demarche, 3, &tampered).await;
    assert_eq!(error_code(response, 400).await, "invalid_cursor");
    server.stop().await;
    sim.shutdown().await;
}
