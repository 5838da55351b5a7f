//! Alibaba Cloud SMS (Dysmsapi 2017-05-25), `SendBatchSms`, RPC signature version 1.
//!
//! Sort the parameters, percent-encode names and values, join them, sign
//! `METHOD&%2F&encode(query)` with HMAC-SHA1 keyed by `secret&`, Base64. The request is a POST
//! with the signed parameters as a form body (100 numbers would make a long URL).

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac as _};
use sha1::Sha1;

use super::{
    Batch, BuildError, Content, Gateway, HttpRequest, Outcome, ReportStatus, StatusReport,
    check_count, describe, percent_encode, under_server_error,
};
use crate::sms::secret::Secret;

/// Most numbers `SendBatchSms` takes in one call.
pub const MAX_NUMBERS: usize = 100;
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aliyun {
    pub endpoint: String,
    pub access_key_id: String,
    pub region: String,
}

/// The canonical query: parameters sorted by name, each name and value percent-encoded.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signature v1 of `params` (all but `Signature`) for `method`.
pub fn signature(method: &str, params: &[(&str, &str)], secret: &str) -> String {
    let to_sign = format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    );
    let mut mac = match Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Gateway for Aliyun {
    fn max_numbers(&self) -> usize {
        MAX_NUMBERS
    }

    fn build(
        &self,
        batch: &Batch,
        secret: &Secret,
        now: DateTime<Utc>,
        nonce: &str,
    ) -> Result<HttpRequest, BuildError> {
        check_count(batch, MAX_NUMBERS)?;
        let Content::Template { id, params } = &batch.content else {
            return Err(BuildError::TemplateRequired);
        };
        let n = batch.numbers.len();
        let object: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let phones = serde_json::to_string(&batch.numbers).unwrap_or_default();
        let signs = serde_json::to_string(&vec![&batch.signature; n]).unwrap_or_default();
        let values = serde_json::to_string(&vec![&object; n]).unwrap_or_default();
        let timestamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut query: Vec<(&str, &str)> = vec![
            ("AccessKeyId", &self.access_key_id),
            ("Action", "SendBatchSms"),
            ("Format", "JSON"),
            ("PhoneNumberJson", &phones),
            ("RegionId", &self.region),
            ("SignNameJson", &signs),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", id),
            ("TemplateParamJson", &values),
            ("Timestamp", &timestamp),
            ("Version", "2017-05-25"),
        ];
        let sig = signature("POST", &query, secret.expose());
        query.push(("Signature", &sig));
        Ok(HttpRequest {
            method: "POST",
            url: self.endpoint.clone(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: canonical_query(&query).into_bytes(),
        })
    }

    fn parse(&self, status: u16, body: &[u8]) -> Outcome {
        under_server_error(status, body, parse_send(status, body))
    }
}

impl Aliyun {
    /// `QuerySendDetails` for one number on one day (the provider keeps 30 days), optionally
    /// narrowed to the call `biz_id`.
    pub fn query_send_details(
        &self,
        number: &str,
        date: chrono::NaiveDate,
        biz_id: Option<&str>,
        secret: &Secret,
        now: DateTime<Utc>,
        nonce: &str,
    ) -> HttpRequest {
        let timestamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let send_date = date.format("%Y%m%d").to_string();
        let mut query: Vec<(&str, &str)> = vec![
            ("AccessKeyId", &self.access_key_id),
            ("Action", "QuerySendDetails"),
            ("CurrentPage", "1"),
            ("Format", "JSON"),
            ("PageSize", "50"),
            ("PhoneNumber", number),
            ("RegionId", &self.region),
            ("SendDate", &send_date),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("Timestamp", &timestamp),
            ("Version", "2017-05-25"),
        ];
        if let Some(biz_id) = biz_id {
            query.push(("BizId", biz_id));
        }
        let sig = signature("POST", &query, secret.expose());
        query.push(("Signature", &sig));
        HttpRequest {
            method: "POST",
            url: self.endpoint.clone(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: canonical_query(&query).into_bytes(),
        }
    }
}

/// The answer of `QuerySendDetails` for `number`: `Ok(None)` when the provider has no record
/// of a send to it that day, `Err` when the answer cannot be read. `SendStatus` 3 is
/// delivered, 2 failed (with `ErrCode`), 1 awaiting the phone's receipt; with several sends
/// of `template` that day, one delivered is enough.
pub fn parse_send_details(
    number: &str,
    template: Option<&str>,
    status: u16,
    body: &[u8],
) -> Result<Option<StatusReport>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| describe(status, body))?;
    if json.get("Code").and_then(|c| c.as_str()) != Some("OK") || !(200..300).contains(&status) {
        return Err(describe(status, body));
    }
    let list = json
        .pointer("/SmsSendDetailDTOs/SmsSendDetailDTO")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    let mut best: Option<ReportStatus> = None;
    for entry in &list {
        if let (Some(t), Some(want)) =
            (entry.get("TemplateCode").and_then(|t| t.as_str()), template)
            && t != want
        {
            continue;
        }
        let report = match entry.get("SendStatus").and_then(|s| s.as_i64()) {
            Some(3) => ReportStatus::Delivered,
            Some(2) => ReportStatus::Failed(
                entry
                    .get("ErrCode")
                    .and_then(|e| e.as_str())
                    .unwrap_or("failed")
                    .to_owned(),
            ),
            Some(1) => ReportStatus::Pending,
            _ => return Err(describe(status, body)),
        };
        best = Some(match (best, report) {
            (Some(ReportStatus::Delivered), _) | (_, ReportStatus::Delivered) => {
                ReportStatus::Delivered
            }
            (Some(ReportStatus::Pending), _) | (_, ReportStatus::Pending) => ReportStatus::Pending,
            (_, failed) => failed,
        });
    }
    Ok(best.map(|status| StatusReport {
        number: number.to_owned(),
        reference: None,
        serial: None,
        status,
    }))
}

fn parse_send(status: u16, body: &[u8]) -> Outcome {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::Unknown {
            why: describe(status, body),
        };
    };
    let Some(code) = json.get("Code").and_then(|v| v.as_str()) else {
        return Outcome::Unknown {
            why: describe(status, body),
        };
    };
    match code {
        "OK" if (200..300).contains(&status) => Outcome::Accepted {
            reference: json
                .get("BizId")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            numbers: Vec::new(),
        },
        "isv.BUSINESS_LIMIT_CONTROL" | "Throttling.User" => Outcome::Retry {
            code: code.to_owned(),
        },
        "isv.MOBILE_NUMBER_ILLEGAL"
        | "isv.SMS_SIGNATURE_ILLEGAL"
        | "isv.SMS_TEMPLATE_ILLEGAL"
        | "isv.TEMPLATE_MISSING_PARAMETERS"
        | "isv.INVALID_PARAMETERS"
        | "isv.INVALID_JSON_PARAM"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId.NotFound" => Outcome::Refused {
            code: code.to_owned(),
            permanent: true,
        },
        "isv.AMOUNT_NOT_ENOUGH" | "isv.DAY_LIMIT_CONTROL" => Outcome::Refused {
            code: code.to_owned(),
            permanent: false,
        },
        _ => Outcome::Unknown {
            why: describe(status, body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_documentation_vector() {
        let params = [
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", r#"{"customer":"test"}"#),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ];
        assert_eq!(
            signature("GET", &params, "testSecret"),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
    }

    #[test]
    fn generic_rpc_vector() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ];
        assert_eq!(
            signature("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    fn gateway() -> Aliyun {
        Aliyun {
            endpoint: DEFAULT_ENDPOINT.into(),
            access_key_id: "testId".into(),
            region: "cn-hangzhou".into(),
        }
    }

    #[test]
    fn send_batch_sms_is_signed_over_its_own_body() {
        let batch = Batch {
            numbers: vec!["13800138000".into(), "13900139000".into()],
            signature: "大余县政务公开".into(),
            content: Content::Template {
                id: "SMS_1".into(),
                params: vec![("title".into(), "中标公示".into())],
            },
        };
        let now = DateTime::from_timestamp(1_500_000_000, 0).unwrap();
        let r = gateway()
            .build(&batch, &Secret::new("testSecret"), now, "nonce-1")
            .unwrap();
        let body = String::from_utf8(r.body).unwrap();
        let mut pairs: Vec<(String, String)> = body
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let sig_at = pairs.iter().position(|(k, _)| k == "Signature").unwrap();
        let (_, sig) = pairs.remove(sig_at);
        // Recompute from the body the way the provider does.
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let to_sign = format!("POST&%2F&{}", percent_encode(&query));
        let mut mac = Hmac::<Sha1>::new_from_slice(b"testSecret&").unwrap();
        mac.update(to_sign.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, percent_encode(&want));
        assert!(body.contains("Action=SendBatchSms"));
        assert!(body.contains("Timestamp=2017-07-14T02%3A40%3A00Z"));
        assert!(body.contains(&percent_encode(r#"["13800138000","13900139000"]"#)));
    }

    #[test]
    fn free_text_and_oversized_batches_are_refused() {
        let mut batch = Batch {
            numbers: vec!["13800138000".into()],
            signature: "s".into(),
            content: Content::Text("t".into()),
        };
        let g = gateway();
        let now = DateTime::UNIX_EPOCH;
        assert_eq!(
            g.build(&batch, &Secret::new("k"), now, "n"),
            Err(BuildError::TemplateRequired)
        );
        batch.numbers = vec!["13800138000".into(); 101];
        batch.content = Content::Template {
            id: "t".into(),
            params: vec![],
        };
        assert!(matches!(
            g.build(&batch, &Secret::new("k"), now, "n"),
            Err(BuildError::TooManyNumbers { max: 100, .. })
        ));
    }

    #[test]
    fn answers_are_classified() {
        let g = gateway();
        assert!(matches!(
            g.parse(200, br#"{"Code":"OK","Message":"OK","BizId":"9006197469364984400","RequestId":"x"}"#),
            Outcome::Accepted { reference: Some(r), .. } if r == "9006197469364984400"
        ));
        assert!(matches!(
            g.parse(200, br#"{"Code":"isv.BUSINESS_LIMIT_CONTROL"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            g.parse(200, br#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL"}"#),
            Outcome::Refused {
                permanent: true,
                ..
            }
        ));
        for body in [
            &b"<html>"[..],
            br#"{"Code":"O"#,
            br#"{"Code":"isv.NEW_THING"}"#,
            br#"{}"#,
        ] {
            assert!(matches!(g.parse(200, body), Outcome::Unknown { .. }));
        }
        assert!(matches!(
            g.parse(500, br#"{"Code":"OK"}"#),
            Outcome::Unknown { .. }
        ));
    }

    #[test]
    fn query_send_details_is_signed_and_its_answer_read() {
        let now = DateTime::from_timestamp(1_500_000_000, 0).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2017, 7, 14).unwrap();
        let r = gateway().query_send_details(
            "13800138000",
            date,
            Some("b1"),
            &Secret::new("testSecret"),
            now,
            "n",
        );
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains("Action=QuerySendDetails"));
        assert!(body.contains("SendDate=20170714"));
        assert!(body.contains("PhoneNumber=13800138000"));
        assert!(body.contains("BizId=b1"));
        let delivered = br#"{"Code":"OK","TotalCount":2,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[
            {"PhoneNum":"13800138000","SendStatus":2,"ErrCode":"MK:0001","TemplateCode":"SMS_1"},
            {"PhoneNum":"13800138000","SendStatus":3,"ErrCode":"DELIVERED","TemplateCode":"SMS_1"}]}}"#;
        assert_eq!(
            parse_send_details("13800138000", Some("SMS_1"), 200, delivered)
                .unwrap()
                .map(|r| r.status),
            Some(ReportStatus::Delivered)
        );
        let none = br#"{"Code":"OK","TotalCount":0,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[]}}"#;
        assert_eq!(parse_send_details("13800138000", None, 200, none), Ok(None));
        assert!(parse_send_details("13800138000", None, 200, b"<html>").is_err());
    }
}
