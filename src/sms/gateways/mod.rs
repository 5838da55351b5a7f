//! The gateways: for each provider, the HTTP request a batch becomes and what its answer means.
//!
//! Owns request building (fields, signing, encoding) and answer parsing. It does no I/O: no
//! sockets, no clock, no randomness — the time and the nonce are arguments, so the providers'
//! published signing examples are unit tests. Sending, retrying, rate limits and the ledger
//! belong to the dispatcher.
//!
//! The rule for answers: only an answer that says, in the provider's documented words, that the
//! message was taken is [`Outcome::Accepted`]. Anything that cannot be read — HTML from a
//! proxy, truncated JSON, a code this module does not know — is [`Outcome::Unknown`]: the
//! gateway may have acted, so the dispatcher must not resend blindly.
//!
//! A server error (HTTP 5xx) says the gateway's own handling failed somewhere, perhaps after
//! the message was queued; a proxy in front may also have timed out on a backend that acted.
//! So under a 5xx nothing that leads to a resend stands: throttling and a refusal that sends
//! the batch to the next gateway are [`Outcome::Unknown`] too ([`under_server_error`]). Only a
//! permanent refusal keeps its meaning: its rows fail and are not sent again either way.

use std::fmt;

use chrono::{DateTime, Utc};

use super::secret::Secret;

pub mod aliyun;
pub mod kannel;
pub mod tencent;
pub mod yunmas;

/// What goes out in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Normalised 11-digit mainland numbers (`13800138000`), each at most once.
    pub numbers: Vec<String>,
    /// The signature without 【】.
    pub signature: String,
    pub content: Content,
}

/// Free text, or an approved template with its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The message body without the 【signature】 (the platform adds it).
    Text(String),
    /// Variables in the template's order, as `(name, value)`.
    Template {
        id: String,
        params: Vec<(String, String)>,
    },
}

/// An HTTP request, ready for a client. Its `Debug` leaves out the query and the body, which
/// can carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.url.split('?').next().unwrap_or_default();
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &path)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The result of one number in a batch, where the provider reports numbers one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberResult {
    /// Normalised 11-digit number.
    pub number: String,
    pub status: NumberStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberStatus {
    Accepted { serial: Option<String> },
    Refused { code: String, permanent: bool },
    Retry { code: String },
    Unknown { code: String },
}

/// What the gateway said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken. `numbers` is empty when the provider answers for the batch as a whole; otherwise
    /// it lists each number's result, and a number of the batch missing from it is in doubt.
    Accepted {
        reference: Option<String>,
        numbers: Vec<NumberResult>,
    },
    /// Refused in documented words: nothing was sent. `permanent` refusals (bad number, bad
    /// signature, bad credentials) must not be retried; the others (IP not allowed, daily cap)
    /// need the operator or the next day, not an immediate retry.
    Refused { code: String, permanent: bool },
    /// Throttled or busy in documented words: nothing was sent; try again later.
    Retry { code: String },
    /// Cannot tell whether anything was sent.
    Unknown { why: String },
}

/// What a delivery report or a status poll says about one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Normalised 11-digit number.
    pub number: String,
    /// The gateway's reference of the call (云MAS `msgGroup`, Alibaba `BizId`), when given.
    pub reference: Option<String>,
    /// The gateway's per-number serial (Tencent `SerialNo`, Kannel has none), when given.
    pub serial: Option<String>,
    pub status: ReportStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportStatus {
    /// Delivered to the phone (or, for a poll, taken and delivered).
    Delivered,
    /// Not delivered, with the provider's reason.
    Failed(String),
    /// Taken, the phone's receipt still awaited.
    Pending,
}

/// A batch that cannot be expressed for this gateway. A bug or a configuration mistake that
/// validation should have caught; never a network condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{count} numbers in one call, at most {max} allowed")]
    TooManyNumbers { count: usize, max: usize },
    #[error("an empty batch")]
    NoNumbers,
    #[error("this gateway sends only approved templates")]
    TemplateRequired,
    #[error("this gateway sends only free text")]
    TextRequired,
}

/// One provider. Two methods, no I/O: the dispatcher sends what `build` returns and hands the
/// answer to `parse`.
pub trait Gateway {
    /// At most this many numbers per call.
    fn max_numbers(&self) -> usize;

    /// The request for `batch`. `now` is the signing time; `nonce` is unique per request
    /// (Alibaba refuses a nonce it has seen).
    fn build(
        &self,
        batch: &Batch,
        secret: &Secret,
        now: DateTime<Utc>,
        nonce: &str,
    ) -> Result<HttpRequest, BuildError>;

    /// What an answer means. `status` is the HTTP status; `body` the raw bytes.
    fn parse(&self, status: u16, body: &[u8]) -> Outcome;
}

/// The rule for answers under a server error (see the module's documentation): every
/// gateway's `parse` passes its reading through this.
pub fn under_server_error(status: u16, body: &[u8], outcome: Outcome) -> Outcome {
    if !(500..600).contains(&status) {
        return outcome;
    }
    match outcome {
        Outcome::Refused {
            code,
            permanent: true,
        } => Outcome::Refused {
            code,
            permanent: true,
        },
        Outcome::Unknown { why } => Outcome::Unknown { why },
        Outcome::Accepted { .. } | Outcome::Refused { .. } | Outcome::Retry { .. } => {
            Outcome::Unknown {
                why: describe(status, body),
            }
        }
    }
}

/// Checks the batch size against a gateway's maximum.
fn check_count(batch: &Batch, max: usize) -> Result<(), BuildError> {
    match batch.numbers.len() {
        0 => Err(BuildError::NoNumbers),
        n if n > max => Err(BuildError::TooManyNumbers { count: n, max }),
        _ => Ok(()),
    }
}

/// RFC 3986 percent-encoding as Alibaba's signature wants it: unreserved characters
/// `A-Z a-z 0-9 - _ . ~` kept, everything else as `%XX` (uppercase) of its UTF-8 bytes.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short description of an unreadable body for `Outcome::Unknown`, without dumping it.
fn describe(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let head: String = text.chars().take(60).collect();
    format!("HTTP {status}: {head:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("a b*c~"), "a%20b%2Ac~");
        assert_eq!(percent_encode("中"), "%E4%B8%AD");
        assert_eq!(percent_encode("/"), "%2F");
    }

    #[test]
    fn a_server_error_keeps_only_a_permanent_refusal() {
        let retry = || Outcome::Retry {
            code: "busy".into(),
        };
        let operator = || Outcome::Refused {
            code: "quota".into(),
            permanent: false,
        };
        let permanent = Outcome::Refused {
            code: "bad number".into(),
            permanent: true,
        };
        for status in [500, 502, 503, 504] {
            for outcome in [retry(), operator()] {
                assert!(
                    matches!(
                        under_server_error(status, b"x", outcome),
                        Outcome::Unknown { .. }
                    ),
                    "{status}"
                );
            }
            assert_eq!(
                under_server_error(status, b"x", permanent.clone()),
                permanent
            );
        }
        // Outside 5xx the parser's reading stands.
        assert_eq!(under_server_error(429, b"x", retry()), retry());
        assert_eq!(under_server_error(200, b"x", operator()), operator());
    }

    #[test]
    fn request_debug_hides_query_and_body() {
        let r = HttpRequest {
            method: "GET",
            url: "http://k/cgi-bin/sendsms?password=hunter2".into(),
            headers: vec![],
            body: b"hunter2".to_vec(),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
