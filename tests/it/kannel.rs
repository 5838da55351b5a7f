//! Kannel end to end: gongkai → smsbox's `/cgi-bin/sendsms` → bearerbox → fakesmsc, all on
//! loopback, started by `.ci/run` from Debian's `kannel` and `kannel-extras` with
//! `tests/fixtures/kannel/kannel.conf`. fakesmsc prints every message it receives (UCS-2 as
//! URL-encoded big-endian bytes, long messages as parts with a `05 00 03` UDH); the test reads
//! its log (`GONGKAI_FAKESMSC_LOG`) and checks that each bulletin arrived intact.

use std::collections::BTreeMap;
use std::time::Duration;

use gongkai::sms::dispatch::SendOptions;

use crate::sms_dispatch::{Harness, options, site, subscriber};

/// Bytes of fakesmsc's URL-encoded field.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            // URL encoding: `+` is a space (a literal `+` comes as %2B).
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    out
}

fn ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// The messages fakesmsc logged for `number`, parts reassembled.
fn received(log: &str, number: &str) -> Vec<String> {
    let mut whole = Vec::new();
    let mut parts: BTreeMap<(u8, u8), BTreeMap<u8, Vec<u8>>> = BTreeMap::new();
    for line in log.lines() {
        let Some(start) = line.find("Got message") else {
            continue;
        };
        let Some(open) = line[start..].find('<') else {
            continue;
        };
        let inner = line[start + open + 1..].trim_end();
        let inner = inner.strip_suffix('>').unwrap_or(inner);
        let fields: Vec<&str> = inner.splitn(4, ' ').collect();
        if fields.get(1) != Some(&number) {
            continue;
        }
        let rest: Vec<&str> = fields
            .get(3)
            .map_or(Vec::new(), |r| r.splitn(3, ' ').collect());
        match (fields[2], rest.as_slice()) {
            ("ucs-2", [data]) => whole.push(ucs2(&unescape(data))),
            ("udh", [udh, "data", data]) => {
                let udh = unescape(udh);
                // 05 00 03 ref total part
                if udh.len() >= 6 && udh[1] == 0 {
                    parts
                        .entry((udh[3], udh[4]))
                        .or_default()
                        .insert(udh[5], unescape(data));
                }
            }
            _ => {}
        }
    }
    for ((_, total), got) in parts {
        if got.len() == total as usize {
            whole.push(ucs2(&got.into_values().flatten().collect::<Vec<u8>>()));
        }
    }
    whole
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kannel (bearerbox, smsbox, fakesmsc) from .ci/run"]
async fn bulletins_reach_fakesmsc_through_kannel_intact() {
    let log_path = std::env::var("GONGKAI_FAKESMSC_LOG")
        .expect("GONGKAI_FAKESMSC_LOG names fakesmsc's log (.ci/run sets it)");
    std::net::TcpStream::connect("127.0.0.1:13013")
        .expect("Kannel's smsbox listens on 127.0.0.1:13013 (.ci/run starts it)");
    // Numbers unique to this run, so an earlier run's lines in the log do not count.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let numbers: Vec<String> = (0..3)
        .map(|i| format!("139{:08}", (nanos / 10 + i) % 100_000_000))
        .collect();
    let site = site(
        "sms:
  signature: 测试县政务公开
  parts: 2
  gateways:
    - id: kannel
      kind: kannel
      url: http://127.0.0.1:13013
      username: gongkai
      from: \"10690000\"
      secret_env: KANNEL_SECRET
",
    );
    site.edit(
        "playlists/main.yaml",
        "body: 中标金额123万元。",
        "body: 中标单位为赣州明辉照明工程有限公司，中标金额人民币1,234,567.89元，公示期自12月1日至12月7日，如有异议请于公示期内书面提出。",
    );
    let subscribers: Vec<_> = numbers.iter().map(|n| subscriber(n, &[])).collect();
    let h = Harness::with_site(site, &subscribers, options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .expect("send");
    assert_eq!((c.sent, c.failed, c.unknown), (3, 0, 0), "{c:?}");
    let message = h
        .ledger()
        .message(h.ledger().item_message("n1").unwrap().expect("message"))
        .unwrap()
        .expect("message");
    assert!(message.text.chars().count() > 70, "a two-part bulletin");
    let mut last = String::new();
    for _ in 0..100 {
        last = std::fs::read_to_string(&log_path).unwrap_or_default();
        if numbers.iter().all(|n| !received(&last, n).is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &numbers {
        assert_eq!(
            received(&last, n),
            vec![message.text.clone()],
            "what fakesmsc received for {n}"
        );
    }
}
