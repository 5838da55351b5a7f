//! The HTTP client of the gateways: a [`HttpRequest`] in, a status and body — or a classified
//! failure — out.
//!
//! Owns the client (reqwest on rustls with the ring provider, timeouts, connection reuse) and
//! the one judgement the ledger depends on: whether a failed call certainly did not reach the
//! gateway. It does not parse answers (the gateways do) and does not retry (the dispatcher
//! does). It never logs a request: URLs and bodies carry credentials and numbers.

use std::time::Duration;

use super::gateways::HttpRequest;

/// Timeouts of gateway calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection (TCP and TLS).
    pub connect: Duration,
    /// The whole call, from sending to the end of the answer.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(30),
        }
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a call has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request never left: the connection was refused or could not be made. The gateway
    /// certainly did not act; the call may be retried.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the gateway (a timeout, a connection reset while waiting
    /// for the answer, a truncated answer): the gateway may have acted.
    #[error("no answer: {0}")]
    InDoubt(String),
    /// The request could not be built (a bad URL or header): a configuration mistake.
    #[error("bad request: {0}")]
    Invalid(String),
}

/// Installs rustls' ring provider as the process default; a provider already installed (by
/// `main` or by another client) is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client of one process; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    pub fn new(timeouts: Timeouts) -> Result<Client, CallError> {
        install_crypto_provider();
        let inner = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .user_agent(concat!("gongkai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallError::Invalid(e.to_string()))?;
        Ok(Client { inner })
    }

    /// Sends `request` and reads the whole answer.
    pub async fn call(&self, request: &HttpRequest) -> Result<Answer, CallError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| CallError::Invalid(e.to_string()))?;
        let mut builder = self.inner.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body.clone());
        }
        let response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(classify)?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }
}

/// A reqwest error in the ledger's terms. Only a failure to connect is certain not to have
/// reached the gateway (hyper retries by itself a request that a reused connection closed
/// before it was written); everything else — a timeout, a reset while waiting — is in doubt.
fn classify(error: reqwest::Error) -> CallError {
    // The error's text can hold the URL, and a Kannel URL holds the password.
    let error = error.without_url();
    let text = error.to_string();
    if error.is_builder() {
        CallError::Invalid(text)
    } else if error.is_connect() {
        // Refused, unreachable, or a connect timeout: the TCP or TLS handshake did not
        // finish, so no request was written.
        CallError::NotSent(text)
    } else {
        CallError::InDoubt(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: String) -> HttpRequest {
        HttpRequest {
            method: "GET",
            url,
            headers: vec![],
            body: vec![],
        }
    }

    #[tokio::test]
    async fn a_refused_connection_was_certainly_not_sent() {
        // Bind then drop: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(Timeouts::default()).unwrap();
        let err = client
            .call(&get(format!("http://127.0.0.1:{port}/?password=hunter2")))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::NotSent(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn a_gateway_that_never_answers_is_in_doubt() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let client = Client::new(Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_millis(300),
        })
        .unwrap();
        let err = client
            .call(&get(format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::InDoubt(_)), "{err:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_is_in_doubt() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        });
        let client = Client::new(Timeouts::default()).unwrap();
        let err = client
            .call(&get(format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::InDoubt(_)), "{err:?}");
        server.await.unwrap();
    }
}
