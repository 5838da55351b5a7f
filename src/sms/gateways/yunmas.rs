//! China Mobile 云MAS, HTTP interface: `norsubmit` (free text) and `tmpsubmit` (template).
//!
//! The request is a UTF-8 JSON object, Base64-encoded as a whole, posted as the body; `mac` is
//! the lowercase hex MD5 of the fields concatenated without separators. The answer is plain
//! JSON with `rspcod` and `success`.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use md5::{Digest as _, Md5};
use serde::Serialize;

use super::{
    Batch, BuildError, Content, Gateway, HttpRequest, Outcome, check_count, describe,
    under_server_error,
};
use crate::sms::secret::Secret;

/// Most numbers 云MAS takes in one call.
pub const MAX_NUMBERS: usize = 5_000;

/// One 云MAS account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YunMas {
    /// Per province and account, e.g. `http://112.35.1.155:1992`; paths are appended.
    pub base_url: String,
    /// The registered organisation name.
    pub ec_name: String,
    /// The interface account.
    pub ap_id: String,
    /// The signature *code* the platform issued (not the signature text).
    pub sign_code: String,
    /// Extension code, often empty.
    pub add_serial: String,
    /// Some deployments want the password in the body, some want it blank there (it is always
    /// in the mac).
    pub secret_in_body: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TextBody<'a> {
    ec_name: &'a str,
    ap_id: &'a str,
    secret_key: &'a str,
    mobiles: &'a str,
    content: &'a str,
    sign: &'a str,
    add_serial: &'a str,
    mac: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateBody<'a> {
    ec_name: &'a str,
    ap_id: &'a str,
    secret_key: &'a str,
    template_id: &'a str,
    mobiles: &'a str,
    params: &'a str,
    sign: &'a str,
    add_serial: &'a str,
    mac: &'a str,
}

/// Lowercase hex MD5 of the concatenation of `fields`.
pub fn mac(fields: &[&str]) -> String {
    let mut hasher = Md5::new();
    for field in fields {
        hasher.update(field.as_bytes());
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `params` string of `tmpsubmit`: a JSON array of the values, compact (no spaces), the
/// same bytes in the body and in the mac.
pub fn params_string(params: &[(String, String)]) -> String {
    let values: Vec<&str> = params.iter().map(|(_, v)| v.as_str()).collect();
    serde_json::to_string(&values).unwrap_or_else(|_| "[]".to_owned())
}

impl Gateway for YunMas {
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
        let mobiles = batch.numbers.join(",");
        let key = secret.expose();
        let body_key = if self.secret_in_body { key } else { "" };
        let base = self.base_url.trim_end_matches('/');
        let (path, json) = match &batch.content {
            Content::Text(text) => {
                let mac = mac(&[
                    &self.ec_name,
                    &self.ap_id,
                    key,
                    &mobiles,
                    text,
                    &self.sign_code,
                    &self.add_serial,
                ]);
                let body = TextBody {
                    ec_name: &self.ec_name,
                    ap_id: &self.ap_id,
                    secret_key: body_key,
                    mobiles: &mobiles,
                    content: text,
                    sign: &self.sign_code,
                    add_serial: &self.add_serial,
                    mac: &mac,
                };
                ("/sms/norsubmit", serde_json::to_vec(&body))
            }
            Content::Template { id, params } => {
                let params = params_string(params);
                let mac = mac(&[
                    &self.ec_name,
                    &self.ap_id,
                    key,
                    id,
                    &mobiles,
                    &params,
                    &self.sign_code,
                    &self.add_serial,
                ]);
                let body = TemplateBody {
                    ec_name: &self.ec_name,
                    ap_id: &self.ap_id,
                    secret_key: body_key,
                    template_id: id,
                    mobiles: &mobiles,
                    params: &params,
                    sign: &self.sign_code,
                    add_serial: &self.add_serial,
                    mac: &mac,
                };
                ("/sms/tmpsubmit", serde_json::to_vec(&body))
            }
        };
        // Serialising a struct of strings cannot fail; an empty body would be refused.
        let json = json.unwrap_or_default();
        Ok(HttpRequest {
            method: "POST",
            url: format!("{base}{path}"),
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: base64::engine::general_purpose::STANDARD
                .encode(json)
                .into_bytes(),
        })
    }

    fn parse(&self, status: u16, body: &[u8]) -> Outcome {
        under_server_error(status, body, parse_answer(status, body))
    }
}

/// Permanent refusals: the same request will never pass.
const PERMANENT: &[&str] = &[
    "IllegalMac",
    "IllegalSignId",
    "InvalidMessage",
    "InvalidUsrOrPwd",
    "NoSignId",
    "TooManyMobiles",
    "InvalidMobile",
];
/// Refusals that need the operator or the next day.
const OPERATOR: &[&str] = &["NOT_WHITE_IP", "OverDailyMax"];
/// Throttling: nothing was sent, try later.
const RETRY: &[&str] = &["SystemBusy", "FlowOverLimit", "RequestTooOften"];

fn parse_answer(status: u16, body: &[u8]) -> Outcome {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::Unknown {
            why: describe(status, body),
        };
    };
    let rspcod = json.get("rspcod").and_then(|v| v.as_str()).unwrap_or("");
    let success = json.get("success").and_then(|v| v.as_bool());
    if rspcod == "success" && success == Some(true) && (200..300).contains(&status) {
        return Outcome::Accepted {
            reference: json
                .get("msgGroup")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            numbers: Vec::new(),
        };
    }
    if success == Some(true) {
        // Success claimed with an unexpected code or status: do not guess.
        return Outcome::Unknown {
            why: describe(status, body),
        };
    }
    if PERMANENT.contains(&rspcod) {
        Outcome::Refused {
            code: rspcod.to_owned(),
            permanent: true,
        }
    } else if OPERATOR.contains(&rspcod) {
        Outcome::Refused {
            code: rspcod.to_owned(),
            permanent: false,
        }
    } else if RETRY.contains(&rspcod) {
        Outcome::Retry {
            code: rspcod.to_owned(),
        }
    } else {
        Outcome::Unknown {
            why: describe(status, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = "某县人民政府办公室";
    const CONTENT: &str = "县政府关于2025年第3季度财政预算执行情况的公告已发布，详见县政府网站。";

    fn gateway() -> YunMas {
        YunMas {
            base_url: "http://mas.example:1992/".into(),
            ec_name: EC.into(),
            ap_id: "zwgk01".into(),
            sign_code: "AbCdEf123".into(),
            add_serial: String::new(),
            secret_in_body: true,
        }
    }

    fn numbers() -> Vec<String> {
        vec!["13800138000".into(), "13900139000".into()]
    }

    fn decode(request: &HttpRequest) -> serde_json::Value {
        let json = base64::engine::general_purpose::STANDARD
            .decode(&request.body)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn norsubmit_mac_matches_the_reference_vector() {
        let mobiles = numbers().join(",");
        let m = mac(&[EC, "zwgk01", "Secr3t!", &mobiles, CONTENT, "AbCdEf123", ""]);
        assert_eq!(m, "fbf26a359cda8da8f7cf1a2acbcdc133");
    }

    #[test]
    fn tmpsubmit_mac_matches_the_reference_vectors() {
        let mobiles = numbers().join(",");
        let id = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let params = params_string(&[
            ("quarter".into(), "第3季度".into()),
            ("where".into(), "县政府网站".into()),
        ]);
        assert_eq!(params, r#"["第3季度","县政府网站"]"#);
        let m = mac(&[
            EC,
            "zwgk01",
            "Secr3t!",
            id,
            &mobiles,
            &params,
            "AbCdEf123",
            "",
        ]);
        assert_eq!(m, "d452a0b7c67838169560a8ea76340e77");
        let spaced = r#"["第3季度", "县政府网站"]"#;
        let m = mac(&[
            EC,
            "zwgk01",
            "Secr3t!",
            id,
            &mobiles,
            spaced,
            "AbCdEf123",
            "",
        ]);
        assert_eq!(m, "3e01d59becdf37f363349246efa9eb7d");
    }

    #[test]
    fn norsubmit_body_is_base64_json_with_the_mac() {
        let batch = Batch {
            numbers: numbers(),
            signature: "某县政务公开".into(),
            content: Content::Text(CONTENT.into()),
        };
        let r = gateway()
            .build(&batch, &Secret::new("Secr3t!"), DateTime::UNIX_EPOCH, "n")
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://mas.example:1992/sms/norsubmit");
        let json = decode(&r);
        assert_eq!(json["mac"], "fbf26a359cda8da8f7cf1a2acbcdc133");
        assert_eq!(json["mobiles"], "13800138000,13900139000");
        assert_eq!(json["secretKey"], "Secr3t!");
        assert_eq!(json["content"], CONTENT);
    }

    #[test]
    fn tmpsubmit_params_in_body_are_the_bytes_in_the_mac() {
        let batch = Batch {
            numbers: numbers(),
            signature: "x".into(),
            content: Content::Template {
                id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
                params: vec![
                    ("a".into(), "第3季度".into()),
                    ("b".into(), "县政府网站".into()),
                ],
            },
        };
        let mut g = gateway();
        g.secret_in_body = false;
        let r = g
            .build(&batch, &Secret::new("Secr3t!"), DateTime::UNIX_EPOCH, "n")
            .unwrap();
        assert!(r.url.ends_with("/sms/tmpsubmit"));
        let json = decode(&r);
        assert_eq!(json["params"], r#"["第3季度","县政府网站"]"#);
        assert_eq!(json["mac"], "d452a0b7c67838169560a8ea76340e77");
        assert_eq!(json["secretKey"], "");
    }

    #[test]
    fn more_than_5000_numbers_is_refused_before_sending() {
        let batch = Batch {
            numbers: vec!["13800138000".into(); 5_001],
            signature: "x".into(),
            content: Content::Text("t".into()),
        };
        let err = gateway()
            .build(&batch, &Secret::new("k"), DateTime::UNIX_EPOCH, "n")
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::TooManyNumbers {
                count: 5_001,
                max: 5_000
            }
        );
    }

    #[test]
    fn answers_are_classified() {
        let g = gateway();
        assert_eq!(
            g.parse(
                200,
                br#"{"msgGroup":"0521","rspcod":"success","success":true}"#
            ),
            Outcome::Accepted {
                reference: Some("0521".into()),
                numbers: vec![]
            }
        );
        assert_eq!(
            g.parse(200, br#"{"rspcod":"IllegalMac","success":false}"#),
            Outcome::Refused {
                code: "IllegalMac".into(),
                permanent: true
            }
        );
        assert_eq!(
            g.parse(200, br#"{"rspcod":"SystemBusy","success":false}"#),
            Outcome::Retry {
                code: "SystemBusy".into()
            }
        );
    }

    #[test]
    fn unreadable_answers_are_unknown_never_accepted() {
        let g = gateway();
        for body in [
            &b"<html><body>502 Bad Gateway</body></html>"[..],
            br#"{"msgGroup":"0521","rspcod":"succ"#,
            br#"{"rspcod":"SomethingNew","success":false}"#,
            br#"{"rspcod":"weird","success":true}"#,
            b"",
        ] {
            assert!(
                matches!(g.parse(200, body), Outcome::Unknown { .. }),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
