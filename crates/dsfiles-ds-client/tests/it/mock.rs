//! A scripted mock of DS's GraphQL endpoint: it answers each request with the next scripted
//! reply and records what it received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dsfiles_ds_client::{Client, ClientConfig, Token};
use serde_json::Value;

/// The token every test client sends; never to be seen in logs or `Debug` output.
pub const TOKEN: &str = "dsT0k3n-SECRET-9f8e7d";

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(body: Value) -> Reply {
        Reply::status_json(200, body)
    }

    pub fn status_json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            content_type: "text/html",
            body: body.as_bytes().to_vec(),
        }
    }

    /// A JSON answer sent as these exact bytes (e.g. gzip-compressed, with a
    /// `Content-Encoding` header added by [`Reply::header`]).
    pub fn raw_json(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            content_type: "application/json",
            body,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the mock received.
#[derive(Clone, Debug)]
pub struct Request {
    pub authorization: Option<String>,
    pub body: Value,
}

impl Request {
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.body.get("variables").and_then(|v| v.get(name))
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<Request>,
}

type Shared = Arc<Mutex<Script>>;

/// The mock server, on 127.0.0.1 with a free port; stopped when dropped.
pub struct MockDs {
    pub url: url::Url,
    script: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl MockDs {
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> anyhow::Result<MockDs> {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: replies.into_iter().collect(),
            requests: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/api/v2/graphql", axum::routing::post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/api/v2/graphql", listener.local_addr()?).parse()?;
        let server = tokio::spawn(async move {
            // Ends when the test drops the mock (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockDs {
            url,
            script,
            server,
        })
    }

    pub fn requests(&self) -> Vec<Request> {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .clone()
    }

    /// The `first` variable of every request, in order.
    pub fn page_sizes(&self) -> Vec<Option<u64>> {
        self.requests()
            .iter()
            .map(|r| r.variable("first").and_then(Value::as_u64))
            .collect()
    }

    pub fn unused_replies(&self) -> usize {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replies
            .len()
    }

    /// A test configuration: fast backoff, no client-side limiter, 4 attempts.
    pub fn config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new(self.url.clone(), Token::new(TOKEN)?);
        config.max_attempts = 4;
        config.requests_per_minute = 0;
        config.backoff_base = Duration::from_millis(1);
        config.backoff_max = Duration::from_millis(20);
        config.connect_timeout = Duration::from_secs(5);
        config.read_timeout = Duration::from_secs(5);
        Ok(config)
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.config()?)?)
    }
}

impl Drop for MockDs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(script): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = Request {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let reply = {
        let mut script = script.lock().unwrap_or_else(PoisonError::into_inner);
        script.requests.push(request);
        script.replies.pop_front()
    };
    let Some(reply) = reply else {
        return (StatusCode::IM_A_TEAPOT, "the mock's script is exhausted").into_response();
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [("content-type", reply.content_type)], reply.body).into_response();
    for (name, value) in reply.headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
