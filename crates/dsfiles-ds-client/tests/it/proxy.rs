//! Proxies come from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), as
//! ministries run behind them. The environment of this process cannot be changed safely,
//! so the test re-runs itself in a child process with `HTTP_PROXY` set.

use dsfiles_ds_client::{Client, ClientConfig, DossierFilter, Token};
use futures::TryStreamExt;

use crate::client::{DEMARCHE, numbers, page};
use crate::mock::{MockDs, Reply, TOKEN};

/// Set in the child: the endpoint is unresolvable, only the proxy can answer.
const CHILD: &str = "DSFILES_DS_CLIENT_PROXY_CHILD";
const TEST_NAME: &str = "proxy::requests_go_through_the_proxy_from_the_environment";

#[tokio::test]
async fn requests_go_through_the_proxy_from_the_environment() -> anyhow::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        // Child: `ds.invalid` does not resolve, so success means the proxy carried it.
        let config = ClientConfig::new(
            "http://ds.invalid/api/v2/graphql".parse()?,
            Token::new(TOKEN)?,
        );
        let client = Client::new(config)?;
        let batches: Vec<_> = client
            .dossiers(DEMARCHE, DossierFilter::default())
            .try_collect()
            .await?;
        anyhow::ensure!(
            numbers(&batches) == [8],
            "unexpected dossiers {:?}",
            numbers(&batches)
        );
        return Ok(());
    }
    // Parent: the mock plays the proxy (it routes on the path of the absolute-form URI).
    let proxy = MockDs::start([Reply::json(page(&[8], None))]).await?;
    let proxy_url = format!("http://{}", proxy.url.authority());
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--exact", TEST_NAME, "--test-threads=1"])
        .env(CHILD, "1")
        .env("HTTP_PROXY", &proxy_url)
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child did not run the test:\n{stdout}"
    );
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    Ok(())
}
