//! Dispatch end to end: each gateway against a local HTTP server that checks the request the
//! way the provider documents it (recomputing the mac or signature), failover, retries,
//! refusals, answers in doubt, quiet hours, the daily cap, the digest, reports and TD replies,
//! and a `kill -9` of the real binary in the middle of a fan-out.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use gongkai::sms::dispatch::{Counts, Dispatcher, Limits, Options, Retry, SendOptions};
use gongkai::sms::ledger::{Ledger, State};
use gongkai::sms::subscribers::Subscriber;
use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::fixture::Fixture;

// -- a local gateway ------------------------------------------------------------------------

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Answer = Box<dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync>;

/// A local HTTP server: every request recorded, answered by `answer(request, index)`.
pub struct Server {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub async fn start(answer: Answer) -> Server {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer = Arc::new(answer);
        let record = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                let answer = answer.clone();
                async move {
                    let req = Seen {
                        method,
                        uri,
                        headers,
                        body,
                    };
                    let index = {
                        let mut list = record.lock().unwrap();
                        list.push(req.clone());
                        list.len() - 1
                    };
                    let (status, body) = answer(&req, index);
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { port, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Alibaba's check: the signature over the other parameters, as the provider recomputes it.
pub fn aliyun_signature_ok(body: &[u8], secret: &str) -> bool {
    let mut pairs = form(body);
    let Some(at) = pairs.iter().position(|(k, _)| k == "Signature") else {
        return false;
    };
    let (_, sig) = pairs.remove(at);
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!(
        "POST&%2F&{}",
        gongkai::sms::gateways::percent_encode(&query)
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    decode(&sig) == want
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Tencent's check: TC3-HMAC-SHA256 recomputed from the request's own headers and body.
fn tencent_signature_ok(req: &Seen, secret: &str) -> bool {
    let header = |n: &str| {
        req.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let auth = header("authorization");
    let Some(sig) = auth.split("Signature=").nth(1) else {
        return false;
    };
    let timestamp: i64 = header("x-tc-timestamp").parse().unwrap_or(0);
    let date = DateTime::from_timestamp(timestamp, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        header("content-type"),
        header("host"),
        hex(&sha2::Sha256::digest(&req.body))
    );
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n{}",
        hex(&sha2::Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac256(format!("TC3{secret}").as_bytes(), &date);
    let k = hmac256(&k, "sms");
    let k = hmac256(&k, "tc3_request");
    auth.starts_with(&format!(
        "TC3-HMAC-SHA256 Credential=AKID000/{date}/sms/tc3_request, SignedHeaders=content-type;host, "
    )) && hex(&hmac256(&k, &to_sign)) == sig
}

// -- a site ---------------------------------------------------------------------------------

pub fn subscriber(number: &str, groups: &[&str]) -> Subscriber {
    Subscriber {
        number: number.into(),
        name: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        topics: BTreeSet::new(),
    }
}

/// The fixture with `sms` (a YAML block) and items n1 and n2 sent by SMS.
pub fn site(sms: &str) -> Fixture {
    let site = Fixture::new();
    // Reviews are the review module's business: these sites send drafts.
    site.edit(
        "gongkai.yaml",
        "timezone: Asia/Shanghai\n",
        "timezone: Asia/Shanghai\nreview: { required: draft }\n",
    );
    site.edit(
        "gongkai.yaml",
        "sms: { signature: 测试县政务公开 }",
        sms.trim_end(),
    );
    site.edit(
        "playlists/main.yaml",
        "    category: 政府采购\n",
        "    category: 政府采购\n    body: 中标金额123万元。\n    channels: [board, sms]\n  - id: n2\n    title: 县城区停车场收费标准听证公告\n    category: 政府采购\n    channels: [board, sms]\n  - id: n3\n    title: 只在屏上\n    category: 政府采购\n",
    );
    site
}

/// Shanghai local time as UTC.
pub fn local(text: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&naive)
        .unwrap()
        .with_timezone(&Utc)
}

pub struct Harness {
    pub site: Fixture,
    pub clock: Arc<Mutex<DateTime<Utc>>>,
    pub dispatcher: Dispatcher,
}

impl Harness {
    pub fn new(sms: &str, numbers: &[Subscriber], options: Options) -> Harness {
        Harness::with_site(site(sms), numbers, options)
    }

    /// A dispatcher over a site prepared by the caller.
    pub fn with_site(site: Fixture, numbers: &[Subscriber], options: Options) -> Harness {
        let loaded = site.load();
        let model = loaded
            .model
            .unwrap_or_else(|| panic!("{}", loaded.report.render(gongkai::i18n::Lang::En)));
        let clock = Arc::new(Mutex::new(local("2026-12-01 10:00")));
        let c = clock.clone();
        let ledger = site.path().join("var/sms-ledger.sqlite");
        let dispatcher = Dispatcher::new(
            &model,
            site.path(),
            &ledger,
            Arc::new(move || *c.lock().unwrap()),
            options,
        )
        .expect("dispatcher");
        dispatcher
            .ledger()
            .import_subscribers(numbers, 0)
            .expect("import");
        Harness {
            site,
            clock,
            dispatcher,
        }
    }

    pub fn set(&self, text: &str) {
        *self.clock.lock().unwrap() = local(text);
    }

    pub fn ledger(&self) -> &Ledger {
        self.dispatcher.ledger()
    }

    pub fn outbox(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.site.path().join("var/sms-outbox.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn options() -> Options {
    let env: gongkai::sms::dispatch::Env = Arc::new(|name: &str| match name {
        "ALI_SECRET" => Some("testSecret".into()),
        "TC_SECRET" => Some("tcSecret".into()),
        "MAS_SECRET" => Some("Secr3t!".into()),
        "KANNEL_SECRET" => Some("kpass".into()),
        _ => None,
    });
    Options {
        retry: Retry {
            attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            outage_delay: Duration::from_secs(60),
        },
        env,
        ..Options::default()
    }
}

const NUMBERS: [&str; 3] = ["13800138000", "13900139000", "18612345678"];

fn three() -> Vec<Subscriber> {
    NUMBERS.iter().map(|n| subscriber(n, &[])).collect()
}

fn counts(sent: u64, failed: u64, unknown: u64) -> (u64, u64, u64) {
    (sent, failed, unknown)
}

fn triple(c: &Counts) -> (u64, u64, u64) {
    (c.sent, c.failed, c.unknown)
}

pub fn aliyun_sms(port: u16) -> String {
    format!(
        "sms:
  signature: 测试县政务公开
  read_more: 县政府网站
  second_approval_above: 100000
  gateways:
    - id: ali
      kind: aliyun
      url: http://127.0.0.1:{port}/
      access_key_id: testId
      secret_env: ALI_SECRET
      template:
        id: SMS_1
        vars:
          - {{ name: title, field: title, max: 40 }}
          - {{ name: where, field: url }}
    - id: local
      kind: outbox
"
    )
}

// -- each gateway ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yunmas_norsubmit_carries_a_mac_the_platform_recomputes() {
    let server = Server::start(Box::new(|req, _| {
        let json = base64::engine::general_purpose::STANDARD
            .decode(&req.body)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        let mut md5 = Md5::new();
        for part in [
            s("ecName"),
            s("apId"),
            "Secr3t!".into(),
            s("mobiles"),
            s("content"),
            s("sign"),
            s("addSerial"),
        ] {
            md5.update(part.as_bytes());
        }
        if req.uri.path() != "/sms/norsubmit" || hex(&md5.finalize()) != s("mac") {
            return (200, r#"{"rspcod":"IllegalMac","success":false}"#.into());
        }
        (
            200,
            r#"{"msgGroup":"0521","rspcod":"success","success":true}"#.into(),
        )
    }))
    .await;
    let h = Harness::new(
        &format!(
            "sms:
  signature: 测试县政务公开
  gateways:
    - id: mas
      kind: yunmas
      url: http://127.0.0.1:{}
      ec_name: 测试县人民政府办公室
      ap_id: zwgk01
      sign_code: AbCdEf123
      secret_env: MAS_SECRET
",
            server.port
        ),
        &three(),
        options(),
    );
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((c.recipients, c.new), (3, 3));
    assert_eq!(triple(&c), counts(3, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one call carries up to 5,000 numbers");
    let json = base64::engine::general_purpose::STANDARD
        .decode(&requests[0].body)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["mobiles"], NUMBERS.join(","));
    assert_eq!(
        v["content"], "城区道路照明改造工程中标结果公示：中标金额123万元。回复TD退订",
        "the platform adds the 【signature】"
    );
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(rows.iter().all(|r| r.reference.as_deref() == Some("0521")));
    // Sending again sends nothing twice.
    let again = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((again.new, again.sent), (0, 0));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_send_batch_sms_is_signed_as_the_provider_recomputes_it() {
    let server = Server::start(Box::new(|req, _| {
        if !aliyun_signature_ok(&req.body, "testSecret") {
            return (400, r#"{"Code":"SignatureDoesNotMatch"}"#.into());
        }
        (
            200,
            r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"x"}"#.into(),
        )
    }))
    .await;
    let h = Harness::new(&aliyun_sms(server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(3, 0, 0));
    let req = &server.requests()[0];
    assert_eq!(req.method, Method::POST);
    let pairs = form(&req.body);
    assert_eq!(get(&pairs, "Action"), Some("SendBatchSms"));
    let phones: Vec<String> =
        serde_json::from_str(&decode(get(&pairs, "PhoneNumberJson").unwrap())).unwrap();
    assert_eq!(phones, NUMBERS);
    let params: Vec<HashMap<String, String>> =
        serde_json::from_str(&decode(get(&pairs, "TemplateParamJson").unwrap())).unwrap();
    assert_eq!(params[0]["title"], "城区道路照明改造工程中标结果公示");
    assert_eq!(params[2]["where"], "县政府网站");
    let signs: Vec<String> =
        serde_json::from_str(&decode(get(&pairs, "SignNameJson").unwrap())).unwrap();
    assert_eq!(signs, vec!["测试县政务公开"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_per_number_results_and_a_number_missing_from_them_is_unknown() {
    let server = Server::start(Box::new(|req, _| {
        if !tencent_signature_ok(req, "tcSecret") {
            return (
                200,
                r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"}}}"#.into(),
            );
        }
        // The first number taken, the second refused, the third missing from the answer.
        (
            200,
            r#"{"Response":{"SendStatusSet":[
                {"SerialNo":"5000:1","PhoneNumber":"+8613800138000","Code":"Ok"},
                {"SerialNo":"","PhoneNumber":"+8613900139000","Code":"InvalidParameterValue.IncorrectPhoneNumber"}
            ],"RequestId":"r1"}}"#
                .into(),
        )
    }))
    .await;
    let h = Harness::new(
        &format!(
            "sms:
  signature: 测试县政务公开
  gateways:
    - id: tc
      kind: tencent
      url: http://127.0.0.1:{}
      secret_id: AKID000
      sdk_app_id: \"1400000000\"
      secret_env: TC_SECRET
      template: {{ id: \"1234\", vars: [{{ name: \"1\", field: title }}] }}
",
            server.port
        ),
        &three(),
        options(),
    );
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(1, 1, 1));
    let req = &server.requests()[0];
    assert_eq!(req.headers["x-tc-action"], "SendSms");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["PhoneNumberSet"][2], "+8618612345678");
    assert_eq!(
        body["TemplateParamSet"][0],
        "城区道路照明改造工程中标结果公示"
    );
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    let by: HashMap<&str, (State, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.number.as_str(),
                (r.state, r.serial.as_deref(), r.reason.as_deref()),
            )
        })
        .collect();
    assert_eq!(by["13800138000"].0, State::Sent);
    assert_eq!(by["13800138000"].1, Some("5000:1"));
    assert_eq!(
        by["13900139000"],
        (
            State::Failed,
            None,
            Some("InvalidParameterValue.IncorrectPhoneNumber")
        )
    );
    assert_eq!(by["18612345678"].0, State::Unknown);
    // An unknown row is never resent.
    let later = h.dispatcher.run_due().await.unwrap();
    assert_eq!(triple(&later), counts(0, 0, 0));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kannel_sendsms_carries_ucs2_utf8_and_the_signature() {
    let server = Server::start(Box::new(|req, _| {
        let pairs = form(req.uri.query().unwrap_or("").as_bytes());
        if req.uri.path() != "/cgi-bin/sendsms"
            || get(&pairs, "username") != Some("gongkai")
            || get(&pairs, "password") != Some("kpass")
        {
            return (403, "Authorization failed for sendsms".into());
        }
        (202, "0: Accepted for delivery".into())
    }))
    .await;
    let h = Harness::new(
        &format!(
            "sms:
  signature: 测试县政务公开
  gateways:
    - id: k
      kind: kannel
      url: http://127.0.0.1:{}
      username: gongkai
      secret_env: KANNEL_SECRET
",
            server.port
        ),
        &three(),
        options(),
    );
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(3, 0, 0));
    let req = &server.requests()[0];
    assert_eq!(req.method, Method::GET);
    let pairs = form(req.uri.query().unwrap().as_bytes());
    assert_eq!(decode(get(&pairs, "to").unwrap()), NUMBERS.join(" "));
    assert_eq!(get(&pairs, "coding"), Some("2"));
    assert_eq!(get(&pairs, "charset"), Some("UTF-8"));
    assert_eq!(
        decode(get(&pairs, "text").unwrap()),
        "【测试县政务公开】城区道路照明改造工程中标结果公示：中标金额123万元。回复TD退订"
    );
}

// -- routing, retries, refusals, doubt ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusing_connections_fails_over_to_the_next() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::new(&aliyun_sms(closed), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(3, 0, 0));
    let lines = h.outbox();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["text"],
        "【测试县政务公开】城区道路照明改造工程中标结果公示：中标金额123万元。详见县政府网站回复TD退订"
    );
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(rows.iter().all(|r| r.gateway.as_deref() == Some("local")));
    assert!(rows.iter().all(|r| r.attempts == 4), "3 refused + 1 sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_with_backoff_and_then_sent_once() {
    let server = Server::start(Box::new(|_, i| {
        if i < 2 {
            (200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL"}"#.into())
        } else {
            (200, r#"{"Code":"OK","BizId":"b"}"#.into())
        }
    }))
    .await;
    let h = Harness::new(&aliyun_sms(server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(3, 0, 0));
    assert_eq!(server.requests().len(), 3);
    assert!(h.outbox().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_fails_the_rows_with_its_reason_and_is_not_retried() {
    let server = Server::start(Box::new(|_, _| {
        (200, r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL"}"#.into())
    }))
    .await;
    let h = Harness::new(&aliyun_sms(server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(0, 3, 0));
    assert_eq!(server.requests().len(), 1);
    assert!(h.outbox().is_empty(), "a refusal is not an outage");
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(
        rows.iter()
            .all(|r| r.reason.as_deref() == Some("isv.MOBILE_NUMBER_ILLEGAL"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_answer_is_unknown_and_never_resent() {
    let server = Server::start(Box::new(|_, _| {
        (200, "<html><body>502 Bad Gateway</body></html>".into())
    }))
    .await;
    let h = Harness::new(&aliyun_sms(server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(0, 0, 3));
    h.set("2026-12-02 10:00");
    let c = h.dispatcher.run_due().await.unwrap();
    assert_eq!(triple(&c), counts(0, 0, 0));
    assert_eq!(server.requests().len(), 1);
    assert!(h.outbox().is_empty(), "in doubt is not an outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_the_request_went_out_is_unknown() {
    let server = Server::start(Box::new(|_, _| {
        std::thread::sleep(Duration::from_millis(800));
        (200, r#"{"Code":"OK"}"#.into())
    }))
    .await;
    let mut o = options();
    o.timeouts.total = Duration::from_millis(200);
    let h = Harness::new(&aliyun_sms(server.port), &three(), o);
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), counts(0, 0, 3));
    assert!(h.outbox().is_empty());
}

// -- when: quiet hours, daily cap, digest ---------------------------------------------------

const OUTBOX: &str = "sms:\n  signature: 测试县政务公开\n  read_more: 县政府网站\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulletin_due_at_night_waits_for_the_morning_unless_urgent() {
    let h = Harness::new(OUTBOX, &three(), options());
    h.set("2026-12-01 22:00");
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((c.new, c.sent), (3, 0));
    assert!(h.outbox().is_empty());
    h.set("2026-12-02 07:59");
    assert_eq!(h.dispatcher.run_due().await.unwrap().sent, 0);
    h.set("2026-12-02 08:00");
    assert_eq!(h.dispatcher.run_due().await.unwrap().sent, 3);
    assert_eq!(h.outbox().len(), 3);
    // Urgent: at once, at night.
    h.set("2026-12-02 23:00");
    let urgent = SendOptions {
        urgent: true,
        ..SendOptions::default()
    };
    assert_eq!(h.dispatcher.send_item("n2", &urgent).await.unwrap().sent, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_puts_the_rest_off_to_the_next_morning() {
    let h = Harness::new(&format!("{OUTBOX}  daily_cap: 1\n"), &three(), options());
    let first = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(first.sent, 3);
    let second = h
        .dispatcher
        .send_item("n2", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((second.sent, second.deferred), (0, 3));
    h.set("2026-12-01 23:00");
    assert_eq!(h.dispatcher.run_due().await.unwrap().sent, 0);
    h.set("2026-12-02 08:00");
    assert_eq!(h.dispatcher.run_due().await.unwrap().sent, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_sends_one_message_listing_the_items_of_the_day() {
    let h = Harness::new(
        &format!("{OUTBOX}  digest: true\n"),
        &[subscriber("13800138000", &[])],
        options(),
    );
    for item in ["n1", "n2"] {
        let c = h
            .dispatcher
            .send_item(item, &SendOptions::default())
            .await
            .unwrap();
        assert_eq!((c.new, c.sent), (1, 0));
    }
    assert_eq!(h.ledger().waiting(None).unwrap(), 2);
    h.set("2026-12-02 08:00");
    assert_eq!(h.dispatcher.run_due().await.unwrap().sent, 1);
    let lines = h.outbox();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["text"],
        "【测试县政务公开】今日公开2条：1.城区道路照明改造工程中标结果公示；2.县城区停车场收费标准听证公告。详见县政府网站回复TD退订"
    );
    // Both items count the one delivery; sending either again adds nothing.
    assert_eq!(h.dispatcher.status(Some("n1")).unwrap().sent, 1);
    assert_eq!(h.dispatcher.status(Some("n2")).unwrap().sent, 1);
    let again = h
        .dispatcher
        .send_item("n2", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(again.new, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_by_group_and_only_items_with_the_sms_channel() {
    let h = Harness::new(
        OUTBOX,
        &[
            subscriber("13800138000", &["南安镇"]),
            subscriber("13900139000", &["黄龙镇"]),
            subscriber("18612345678", &[]),
        ],
        options(),
    );
    let nanan = SendOptions {
        groups: vec!["南安镇".into()],
        ..SendOptions::default()
    };
    let c = h.dispatcher.send_item("n1", &nanan).await.unwrap();
    assert_eq!((c.recipients, c.sent), (1, 1));
    assert_eq!(h.outbox()[0]["number"], "13800138000");
    let err = h
        .dispatcher
        .send_item("n3", &SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.key(), "sms.send.not_sms");
}

// -- reports and replies --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_td_reply_opts_out_forever_and_a_delivery_report_resolves_unknown() {
    let server = Server::start(Box::new(|_, _| (200, "garbage".into()))).await;
    let h = Harness::new(
        &format!(
            "sms:
  signature: 测试县政务公开
  gateways:
    - id: mas
      kind: yunmas
      url: http://127.0.0.1:{}
      ec_name: 县
      ap_id: a
      sign_code: s
      secret_env: MAS_SECRET
",
            server.port
        ),
        &three(),
        options(),
    );
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.unknown, 3);
    // 云MAS pushes reports, sometimes Base64-wrapped.
    let report = base64::engine::general_purpose::STANDARD.encode(
        r#"[{"reportStatus":"DELIVRD","mobile":"13800138000","msgGroup":"x"},
            {"reportStatus":"UNDELIV","mobile":"13900139000","errorCode":"MK:0001"}]"#,
    );
    assert_eq!(
        h.dispatcher
            .delivery_report("mas", report.as_bytes())
            .unwrap(),
        2
    );
    let status = h.dispatcher.status(Some("n1")).unwrap();
    assert_eq!((status.sent, status.failed, status.unknown), (1, 1, 1));
    assert!(h.dispatcher.delivery_report("mas", b"<html>").is_err());

    let out = h
        .dispatcher
        .reply(
            "mas",
            r#"{"mobile":"+86 186 1234 5678","smsContent":" td "}"#.as_bytes(),
        )
        .unwrap();
    assert_eq!(out, ["18612345678"]);
    assert!(h.ledger().opt_outs().unwrap().contains("18612345678"));
    // Re-importing does not bring the number back.
    h.ledger()
        .import_subscribers(&[subscriber("18612345678", &[])], 1)
        .unwrap();
    let c = h
        .dispatcher
        .send_item(
            "n2",
            &SendOptions {
                dry_run: true,
                ..SendOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c.recipients, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_polls_aliyun_and_resolves_unknown_rows() {
    let server = Server::start(Box::new(|req, _| {
        let pairs = form(&req.body);
        match get(&pairs, "Action") {
            Some("SendBatchSms") => (200, "<html>".into()),
            Some("QuerySendDetails") => {
                assert!(aliyun_signature_ok(&req.body, "testSecret"));
                let status = match get(&pairs, "PhoneNumber") {
                    Some("13800138000") => 3,
                    Some("13900139000") => 2,
                    _ => 0,
                };
                if status == 0 {
                    return (
                        200,
                        r#"{"Code":"OK","TotalCount":0,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[]}}"#.into(),
                    );
                }
                (
                    200,
                    format!(
                        r#"{{"Code":"OK","TotalCount":1,"SmsSendDetailDTOs":{{"SmsSendDetailDTO":[{{"SendStatus":{status},"ErrCode":"{}","TemplateCode":"SMS_1"}}]}}}}"#,
                        if status == 3 { "DELIVERED" } else { "MK:0001" }
                    ),
                )
            }
            _ => (400, String::new()),
        }
    }))
    .await;
    let h = Harness::new(&aliyun_sms(server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.unknown, 3);
    let r = h.dispatcher.reconcile().await.unwrap();
    assert_eq!((r.checked, r.sent, r.failed, r.open), (3, 1, 2, 0));
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    let reasons: BTreeSet<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
    assert!(reasons.contains(&Some("MK:0001")));
    assert!(reasons.contains(&Some("the gateway has no record of it")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_calls() {
    let server = Server::start(Box::new(|_, _| (202, "0: Accepted for delivery".into()))).await;
    let mut o = options();
    o.limits.insert(
        "k".into(),
        Limits {
            per_second: 1_000.0,
            concurrent: 1,
        },
    );
    let numbers: Vec<Subscriber> = (0..400)
        .map(|i| subscriber(&format!("138{:08}", i), &[]))
        .collect();
    let h = Harness::new(
        &format!(
            "sms:\n  signature: 县\n  gateways:\n    - {{ id: k, kind: kannel, url: \"http://127.0.0.1:{}\", username: u, secret_env: KANNEL_SECRET }}\n",
            server.port
        ),
        &numbers,
        o,
    );
    let start = std::time::Instant::now();
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.sent, 400);
    assert_eq!(server.requests().len(), 4, "100 numbers per Kannel call");
    // 400 messages at 1,000/s: the fourth call starts no earlier than 0.3 s in.
    assert!(
        start.elapsed() >= Duration::from_millis(290),
        "{:?}",
        start.elapsed()
    );
}

// -- kill -9 in the middle of a fan-out -----------------------------------------------------

/// The gateway of the kill test: it acts on every call it receives (records the numbers as
/// taken), holds each answer a little, and from the `kill_at`-th call on stops answering, so
/// that the calls in flight at the kill are exactly the ones it holds.
#[derive(Default)]
struct Held {
    received: std::sync::atomic::AtomicUsize,
    frozen: std::sync::atomic::AtomicBool,
    taken: Mutex<HashMap<String, u32>>,
    open: Mutex<Vec<Vec<String>>>,
    kill: tokio::sync::Notify,
}

const KILL_AT: usize = 20;

async fn held_gateway(held: Arc<Held>, body: Bytes) -> (StatusCode, String) {
    use std::sync::atomic::Ordering::SeqCst;
    let pairs = form(&body);
    if !aliyun_signature_ok(&body, "testSecret") {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"Code":"SignatureDoesNotMatch"}"#.into(),
        );
    }
    match get(&pairs, "Action") {
        Some("SendBatchSms") => {
            let numbers: Vec<String> =
                serde_json::from_str(&decode(get(&pairs, "PhoneNumberJson").unwrap())).unwrap();
            {
                let mut taken = held.taken.lock().unwrap();
                for n in &numbers {
                    *taken.entry(n.clone()).or_default() += 1;
                }
            }
            if held.received.fetch_add(1, SeqCst) + 1 == KILL_AT {
                held.frozen.store(true, SeqCst);
                held.kill.notify_one();
            }
            if held.frozen.load(SeqCst) {
                held.open.lock().unwrap().push(numbers);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            (StatusCode::OK, r#"{"Code":"OK","BizId":"b"}"#.into())
        }
        Some("QuerySendDetails") => {
            let number = get(&pairs, "PhoneNumber").unwrap_or("");
            let taken = held.taken.lock().unwrap().get(number).copied().unwrap_or(0);
            if taken == 0 {
                return (
                    StatusCode::OK,
                    r#"{"Code":"OK","TotalCount":0,"SmsSendDetailDTOs":{"SmsSendDetailDTO":[]}}"#
                        .into(),
                );
            }
            // Numbers ending in 7 were not delivered.
            let (status, code) = if number.ends_with('7') {
                (2, "MK:0001")
            } else {
                (3, "DELIVERED")
            };
            (
                StatusCode::OK,
                format!(
                    r#"{{"Code":"OK","TotalCount":1,"SmsSendDetailDTOs":{{"SmsSendDetailDTO":[{{"SendStatus":{status},"ErrCode":"{code}","TemplateCode":"SMS_1"}}]}}}}"#
                ),
            )
        }
        _ => (StatusCode::BAD_REQUEST, String::new()),
    }
}

pub fn gongkai_cmd(site: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"));
    cmd.arg("--site")
        .arg(site)
        .args(args)
        .env("LANG", "en_US.UTF-8")
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("ALI_SECRET", "testSecret");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_fan_out_never_sends_twice_and_leaves_only_the_calls_in_flight_unknown() {
    use std::sync::atomic::Ordering::SeqCst;
    const SUBSCRIBERS: usize = 10_000;
    let held = Arc::new(Held::default());
    let state = held.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| held_gateway(state.clone(), body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let sms = aliyun_sms(port);
    let sms = &sms[..sms.find("    - id: local").unwrap()];
    let site = site(sms);
    let ledger_path = site.path().join("var/sms-ledger.sqlite");
    {
        let ledger = Ledger::open(&ledger_path, 0).unwrap();
        let subs: Vec<Subscriber> = (0..SUBSCRIBERS)
            .map(|i| subscriber(&format!("138{i:08}"), &[]))
            .collect();
        assert_eq!(
            ledger.import_subscribers(&subs, 0).unwrap(),
            SUBSCRIBERS as u64
        );
    }

    // The first run, killed with SIGKILL while calls are in flight.
    let mut child = gongkai_cmd(site.path(), &["sms", "send", "n1", "--urgent"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), held.kill.notified())
        .await
        .expect("the sender reached the kill point");
    // Let answers already on the wire be committed and the freed slots send their next call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let in_flight: BTreeSet<String> = held
        .open
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .cloned()
        .collect();
    let calls = held.open.lock().unwrap().len();
    held.frozen.store(false, SeqCst);
    assert!(calls > 0, "calls were in flight at the kill");

    // The restart: reports the rows in doubt, sends the rest, resends none of them.
    let out = gongkai_cmd(site.path(), &["sms", "send", "n1", "--urgent"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} message(s) were being sent when the sender stopped",
            in_flight.len()
        )),
        "{stderr}"
    );
    let ledger = Ledger::open(&ledger_path, 0).unwrap();
    let unknown: BTreeSet<String> = ledger
        .in_state(State::Unknown, usize::MAX >> 1)
        .unwrap()
        .into_iter()
        .map(|r| r.number)
        .collect();
    println!(
        "kill -9: {calls} call(s) in flight ({} numbers); {} row(s) unknown after restart",
        in_flight.len(),
        unknown.len()
    );
    assert_eq!(
        unknown, in_flight,
        "unknown rows are exactly the calls in flight"
    );
    let counts = ledger.counts(Some("n1")).unwrap();
    assert_eq!(counts.total(), SUBSCRIBERS as u64);
    assert_eq!((counts.queued, counts.sending, counts.failed), (0, 0, 0));
    assert_eq!(counts.sent + counts.unknown, SUBSCRIBERS as u64);
    {
        let taken = held.taken.lock().unwrap();
        let twice: Vec<&String> = taken
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect();
        assert!(twice.is_empty(), "{} number(s) taken twice", twice.len());
        assert_eq!(taken.len(), SUBSCRIBERS);
    }

    // Polling the gateway resolves every row in doubt.
    let out = gongkai_cmd(site.path(), &["sms", "reconcile"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let counts = ledger.counts(Some("n1")).unwrap();
    let undelivered = in_flight.iter().filter(|n| n.ends_with('7')).count() as u64;
    assert_eq!(counts.unknown, 0);
    assert_eq!(counts.failed, undelivered);
    assert_eq!(counts.sent, SUBSCRIBERS as u64 - undelivered);
    let failed = ledger.in_state(State::Failed, 10_000).unwrap();
    assert!(
        failed
            .iter()
            .all(|r| r.reason.as_deref() == Some("MK:0001"))
    );
}
