//! s3s-fs (an S3 server over a directory) running inside the test process: an S3 backend that
//! needs no external emulator. Credentials: `test` / `test`. Its listing is
//! [`Listing`]'s: paged in time proportional to the page, with entity tags.

use std::path::Path;

use super::s3s_listing::Listing;

/// A running s3s-fs server; stopped when dropped.
#[derive(Debug)]
pub struct S3sFs {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl S3sFs {
    /// Serves `root` (each directory is a bucket) on `127.0.0.1:0` inside the current runtime.
    pub async fn start(root: &Path) -> std::io::Result<S3sFs> {
        let mut builder = s3s::service::S3ServiceBuilder::new(Listing::new(root)?);
        builder.set_auth(s3s::auth::SimpleAuth::from_single("test", "test"));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(S3sFs {
            endpoint: format!("http://{addr}"),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.task.abort();
    }
}
