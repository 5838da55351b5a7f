//! Kannel's `/cgi-bin/sendsms`, for sites that run their own SMSC link.
//!
//! Free text in UTF-8 with `coding=2` (UCS-2 on the air, Kannel converts), several receivers
//! separated by spaces, a delivery-report URL with Kannel's escapes (`%d` status, `%p`
//! receiver, `%T` time). Kannel answers in plain text: `0: Accepted for delivery` (202) or
//! `3: Queued for later delivery` when no SMSC is connected yet.

use chrono::{DateTime, Utc};

use super::{
    Batch, BuildError, Content, Gateway, HttpRequest, Outcome, check_count, describe,
    percent_encode, under_server_error,
};
use crate::sms::secret::Secret;

/// Receivers per call. Kannel has no documented limit; URLs of a few kilobytes are safe.
pub const MAX_NUMBERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kannel {
    /// e.g. `http://127.0.0.1:13013`.
    pub base_url: String,
    pub username: String,
    /// Sender (short code or number); empty leaves it to Kannel.
    pub from: String,
    /// Delivery-report URL with Kannel escapes, empty for none.
    pub dlr_url: String,
    /// Which reports Kannel sends (31 = all).
    pub dlr_mask: u8,
}

impl Gateway for Kannel {
    fn max_numbers(&self) -> usize {
        MAX_NUMBERS
    }

    fn build(
        &self,
        batch: &Batch,
        secret: &Secret,
        _now: DateTime<Utc>,
        _nonce: &str,
    ) -> Result<HttpRequest, BuildError> {
        check_count(batch, MAX_NUMBERS)?;
        let Content::Text(text) = &batch.content else {
            return Err(BuildError::TextRequired);
        };
        // Kannel talks to the SMSC directly: nobody adds the signature for us.
        let full = format!("【{}】{text}", batch.signature);
        let mut params: Vec<(&str, String)> = vec![
            ("username", self.username.clone()),
            ("password", secret.expose().to_owned()),
            ("to", batch.numbers.join(" ")),
            ("text", full),
            ("coding", "2".into()),
            ("charset", "UTF-8".into()),
        ];
        if !self.from.is_empty() {
            params.push(("from", self.from.clone()));
        }
        if !self.dlr_url.is_empty() {
            params.push(("dlr-mask", self.dlr_mask.to_string()));
            params.push(("dlr-url", self.dlr_url.clone()));
        }
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Ok(HttpRequest {
            method: "GET",
            url: format!(
                "{}/cgi-bin/sendsms?{query}",
                self.base_url.trim_end_matches('/')
            ),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    fn parse(&self, status: u16, body: &[u8]) -> Outcome {
        under_server_error(status, body, parse_send(status, body))
    }
}

/// The answer to `sendsms`, before the rule for server errors (which changes nothing here:
/// Kannel's 5xx answers are all unknown already).
fn parse_send(status: u16, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match status {
        200 | 202 if text.starts_with("0: Accepted") || text.starts_with("3: Queued") => {
            Outcome::Accepted {
                reference: None,
                numbers: Vec::new(),
            }
        }
        // Bad credentials, or a request Kannel refuses to read (missing receiver, ...).
        403 => Outcome::Refused {
            code: format!("403 {text}"),
            permanent: true,
        },
        400 => Outcome::Refused {
            code: format!("400 {text}"),
            permanent: true,
        },
        _ => Outcome::Unknown {
            why: describe(status, body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Kannel {
        Kannel {
            base_url: "http://127.0.0.1:13013/".into(),
            username: "gongkai".into(),
            from: String::new(),
            dlr_url: "http://127.0.0.1:8641/sms/dlr?s=%d&p=%p&t=%T".into(),
            dlr_mask: 31,
        }
    }

    #[test]
    fn sendsms_url_has_ucs2_utf8_receivers_and_dlr() {
        let batch = Batch {
            numbers: vec!["13800138000".into(), "13900139000".into()],
            signature: "县政务公开".into(),
            content: Content::Text("公告".into()),
        };
        let r = gateway()
            .build(&batch, &Secret::new("p w"), DateTime::UNIX_EPOCH, "n")
            .unwrap();
        assert_eq!(r.method, "GET");
        assert!(r.url.starts_with(
            "http://127.0.0.1:13013/cgi-bin/sendsms?username=gongkai&password=p%20w&"
        ));
        assert!(r.url.contains("to=13800138000%2013900139000"));
        assert!(
            r.url
                .contains(&format!("text={}", percent_encode("【县政务公开】公告")))
        );
        assert!(r.url.contains("coding=2&charset=UTF-8"));
        assert!(
            r.url.contains(
                "dlr-mask=31&dlr-url=http%3A%2F%2F127.0.0.1%3A8641%2Fsms%2Fdlr%3Fs%3D%25d"
            )
        );
    }

    #[test]
    fn answers_are_classified() {
        let g = gateway();
        assert!(matches!(
            g.parse(202, b"0: Accepted for delivery"),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            g.parse(202, b"3: Queued for later delivery"),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            g.parse(403, b"Authorization failed for sendsms"),
            Outcome::Refused {
                permanent: true,
                ..
            }
        ));
        assert!(matches!(
            g.parse(200, b"<html>proxy</html>"),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(g.parse(503, b""), Outcome::Unknown { .. }));
    }
}
