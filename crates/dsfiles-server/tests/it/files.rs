//! `GET /v1/demarches/{n}/files`: paging with opaque cursors.

use std::sync::Arc;

use dsfiles_server::api::FilePage;

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
