//! A fake provider API on loopback: records every request and answers with canned JSON.
//! Plugins reach it through the real `http-fetch` (with `allow_loopback_http`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use salvo::http::StatusCode;
use salvo::prelude::*;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    responses: Mutex<HashMap<(String, String), (u16, String)>>,
}

pub struct FakeApi {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Recorder {
    shared: Arc<Shared>,
}

#[handler]
impl Recorder {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let body = req.payload().await.map(|b| b.to_vec()).unwrap_or_default();
        let recorded = Recorded {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body,
        };
        let key = (recorded.method.clone(), recorded.path.clone());
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(recorded);
        let canned = self
            .shared
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let (status, body) =
            canned.unwrap_or((404, r#"{"detail":"not found (fake API)"}"#.to_owned()));
        res.status_code(StatusCode::from_u16(status).expect("status"));
        res.add_header("content-type", "application/json", true)
            .ok();
        res.write_body(body).ok();
    }
}

impl FakeApi {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener).expect("acceptor");
        let router = Router::with_path("{**rest}").goal(Recorder {
            shared: Arc::clone(&shared),
        });
        let server = tokio::spawn(async move {
            Server::new(acceptor).serve(router).await;
        });
        Self {
            url: format!("http://{addr}"),
            shared,
            server,
        }
    }

    /// Answers `method path` with `status` and `body` from now on.
    pub fn respond(&self, method: &str, path: &str, status: u16, body: &serde_json::Value) {
        self.shared
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (method.to_owned(), path.to_owned()),
                (status, body.to_string()),
            );
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
