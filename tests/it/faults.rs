//! Faults and hostile input that docs/reliability.md promises to survive, each with real parts:
//! gateways over real HTTP that drip their answer or fail with 500, item text that tries to
//! change recipients, the signature or another item, the wall clock stepped under the real
//! daemon (libfaketime), and a real mosquitto with the ACL shipped in contrib/mosquitto/.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gongkai::config::model::Category;
use gongkai::sms::dispatch::{Counts, SendOptions};
use gongkai::sms::ledger::State;
use gongkai::sms::subscribers::Subscriber;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::fixture::{Fixture, assert_error};
use crate::sms_dispatch::{Harness, Server, options, site, subscriber};

const NUMBERS: [&str; 3] = ["13800138000", "13900139000", "18612345678"];

fn three() -> Vec<Subscriber> {
    NUMBERS.iter().map(|n| subscriber(n, &[])).collect()
}

fn triple(c: &Counts) -> (u64, u64, u64) {
    (c.sent, c.failed, c.unknown)
}

/// The `sms:` section with one gateway of `kind` at `port`, and the local outbox after it,
/// so that a batch the dispatcher wrongly sends elsewhere shows up in the outbox file.
fn gateway_sms(kind: &str, port: u16) -> String {
    let gateway = match kind {
        "yunmas" => format!(
            "    - id: mas
      kind: yunmas
      url: http://127.0.0.1:{port}
      ec_name: 测试县人民政府办公室
      ap_id: zwgk01
      sign_code: AbCdEf123
      secret_env: MAS_SECRET
"
        ),
        "aliyun" => format!(
            "    - id: ali
      kind: aliyun
      url: http://127.0.0.1:{port}/
      access_key_id: testId
      secret_env: ALI_SECRET
      template: {{ id: SMS_1, vars: [{{ name: title, field: title, max: 40 }}] }}
"
        ),
        "tencent" => format!(
            "    - id: tc
      kind: tencent
      url: http://127.0.0.1:{port}
      secret_id: AKID000
      sdk_app_id: \"1400000000\"
      secret_env: TC_SECRET
      template: {{ id: \"1234\", vars: [{{ name: \"1\", field: title }}] }}
"
        ),
        "kannel" => format!(
            "    - id: k
      kind: kannel
      url: http://127.0.0.1:{port}
      username: gongkai
      secret_env: KANNEL_SECRET
"
        ),
        other => panic!("no gateway kind {other}"),
    };
    format!(
        "sms:\n  signature: 测试县政务公开\n  gateways:\n{gateway}    - id: local\n      kind: outbox\n"
    )
}

// -- a gateway that drips its answer --------------------------------------------------------

/// A gateway that reads a request, sends the status line and headers at once, then the body
/// one byte every `pause`. Counts the requests it received.
struct Dripping {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl Dripping {
    async fn start(body: &'static str, pause: Duration) -> Dripping {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    if !read_request(&mut socket).await {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for byte in body.as_bytes() {
                        tokio::time::sleep(pause).await;
                        if socket.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        let _ = socket.flush().await;
                    }
                });
            }
        });
        Dripping { port, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP request (headers and a `Content-Length` body); false if the client left.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return true;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

const ALIYUN_OK: &str = r#"{"Code":"OK","Message":"OK","BizId":"drip-1","RequestId":"r"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_dripping_in_within_the_timeout_is_read_and_counted_once() {
    // 61 bytes, one every 15 ms: about 0.9 s, well inside a 10 s timeout.
    let gateway = Dripping::start(ALIYUN_OK, Duration::from_millis(15)).await;
    let mut o = options();
    o.timeouts.total = Duration::from_secs(10);
    let h = Harness::new(&gateway_sms("aliyun", gateway.port), &three(), o);
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), (3, 0, 0));
    assert_eq!(gateway.requests(), 1);
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(
        rows.iter()
            .all(|r| r.state == State::Sent && r.reference.as_deref() == Some("drip-1"))
    );
    // Nothing is due again.
    h.set("2026-12-02 10:00");
    assert_eq!(triple(&h.dispatcher.run_due().await.unwrap()), (0, 0, 0));
    assert_eq!(gateway.requests(), 1);
    assert!(h.outbox().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_dripping_beyond_the_timeout_is_unknown_and_never_resent() {
    // The headers come at once; the body would take 6 s; the client gives the call 600 ms.
    let gateway = Dripping::start(ALIYUN_OK, Duration::from_millis(100)).await;
    let mut o = options();
    o.timeouts.total = Duration::from_millis(600);
    let h = Harness::new(&gateway_sms("aliyun", gateway.port), &three(), o);
    let started = std::time::Instant::now();
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );
    assert_eq!(triple(&c), (0, 0, 3));
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(rows.iter().all(|r| r.state == State::Unknown), "{rows:?}");
    // Neither retried, nor sent through the next gateway, nor sent again the next day.
    h.set("2026-12-02 10:00");
    assert_eq!(triple(&h.dispatcher.run_due().await.unwrap()), (0, 0, 0));
    assert_eq!(gateway.requests(), 1);
    assert!(h.outbox().is_empty());
}

// -- 500 from each kind of gateway ----------------------------------------------------------

/// Each gateway answering 500, with a body that would mean "throttled, try again" under a 200
/// and with a plain HTML error page: in doubt, so `unknown`, sent once, never failed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_from_each_kind_of_gateway_is_unknown_and_never_resent() {
    let cases = [
        ("yunmas", r#"{"rspcod":"SystemBusy","success":false}"#),
        ("aliyun", r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL"}"#),
        ("aliyun", r#"{"Code":"isv.AMOUNT_NOT_ENOUGH"}"#),
        (
            "tencent",
            r#"{"Response":{"Error":{"Code":"RequestLimitExceeded"},"RequestId":"r"}}"#,
        ),
        ("kannel", "Sending failed."),
        (
            "yunmas",
            "<html><body>500 Internal Server Error</body></html>",
        ),
        (
            "aliyun",
            "<html><body>500 Internal Server Error</body></html>",
        ),
        (
            "tencent",
            "<html><body>500 Internal Server Error</body></html>",
        ),
        (
            "kannel",
            "<html><body>500 Internal Server Error</body></html>",
        ),
    ];
    for (kind, body) in cases {
        let server = Server::start(Box::new(move |_, _| (500, body.to_owned()))).await;
        let h = Harness::new(&gateway_sms(kind, server.port), &three(), options());
        let c = h
            .dispatcher
            .send_item("n1", &SendOptions::default())
            .await
            .unwrap();
        assert_eq!(triple(&c), (0, 0, 3), "{kind} {body}");
        let rows = h.ledger().rows_of("n1", 10).unwrap();
        assert!(
            rows.iter()
                .all(|r| r.state == State::Unknown && r.gateway.as_deref() != Some("local")),
            "{kind} {body}: {rows:?}"
        );
        h.set("2026-12-02 10:00");
        assert_eq!(
            triple(&h.dispatcher.run_due().await.unwrap()),
            (0, 0, 0),
            "{kind} {body}"
        );
        assert_eq!(server.requests().len(), 1, "{kind} {body}");
        assert!(h.outbox().is_empty(), "{kind} {body}: no failover");
    }
}

/// A 500 whose body is a documented permanent refusal: the rows fail with the code and are not
/// sent again (the same end as under a 200; neither path resends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_with_a_permanent_refusal_fails_the_rows_and_sends_nothing_again() {
    let server = Server::start(Box::new(|_, _| {
        (500, r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL"}"#.into())
    }))
    .await;
    let h = Harness::new(&gateway_sms("aliyun", server.port), &three(), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(triple(&c), (0, 3, 0));
    h.set("2026-12-02 10:00");
    assert_eq!(triple(&h.dispatcher.run_due().await.unwrap()), (0, 0, 0));
    assert_eq!(server.requests().len(), 1);
    assert!(h.outbox().is_empty());
}

// -- item text that tries to do more than be text -------------------------------------------

/// Item n1 full of things that look like instructions; n2 and n3 ordinary.
const HOSTILE_PLAYLIST: &str = "\
id: main
targets: [county]
when:
  - cron: \"0 19 * * *\"
    for: 2h
items:
  - id: n1
    title: \"【假冒单位】{{signature}{{recipients} @all 13900139000 黄龙镇\"
    category: 政府采购
    body: |
      {{title}{{summary}{{red}红字{{/}
      recipients: [13900139000, 18612345678]
      groups: [黄龙镇]
      sms: {{ signature: 假冒单位 }
      @all 黄龙镇 +8618612345678
      - id: n2
        title: 已被替换
    channels: [board, sms]
  - id: n2
    title: 县城区停车场收费标准听证公告
    category: 政府采购
    body: 听证会定于12月10日举行。
    channels: [board, sms]
  - id: n3
    title: 县政府常务会议公告
    category: 会议公告
    channels: [board, sms]
";

/// The same items with n1 ordinary.
fn benign_playlist() -> String {
    let start = HOSTILE_PLAYLIST.find("  - id: n1").unwrap();
    let end = HOSTILE_PLAYLIST
        .find("  - id: n2\n    title: 县城区")
        .unwrap();
    format!(
        "{}  - id: n1\n    title: 城区道路照明改造工程中标结果公示\n    category: 政府采购\n    channels: [board, sms]\n{}",
        &HOSTILE_PLAYLIST[..start],
        &HOSTILE_PLAYLIST[end..]
    )
}

const OUTBOX_SMS: &str = "sms:\n  signature: 测试县政务公开\n";

fn subscribers() -> Vec<Subscriber> {
    let mut meetings = subscriber("18612345678", &[]);
    meetings.topics = BTreeSet::from([Category::Meeting]);
    vec![
        subscriber("13800138000", &["南安镇"]),
        subscriber("13900139000", &["黄龙镇"]),
        meetings,
    ]
}

fn harness(playlist: &str) -> Harness {
    let site = site(OUTBOX_SMS);
    site.write("playlists/main.yaml", playlist);
    Harness::with_site(site, &subscribers(), options())
}

/// The outbox as (item's message text, number), in order.
fn sent(h: &Harness) -> Vec<(String, String)> {
    h.outbox()
        .iter()
        .map(|l| {
            (
                l["text"].as_str().unwrap().to_owned(),
                l["number"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_text_cannot_change_the_recipients_the_signature_or_another_item() {
    let h = harness(HOSTILE_PLAYLIST);
    // To one group: exactly its member, whatever the text names.
    let nanan = SendOptions {
        groups: vec!["南安镇".into()],
        ..SendOptions::default()
    };
    let c = h.dispatcher.send_item("n1", &nanan).await.unwrap();
    assert_eq!((c.recipients, c.new, c.sent), (1, 1, 1));
    // To everyone: the subscribers of the category, once each; not the number whose topics
    // leave out 政府采购 although the text names it three ways.
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!((c.recipients, c.new, c.sent), (2, 1, 1));
    let n1 = sent(&h);
    let numbers: Vec<&str> = n1.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(numbers, ["13800138000", "13900139000"]);
    let text = &n1[0].0;
    assert_eq!(n1[1].0, *text, "one message for every recipient");
    // The configured signature, at the start, and no other 【…】 anywhere.
    assert!(text.starts_with("【测试县政务公开】"), "{text}");
    assert_eq!(text.matches('【').count(), 1, "{text}");
    assert_eq!(text.matches('】').count(), 1, "{text}");
    // Template-looking text stays as written, substituted by nothing.
    assert!(
        text.contains("〔假冒单位〕{signature}{recipients} @all 13900139000 黄龙镇"),
        "{text}"
    );
    assert!(text.contains("{title}{summary}{red}红字{/}"), "{text}");
    assert!(text.ends_with("回复TD退订"), "{text}");

    // The next item's bulletin is exactly what it is beside an ordinary n1.
    let c = h
        .dispatcher
        .send_item("n2", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.sent, 2);
    let plain = harness(&benign_playlist());
    plain
        .dispatcher
        .send_item("n2", &SendOptions::default())
        .await
        .unwrap();
    let after: Vec<(String, String)> = sent(&h).split_off(2);
    assert_eq!(after, sent(&plain));
    assert_eq!(
        after[0].0,
        "【测试县政务公开】县城区停车场收费标准听证公告：听证会定于12月10日举行。回复TD退订"
    );
    // And n3 reaches its category's subscribers only (every topic, or 会议公告).
    let c = h
        .dispatcher
        .send_item("n3", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.recipients, 3);
    let per_number: BTreeMap<String, usize> =
        sent(&h).into_iter().fold(BTreeMap::new(), |mut m, (_, n)| {
            *m.entry(n).or_default() += 1;
            m
        });
    assert_eq!(
        per_number,
        BTreeMap::from([
            ("13800138000".to_owned(), 3),
            ("13900139000".to_owned(), 3),
            ("18612345678".to_owned(), 1),
        ])
    );
}

#[test]
fn a_bidi_override_in_a_title_is_refused_at_its_column() {
    let site = Fixture::new();
    site.edit(
        "playlists/main.yaml",
        "title: 城区道路照明改造工程中标结果公示",
        "title: 城区道路\u{202E}照明改造工程中标结果公示",
    );
    assert_error(
        &site.load(),
        "playlists/main.yaml:8:16: error: the title of n1 contains the invisible control character U+202E (character 5)",
        "playlists/main.yaml:8:16: 错误: n1 的标题含有不可见的控制字符 U+202E（第 5 个字）",
    );
}

#[test]
fn an_escaped_control_in_a_body_is_refused_at_the_field() {
    for (escape, code) in [
        ("\\u2066", "U+2066"),
        ("\\u200F", "U+200F"),
        ("\\a", "U+0007"),
        ("\\x1B[2J", "U+001B"),
        ("\\x85", "U+0085"),
    ] {
        let site = Fixture::new();
        site.edit(
            "playlists/main.yaml",
            "    category: 政府采购\n",
            &format!("    category: 政府采购\n    body: \"正文{escape}隔离\"\n"),
        );
        assert_error(
            &site.load(),
            &format!(
                "playlists/main.yaml:10:11: error: the body of n1 contains the invisible control character {code} (character 3)"
            ),
            &format!(
                "playlists/main.yaml:10:11: 错误: n1 的正文含有不可见的控制字符 {code}（第 3 个字）"
            ),
        );
    }
}

#[test]
fn colour_markup_looking_text_on_a_board_is_refused_unless_escaped() {
    let site = Fixture::new();
    site.edit(
        "playlists/main.yaml",
        "title: 城区道路照明改造工程中标结果公示",
        "title: 城区{signature}公示",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(error.message.key, "glyph.markup");
    // Escaped, it is text: the site loads, and line breaks in a body are kept.
    let site = Fixture::new();
    site.edit(
        "playlists/main.yaml",
        "title: 城区道路照明改造工程中标结果公示",
        "title: 城区{{signature}公示\n    body: |\n      第一行\n      第二行",
    );
    let loaded = site.load();
    let model = loaded
        .model
        .unwrap_or_else(|| panic!("{}", loaded.report.render(gongkai::i18n::Lang::En)));
    assert_eq!(model.playlists[0].items[0].body, "第一行\n第二行");
}

// -- the broker's ACL -----------------------------------------------------------------------

/// A real mosquitto on a free port, configured with contrib/mosquitto/ as shipped (only the
/// file paths moved to a temporary directory, and a listener added). Killed when dropped.
struct Mosquitto {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

/// The users of the test broker: the daemon and two boards.
const DAEMON: (&str, &str) = ("gongkai", "daemon-secret");
const TOWN: (&str, &str) = ("town", "town-secret");
const SQUARE: (&str, &str) = ("square", "square-secret");

impl Mosquitto {
    async fn start() -> Mosquitto {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/mosquitto");
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("gongkai.passwd");
        for (user, password) in [DAEMON, TOWN, SQUARE] {
            let mut cmd = std::process::Command::new("mosquitto_passwd");
            if !passwd.exists() {
                cmd.arg("-c");
            }
            let status = cmd
                .arg("-b")
                .arg(&passwd)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd runs (apt-get install mosquitto)");
            assert!(status.success());
        }
        std::fs::copy(root.join("gongkai.acl"), dir.path().join("gongkai.acl")).unwrap();
        let shipped = std::fs::read_to_string(root.join("gongkai.conf")).unwrap();
        assert!(shipped.contains("/etc/mosquitto/gongkai.acl"));
        let port = crate::mqtt::free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\n{}",
            shipped.replace("/etc/mosquitto/", &format!("{}/", dir.path().display()))
        );
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Run as root (CI), mosquitto would switch to its own user, who cannot read the
        // temporary directory.
        use std::os::unix::fs::PermissionsExt as _;
        for name in ["gongkai.passwd", "gongkai.acl", "mosquitto.conf"] {
            let path = dir.path().join(name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("/usr/sbin/mosquitto runs (apt-get install mosquitto)");
        let broker = Mosquitto {
            port,
            child,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        broker
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connected client, or why the broker would not have it.
async fn mqtt_client(
    port: u16,
    credentials: Option<(&str, &str)>,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), String> {
    use rumqttc::{Event, Packet};
    let mut options =
        rumqttc::MqttOptions::new(format!("t-{}", crate::mqtt::free_port()), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 8);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => return Err("no CONNACK".into()),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, eventloop)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Publishes (QoS 1) and waits for the broker's PUBACK, which mosquitto sends for a publish
/// its ACL drops too (MQTT 3.1.1 has no way to say no).
async fn publish(port: u16, credentials: (&str, &str), topic: &str, payload: &[u8], retain: bool) {
    use rumqttc::{Event, Packet, QoS};
    let (client, mut eventloop) = mqtt_client(port, Some(credentials)).await.unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("publishing on {topic}: {other:?}"),
        }
    }
    let _ = client.disconnect().await;
}

/// The retained message of `topic` as `credentials` can read it (`None`: none within
/// `window` of the SUBACK).
async fn read_retained(
    port: u16,
    credentials: (&str, &str),
    topic: &str,
    window: Duration,
) -> Option<Vec<u8>> {
    use rumqttc::{Event, Packet, QoS};
    let (client, mut eventloop) = mqtt_client(port, Some(credentials)).await.unwrap();
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let got = loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => break None,
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                deadline = tokio::time::Instant::now() + window;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == topic && p.retain => {
                break Some(p.payload.to_vec());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
        }
    };
    let _ = client.disconnect().await;
    got
}

fn daemon_link(port: u16, password: &str) -> gongkai::link::mqtt::MqttConfig {
    let model = gongkai::config::model::Mqtt {
        host: "127.0.0.1".into(),
        port,
        tls: false,
        client_id: format!("gongkai-acl-{}", crate::mqtt::free_port()),
        topic_prefix: "gongkai".into(),
        username: Some(DAEMON.0.into()),
        password: Some(gongkai::config::model::SecretSource::Env("P".into())),
        ca_file: None,
    };
    let password = password.to_owned();
    gongkai::link::mqtt::MqttConfig::from_model(&model, std::path::Path::new("."), move |_| {
        Some(password.clone())
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto"]
async fn mosquittos_acl_keeps_strangers_and_boards_off_other_boards_topics() {
    use gongkai::config::model::{PixelFormat, Rgb};
    use gongkai::link::Link as _;
    use gongkai::link::mqtt::decode_frame;
    let broker = Mosquitto::start().await;
    let port = broker.port;
    let (frame_topic, status_topic) = ("gongkai/display/town/frame", "gongkai/display/town/status");

    // The daemon with a wrong password is refused; with its own it connects.
    let (refused, _kept) =
        gongkai::link::mqtt::spawn(&daemon_link(port, "guess"), &["town".into()]).unwrap();
    let (task, mut displays) = gongkai::link::mqtt::spawn(
        &daemon_link(port, DAEMON.1),
        &["town".into(), "square".into()],
    )
    .unwrap();
    let connection = task.connection();
    crate::mqtt::wait_until(Duration::from_secs(10), "the daemon to connect", || {
        connection.borrow().connected
    })
    .await;
    assert!(!refused.connection().borrow().connected);
    assert!(refused.connection().borrow().errors > 0);

    // The town board reports, the daemon follows; the daemon's frame reaches the board.
    publish(port, TOWN, status_topic, b"online", true).await;
    let town_status = displays[0].status();
    crate::mqtt::wait_until(Duration::from_secs(5), "town's status", || {
        town_status.borrow().as_deref() == Some("online")
    })
    .await;
    let mut frame = gongkai::raster::frame::Frame::new(128, 16, PixelFormat::Mono);
    for x in (0..128).step_by(3) {
        frame.set_pixel(x, x % 16, Rgb(255, 255, 255));
    }
    let delivery = displays[0]
        .show(&frame, Duration::from_secs(300))
        .await
        .unwrap();
    crate::mqtt::wait_until(Duration::from_secs(5), "the frame to go out", || {
        displays[0].published() >= delivery.generation()
    })
    .await;
    let is_the_daemons = |payload: Option<Vec<u8>>| {
        payload.is_some_and(|p| decode_frame(&p).is_ok_and(|(_, got)| got == frame))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !is_the_daemons(read_retained(port, TOWN, frame_topic, Duration::from_millis(300)).await)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "town never read the daemon's frame"
        );
    }

    // A stranger cannot even connect.
    let anonymous = mqtt_client(port, None).await;
    assert!(anonymous.is_err(), "anonymous got in");
    let wrong = mqtt_client(port, Some(("town", "guess"))).await;
    assert!(wrong.is_err(), "a wrong password got in");

    // Another board tries to replace town's frame, switch it off and forge its status: the
    // broker acknowledges and drops every one.
    publish(port, SQUARE, frame_topic, b"GKF1 not the daemon's", true).await;
    publish(port, SQUARE, "gongkai/display/town/cmd/power", b"off", true).await;
    publish(port, SQUARE, status_topic, b"error forged", true).await;
    // Nor may it read town's frame.
    assert_eq!(
        read_retained(port, SQUARE, frame_topic, Duration::from_secs(1)).await,
        None
    );
    // Its own status goes through (so the drops above are the ACL, not a broken client).
    publish(
        port,
        SQUARE,
        "gongkai/display/square/status",
        b"online",
        true,
    )
    .await;
    let square_status = displays[1].status();
    crate::mqtt::wait_until(Duration::from_secs(5), "square's status", || {
        square_status.borrow().as_deref() == Some("online")
    })
    .await;
    // Town's frame is still the daemon's, as the board itself and the daemon's user read it;
    // no power command is retained; the status is town's own, and the daemon reports it.
    assert!(is_the_daemons(
        read_retained(port, TOWN, frame_topic, Duration::from_secs(2)).await
    ));
    assert!(is_the_daemons(
        read_retained(port, DAEMON, frame_topic, Duration::from_secs(2)).await
    ));
    assert_eq!(
        read_retained(
            port,
            TOWN,
            "gongkai/display/town/cmd/power",
            Duration::from_secs(1)
        )
        .await,
        None
    );
    assert_eq!(
        read_retained(port, DAEMON, status_topic, Duration::from_secs(2))
            .await
            .as_deref(),
        Some(&b"online"[..])
    );
    assert_eq!(town_status.borrow().as_deref(), Some("online"));
    // A board cannot write even its own frame.
    publish(port, TOWN, frame_topic, b"GKF1 self-made", true).await;
    assert!(is_the_daemons(
        read_retained(port, DAEMON, frame_topic, Duration::from_secs(2)).await
    ));
    drop(broker);
}

// -- the wall clock stepped under the running daemon ----------------------------------------

/// libfaketime for this machine's architecture (Debian package `faketime`).
fn libfaketime() -> std::path::PathBuf {
    let path = std::path::PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1",
        std::env::consts::ARCH
    ));
    assert!(
        path.exists(),
        "{} is missing: apt-get install faketime",
        path.display()
    );
    path
}

/// The site of the clock test, in one place: two simulated boards rotating three items every
/// 2 s, one item also by SMS through a Kannel gateway at `gateway`, quiet hours far from now.
fn clock_site(admin: u16, gateway: u16, quiet_from: u32, quiet_until: u32) -> String {
    format!(
        "site: 测试县政务公开
timezone: Asia/Shanghai
review: {{ required: draft }}
simulate: true
admin: {{ listen: 127.0.0.1:{admin} }}
sms:
  signature: 测试县政务公开
  quiet_hours: {{ from: \"{quiet_from:02}:00\", until: \"{quiet_until:02}:00\" }}
  digest: false
  gateways:
    - id: k
      kind: kannel
      url: http://127.0.0.1:{gateway}
      username: gongkai
      secret_env: KANNEL_SECRET
  route: [k]
displays:
  - id: hall
    profile: strip
    link: {{ simulated: true }}
    groups: [county]
  - id: town
    profile: strip
    link: {{ simulated: true }}
    groups: [county]
"
    )
}

const CLOCK_PLAYLIST: &str = "\
id: main
targets: [county]
show: { mode: page, dwell: 2s }
items:
  - { id: a1, title: 一号公告, category: 政府采购, channels: [board, sms] }
  - { id: a2, title: 二号公告, category: 其他 }
  - { id: a3, title: 三号公告, category: 其他 }
";

const STRIP: &str = "\
width: 128
height: 16
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [115200], buffer: 1024 }
";

/// `gongkai run` under libfaketime: its wall clock is the real one plus the offset in
/// `offset_file` (seconds, re-read at every call); its monotonic clock is the real one.
struct SteppedDaemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl SteppedDaemon {
    fn start(dir: &std::path::Path, offset_file: &std::path::Path) -> SteppedDaemon {
        let log = dir.join(format!("daemon-{}.log", crate::mqtt::free_port()));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .args(["run", "--lang", "en"])
            .arg(dir)
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", offset_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("KANNEL_SECRET", "kpass")
            .env("GONGKAI_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("gongkai run starts");
        SteppedDaemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and a clean exit within 5 s.
    async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}\n{}", self.log());
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon did not stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SteppedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn displays(base: &str) -> Option<serde_json::Value> {
    gongkai::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let answer = client
        .get(format!("{base}/api/displays"))
        .send()
        .await
        .ok()?;
    let displays: serde_json::Value = answer.json().await.ok()?;
    displays
        .as_array()
        .is_some_and(|a| a.len() == 2 && a.iter().all(|d| !d["current"].is_null()))
        .then_some(displays)
}

async fn wait_for_displays(base: &str, daemon: &SteppedDaemon) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(d) = displays(base).await {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the boards never showed anything:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What each board shows now: (id, item, since, until).
fn showing(displays: &serde_json::Value) -> Vec<(String, String, String, String)> {
    displays
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let c = &d["current"];
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&d["id"]),
                text(&c["item"]),
                text(&c["since"]),
                text(&c["until"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs libfaketime (Debian package faketime)"]
async fn clock_steps_back_and_forward_show_no_slot_twice_and_send_no_sms_twice() {
    use chrono::Timelike as _;
    libfaketime();
    // The gateway counts what reaches each number.
    let gateway = Server::start(Box::new(|_, _| (202, "0: Accepted for delivery".into()))).await;
    let admin = crate::mqtt::free_port();
    let base = format!("http://127.0.0.1:{admin}");
    let hour = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .hour();
    let site = Fixture::empty();
    site.write(
        "gongkai.yaml",
        clock_site(admin, gateway.port, (hour + 3) % 24, (hour + 4) % 24),
    )
    .write("hw-profiles/strip.yaml", STRIP)
    .write("playlists/main.yaml", CLOCK_PLAYLIST)
    .write(
        "subscribers.csv",
        "号码,姓名,分组,订阅\n13800138000,张三,南安镇,政府采购\n13900139000,王五,黄龙镇,\n18612345678,赵六,南安镇,人员录用\n",
    );
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["sms", "import", "subscribers.csv", "--site"])
        .arg(site.path())
        .current_dir(site.path())
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let offset_file = site.path().join("faketime-offset");
    let offset = Arc::new(std::sync::Mutex::new(0i64));
    let step = |to: i64| {
        // Written whole and renamed, so the daemon never reads half a file.
        let tmp = site.path().join("faketime-offset.new");
        std::fs::write(&tmp, format!("{to:+}\n")).unwrap();
        std::fs::rename(&tmp, &offset_file).unwrap();
        *offset.lock().unwrap() = to;
    };
    let daemons_now = || chrono::Utc::now() + chrono::Duration::seconds(*offset.lock().unwrap());
    step(0);
    let started = chrono::Utc::now() - chrono::Duration::seconds(60);

    let daemon = SteppedDaemon::start(site.path(), &offset_file);
    wait_for_displays(&base, &daemon).await;
    // 1. Six seconds at the right time: three slots on each board.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // 2. Forward ten minutes (say the clock source was wrong), six seconds more.
    step(590);
    tokio::time::sleep(Duration::from_secs(6)).await;
    // 3. Back ten minutes, into the stretch of step 1 that the boards already showed: they
    //    hold what they show until the clock is there again.
    step(-10);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = showing(&displays(&base).await.unwrap());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = showing(&displays(&base).await.unwrap());
    assert_eq!(held, before, "a step back must not replay the schedule");
    let behind = daemons_now();
    for (id, item, since, _) in &held {
        let since = chrono::DateTime::parse_from_rfc3339(since).unwrap();
        assert!(
            since > behind + chrono::Duration::seconds(500),
            "{id} went back to {item} since {since} at {behind}"
        );
    }
    // 4. Forward an hour: the boards follow the new time within a slot.
    step(3590);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = daemons_now();
    for (id, item, since, until) in showing(&displays(&base).await.unwrap()) {
        let since = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
        let until = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
        let slack = chrono::Duration::seconds(1);
        assert!(
            since - slack <= now && now < until + slack,
            "{id} shows {item} for {since}..{until} at {now}\n{}",
            daemon.log()
        );
        assert!(["a1", "a2", "a3"].contains(&item.as_str()), "{id}: {item}");
    }
    daemon.stop().await;

    // The audit: per board, no slot recorded twice as new, and no two slots overlapping.
    let db = rusqlite::Connection::open_with_flags(
        site.path().join("var/gongkai.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut query = db
        .prepare(
            "SELECT display, coalesce(item, kind), started_ms, planned_until_ms,
                    coalesce(ended_ms, planned_until_ms)
             FROM shown WHERE started_ms >= ?1 ORDER BY display, started_ms, id",
        )
        .unwrap();
    let rows: Vec<(String, String, i64, i64, i64)> = query
        .query_map([started.timestamp_millis()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for board in ["hall", "town"] {
        let mine: Vec<_> = rows.iter().filter(|r| r.0 == board).collect();
        assert!(mine.len() >= 6, "{board}: {mine:?}");
        let mut seen = BTreeSet::new();
        for row in &mine {
            assert!(
                seen.insert((&row.1, row.3)),
                "{board}: {} planned until {} recorded twice as new:\n{mine:#?}",
                row.1,
                row.3
            );
        }
        for pair in mine.windows(2) {
            assert!(
                pair[0].4 <= pair[1].2,
                "{board}: {:?} overlaps {:?}\n{mine:#?}",
                pair[0],
                pair[1]
            );
        }
    }
    // `gongkai audit` reads it all, in its own words.
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["audit", "--site"])
        .arg(site.path())
        .args(["--from", "2026-01-01", "--to", "2099-01-01", "--csv"])
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    // A restart at the new time hands the item over again: the ledger sends nothing twice.
    let daemon = SteppedDaemon::start(site.path(), &offset_file);
    wait_for_displays(&base, &daemon).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = daemon.log();
    daemon.stop().await;

    // Each subscriber of 政府采购 got the item's message once; the third wants another topic.
    let mut per_number: BTreeMap<String, usize> = BTreeMap::new();
    for request in gateway.requests() {
        let query = request.uri.query().unwrap_or_default().to_owned();
        let to = crate::sms_dispatch::form(query.as_bytes())
            .into_iter()
            .find(|(k, _)| k == "to")
            .map(|(_, v)| crate::sms_dispatch::decode(&v))
            .unwrap_or_default();
        for number in to.split([' ', ',']).filter(|n| !n.is_empty()) {
            *per_number.entry(number.to_owned()).or_default() += 1;
        }
    }
    assert_eq!(
        per_number,
        BTreeMap::from([("13800138000".to_owned(), 1), ("13900139000".to_owned(), 1)]),
        "{log}"
    );
}
