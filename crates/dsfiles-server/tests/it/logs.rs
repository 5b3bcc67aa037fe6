//! Secrets never reach the logs, even at trace level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::Sha256;

use crate::support::{Blocking, Dirs, TOKEN, TestServer, WEBHOOK_SECRET, config};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_and_webhook_secrets_are_not_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dirs = Dirs::new();
    let mut config = config(&dirs);
    config.webhook_destinations.insert(5, dirs.dest("w"));
    let server = TestServer::start(config, Arc::new(Blocking::default())).await;
    server
        .start_sync(json!({"demarche": 5, "dest": dirs.dest("a")}))
        .await;
    server
        .http
        .get(server.url("/v1/syncs"))
        .bearer_auth("a-wrong-token-xyz")
        .send()
        .await
        .expect("send");
    server
        .http
        .post(server.url(&format!("/v1/webhooks/ds/{WEBHOOK_SECRET}")))
        .form(&[("procedure_id", "5"), ("dossier_id", "9")])
        .send()
        .await
        .expect("send");
    let body = serde_json::to_vec(&json!({"webhook_id": "w", "demarche_number": 5, "events": [{"sequence": 1, "dossier_number": 9}]}))
        .expect("json");
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("key");
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    server
        .http
        .post(server.url("/v1/webhooks/ds"))
        .header("x-webhook-signature-256", &signature)
        .body(body)
        .send()
        .await
        .expect("send");
    server.stop().await;

    let logs = String::from_utf8_lossy(&capture.0.lock().expect("capture lock")).into_owned();
    assert!(
        logs.contains("DS webhook received"),
        "the capture works: {logs}"
    );
    for secret in [
        TOKEN,
        "a-wrong-token-xyz",
        WEBHOOK_SECRET,
        signature.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
}
