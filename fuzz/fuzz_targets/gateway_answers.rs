//! Fuzz target `gateway_answers`: a hostile or broken answer (any HTTP status, any body)
//! through each gateway's `Gateway::parse` — 云MAS, Alibaba, Tencent and Kannel.
//!
//! Asserts: no panic, and the rule of `sms::gateways`: only an answer that says, in the
//! provider's documented words, that the message was taken is `Outcome::Accepted` — so never
//! outside a 2xx status, and, for Tencent, which reports each number, never without a result
//! for each number (an empty list would read as "the whole batch was taken"). The description
//! of an unreadable answer stays short whatever the body (it goes to logs and status).
//!
//! Input layout: byte 0 picks the gateway (0 云MAS, 1 Alibaba, 2 Tencent, 3 Kannel), bytes 1–2
//! the HTTP status (big-endian), the rest is the body. The seeds in
//! `fuzz/corpus/gateway_answers/` are the providers' documented answers, success and error.
#![no_main]

use gongkai::sms::gateways::aliyun::Aliyun;
use gongkai::sms::gateways::kannel::Kannel;
use gongkai::sms::gateways::tencent::Tencent;
use gongkai::sms::gateways::yunmas::YunMas;
use gongkai::sms::gateways::{Gateway, Outcome};
use libfuzzer_sys::fuzz_target;

/// The longest `Outcome::Unknown` description: 60 characters of the body, each escaped as at
/// most `\u{10ffff}`, plus the status.
const MAX_WHY: usize = 60 * 10 + 32;

fuzz_target!(|data: &[u8]| {
    let [which, hi, lo, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*hi, *lo]);
    let which = which % 4;
    let outcome = match which {
        0 => YunMas {
            base_url: "http://127.0.0.1:1992".into(),
            ec_name: "模糊测试县人民政府办公室".into(),
            ap_id: "fuzz".into(),
            sign_code: "FUZZ01".into(),
            add_serial: String::new(),
            secret_in_body: false,
        }
        .parse(status, body),
        1 => Aliyun {
            endpoint: "http://127.0.0.1:1/".into(),
            access_key_id: "fuzz".into(),
            region: "cn-hangzhou".into(),
        }
        .parse(status, body),
        2 => Tencent {
            host: "127.0.0.1".into(),
            scheme: "http".into(),
            region: "ap-guangzhou".into(),
            secret_id: "fuzz".into(),
            sdk_app_id: "1400000000".into(),
        }
        .parse(status, body),
        _ => Kannel {
            base_url: "http://127.0.0.1:13013".into(),
            username: "fuzz".into(),
            from: String::new(),
            dlr_url: String::new(),
            dlr_mask: 31,
        }
        .parse(status, body),
    };
    match &outcome {
        Outcome::Accepted { numbers, .. } => {
            assert!(
                (200..300).contains(&status),
                "accepted with HTTP {status}: {outcome:?}"
            );
            if which == 2 {
                assert!(
                    !numbers.is_empty(),
                    "Tencent answer with no per-number result read as accepted"
                );
            }
        }
        Outcome::Unknown { why } => {
            assert!(why.len() <= MAX_WHY, "description of {} bytes", why.len());
        }
        Outcome::Refused { .. } | Outcome::Retry { .. } => {}
    }
});
