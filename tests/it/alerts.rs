//! Alerts to the technicians, end to end: the real `gongkai run` with a board served by the
//! real `gongkai emulate` on a pseudo-terminal, a local HTTP server as the webhook (it checks
//! the Bearer token) and another standing in for a Kannel SMS gateway. The board is stopped
//! and started again on the same device; a gateway refuses every bulletin, then takes one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialStream};

use crate::fixture::Fixture;
use crate::mqtt::free_port;
use crate::process::{Daemon, client, get_json};
use crate::sms_dispatch::{Seen, Server, decode, form};

const HOOK_TOKEN: &str = "alert-hook-token-for-tests";
const KANNEL_SECRET: &str = "kannel-pass-for-tests";
const TECHNICIAN: &str = "13800138000";

const PROFILE: &str = "\
width: 128
height: 16
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [115200], buffer: 1024 }
";

/// Two pages turning every second: the board is asked something every second, so its
/// silence is noticed at once (a still picture is confirmed once a minute).
const PLAYLIST: &str = "\
id: main
targets: [hall]
show: { mode: page, dwell: 1s }
items:
  - id: n1
    title: 城区道路照明改造工程中标结果公示
    category: 政府采购
";

/// The site of these tests: the top of the site file (name, listeners and the other site-wide settings) is
/// written here once; `sms` and `alerts` are YAML blocks, `link` the board's link.
fn site(admin: u16, sms: &str, alerts: &str, link: &str) -> String {
    format!(
        "\
site: 测试县政务公开
timezone: Asia/Shanghai
review: {{ required: draft }}
admin: {{ listen: 127.0.0.1:{admin} }}
{sms}
{alerts}
displays:
  - id: hall
    name: 大厅条屏
    profile: strip
    link: {link}
"
    )
}

fn kannel_sms(port: u16, extra: &str) -> String {
    format!(
        "\
sms:
  signature: 测试县政务公开
{extra}  gateways:
    - id: k
      kind: kannel
      url: http://127.0.0.1:{port}
      username: gongkai
      secret_env: GONGKAI_TEST_KANNEL_SECRET
"
    )
}

/// A Kannel that takes messages with the right credentials.
async fn kannel() -> Server {
    Server::start(Box::new(|req, _| {
        let pairs = form(req.uri.query().unwrap_or("").as_bytes());
        let has = |k: &str, v: &str| pairs.iter().any(|(a, b)| a == k && b == v);
        if req.uri.path() != "/cgi-bin/sendsms"
            || !has("username", "gongkai")
            || !has("password", KANNEL_SECRET)
        {
            return (403, "Authorization failed for sendsms".into());
        }
        (202, "0: Accepted for delivery".into())
    }))
    .await
}

/// A webhook receiver that wants the token.
async fn webhook() -> Server {
    Server::start(Box::new(|req, _| {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth != format!("Bearer {HOOK_TOKEN}") {
            return (401, "who are you".into());
        }
        (200, "ok".into())
    }))
    .await
}

fn json(req: &Seen) -> serde_json::Value {
    serde_json::from_slice(&req.body).expect("the webhook gets JSON")
}

/// The text of a Kannel request, signature included.
fn sms_text(req: &Seen) -> (String, String) {
    let pairs = form(req.uri.query().unwrap_or("").as_bytes());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| decode(v))
            .unwrap_or_default()
    };
    (get("to"), get("text"))
}

/// The daemon on the site in `dir`, with the tests' secrets.
fn start_daemon(dir: &Path) -> Daemon {
    Daemon::start(
        dir,
        &[
            ("GONGKAI_TEST_KANNEL_SECRET", KANNEL_SECRET),
            ("GONGKAI_TEST_ALERT_TOKEN", HOOK_TOKEN),
            ("GONGKAI_TEST_MQTT_PASSWORD", crate::mqtt::PASSWORD),
        ],
    )
}

/// `gongkai emulate` on `device`; killed when dropped.
struct Emulator(Child);

impl Emulator {
    /// A board on the serial `device`.
    async fn start(site: &Path, device: &str, out: &Path) -> Emulator {
        Emulator::run(
            site,
            &["--port", device, "--address", "1", "--baud", "115200"],
            out,
        )
        .await
    }

    async fn run(site: &Path, args: &[&str], out: &Path) -> Emulator {
        let shown = out.join(gongkai::cli::emulate::SHOWN_PNG);
        let _ = std::fs::remove_file(&shown);
        let child = Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .args(["--site", site.to_str().expect("utf-8 path"), "emulate"])
            .args(args)
            .env("GONGKAI_MQTT_PASSWORD", "board-secret")
            .arg("--profile")
            .arg(site.join("hw-profiles/strip.yaml"))
            .arg("--out")
            .arg(out)
            .env("LANG", "C")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gongkai emulate starts");
        // The board draws its dark picture as soon as it listens.
        wait_for(Duration::from_secs(10), "the emulator to listen", || {
            shown.exists()
        })
        .await;
        Emulator(child)
    }
}

impl Emulator {
    /// SIGINT: the board says goodbye (an MQTT board publishes `offline`) and exits.
    async fn stop(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_text(base: &str, path: &str) -> String {
    client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("the admin API answers")
        .text()
        .await
        .expect("text")
}

/// Polls `/api/displays` until the board's link says `online`.
async fn board_online(base: &str, online: bool, limit: Duration, daemon: &Daemon) {
    let start = Instant::now();
    loop {
        if let Ok(resp) = client().get(format!("{base}/api/displays")).send().await
            && let Ok(v) = resp.json::<serde_json::Value>().await
            && v[0]["link"]["online"] == online
        {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "the board is not online={online} after {limit:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_count(server: &Server, n: usize, limit: Duration, what: &str, daemon: &Daemon) {
    let start = Instant::now();
    while server.requests().len() < n {
        assert!(
            start.elapsed() < limit,
            "{what}: {} request(s) after {limit:?}\n{}",
            server.requests().len(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fires_once_when_an_emulated_board_goes_silent_and_a_recovery_follows() {
    let hook = webhook().await;
    let gateway = kannel().await;
    // daemon ⇄ pty A ⇄ relay ⇄ pty B ⇄ `gongkai emulate`. This process holds both slaves, so
    // the board's device stays while no emulator has it open, as a cable stays plugged in
    // while the board behind it is dead.
    let (mut board_master, board_slave) = SerialStream::pair().expect("a pseudo-terminal");
    let board_path = board_slave.name().expect("the slave's path");
    let (mut host_master, host_slave) = SerialStream::pair().expect("a pseudo-terminal");
    let host_path = host_slave.name().expect("the slave's path");
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut board_master, &mut host_master).await;
    });

    let admin = free_port();
    let fixture = Fixture::empty();
    let alerts = format!(
        "\
alerts:
  board_silent_for: 2s
  sms_to: [\"{TECHNICIAN}\"]
  webhook:
    url: http://127.0.0.1:{}/hook
    token_env: GONGKAI_TEST_ALERT_TOKEN
",
        hook.port
    );
    fixture
        .write(
            "gongkai.yaml",
            site(
                admin,
                &kannel_sms(gateway.port, ""),
                &alerts,
                &format!("{{ serial: {host_path}, baud: 115200, address: 1 }}"),
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/main.yaml", PLAYLIST);
    let out = tempfile::tempdir().expect("a temporary directory");
    let emulator = Emulator::start(fixture.path(), &board_path, out.path()).await;
    let daemon = start_daemon(fixture.path());
    let base = format!("http://127.0.0.1:{admin}");
    board_online(&base, true, Duration::from_secs(20), &daemon).await;
    assert!(hook.requests().is_empty(), "{:?}", hook.requests());

    // The board dies.
    drop(emulator);
    until_count(
        &hook,
        1,
        Duration::from_secs(20),
        "the firing webhook",
        &daemon,
    )
    .await;
    until_count(
        &gateway,
        1,
        Duration::from_secs(10),
        "the firing SMS",
        &daemon,
    )
    .await;
    let firing = json(&hook.requests()[0]);
    assert_eq!(firing["state"], "firing", "{firing}");
    assert_eq!(firing["kind"], "board_silent");
    assert_eq!(firing["subject"], "hall");
    assert_eq!(firing["name"], "大厅条屏");
    assert_eq!(firing["site"], "测试县政务公开");
    assert!(firing["since"].as_str().is_some_and(|s| !s.is_empty()));
    let (to, text) = sms_text(&gateway.requests()[0]);
    assert_eq!(to, TECHNICIAN);
    assert!(
        text.starts_with("【测试县政务公开】告警：大厅条屏 ") && text.contains("无应答（自 "),
        "{text}"
    );
    let status = get_json(&base, "/api/status").await;
    assert_eq!(status["alerts"]["open"][0]["subject"], "hall", "{status}");
    let metrics = get_text(&base, "/metrics").await;
    assert!(metrics.contains("gongkai_alerts_open 1"), "{metrics}");

    // Still silent: nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.requests().len(), 1);
    assert_eq!(gateway.requests().len(), 1);

    // The board is back on the same device.
    let emulator = Emulator::start(fixture.path(), &board_path, out.path()).await;
    until_count(
        &hook,
        2,
        Duration::from_secs(40),
        "the resolved webhook",
        &daemon,
    )
    .await;
    until_count(
        &gateway,
        2,
        Duration::from_secs(10),
        "the resolved SMS",
        &daemon,
    )
    .await;
    let resolved = json(&hook.requests()[1]);
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    assert_eq!(resolved["subject"], "hall");
    assert_eq!(resolved["since"], firing["since"]);
    assert!(resolved["lasted_seconds"].as_u64().is_some_and(|s| s >= 2));
    let (_, text) = sms_text(&gateway.requests()[1]);
    assert!(
        text.starts_with("【测试县政务公开】恢复：大厅条屏 "),
        "{text}"
    );

    // Nothing more after a further wait.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(hook.requests().len(), 2, "{:?}", hook.requests());
    assert_eq!(gateway.requests().len(), 2);
    let status = get_json(&base, "/api/status").await;
    assert_eq!(status["alerts"]["open"], serde_json::json!([]), "{status}");
    assert_eq!(status["alerts"]["sent"], 4, "{status}");
    assert_eq!(status["alerts"]["failed"], 0, "{status}");
    let metrics = get_text(&base, "/metrics").await;
    assert!(
        metrics.contains("gongkai_alert_deliveries_total{channel=\"webhook\",result=\"sent\"} 2"),
        "{metrics}"
    );
    let log = daemon.log();
    assert!(!log.contains(HOOK_TOKEN), "the token is never logged");
    assert!(!log.contains(KANNEL_SECRET), "the secret is never logged");
    drop(emulator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusing_call_after_call_fires_once_and_recovers_when_it_takes_one() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // A webhook that is busy the first time: the alert is posted again, once.
    let hook = Server::start(Box::new(|req, index| {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match (auth == format!("Bearer {HOOK_TOKEN}"), index) {
            (false, _) => (401, "who are you".into()),
            (true, 0) => (503, "busy".into()),
            (true, _) => (200, "ok".into()),
        }
    }))
    .await;
    let accept = Arc::new(AtomicBool::new(false));
    let taking = accept.clone();
    let gateway = Server::start(Box::new(move |_, _| {
        if taking.load(Ordering::SeqCst) {
            (202, "0: Accepted for delivery".into())
        } else {
            (403, "Authorization failed for sendsms".into())
        }
    }))
    .await;
    // Quiet hours half a day away, so the bulletins go out now.
    let later =
        chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai) + chrono::Duration::hours(12);
    let quiet = format!(
        "  quiet_hours: {{ from: \"{}\", until: \"{}\" }}\n",
        later.format("%H:%M"),
        (later + chrono::Duration::minutes(1)).format("%H:%M")
    );
    let alerts = format!(
        "\
alerts:
  gateway_failures: 2
  webhook:
    url: http://127.0.0.1:{}/hook
    token_env: GONGKAI_TEST_ALERT_TOKEN
",
        hook.port
    );
    let admin = free_port();
    let fixture = Fixture::empty();
    let bulletins = |ids: &[&str]| {
        let mut text = String::from("id: main\ntargets: [hall]\nitems:\n");
        for id in ids {
            text.push_str(&format!(
                "  - id: {id}\n    title: 公告{id}\n    category: 政府采购\n    channels: [board, sms]\n"
            ));
        }
        text
    };
    fixture
        .write(
            "gongkai.yaml",
            site(
                admin,
                &kannel_sms(gateway.port, &quiet),
                &alerts,
                "{ simulated: true }",
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/main.yaml", bulletins(&["n1", "n2"]));
    std::fs::create_dir_all(fixture.path().join("var")).expect("var/");
    let ledger = gongkai::sms::ledger::Ledger::open(
        &fixture.path().join(gongkai::sms::ledger::DEFAULT_PATH),
        0,
    )
    .expect("the ledger");
    ledger
        .import_subscribers(&[crate::sms_dispatch::subscriber(TECHNICIAN, &[])], 0)
        .expect("a subscriber");
    drop(ledger);

    let daemon = start_daemon(fixture.path());
    // Two bulletins, two refusals: one alert (posted twice, the first time refused as busy).
    until_count(
        &hook,
        2,
        Duration::from_secs(30),
        "the firing webhook",
        &daemon,
    )
    .await;
    assert_eq!(gateway.requests().len(), 2);
    let firing = json(&hook.requests()[1]);
    assert_eq!(json(&hook.requests()[0]), firing, "the same alert, same id");
    assert_eq!(firing["state"], "firing", "{firing}");
    assert_eq!(firing["kind"], "gateway_failing");
    assert_eq!(firing["subject"], "k");
    assert!(
        firing["detail"].as_str().is_some_and(|d| d.contains("403")),
        "{firing}"
    );

    // The gateway is fixed and a new bulletin comes (a reload, so the dispatcher starts
    // again with no history: the incident stays open until a call is taken).
    accept.store(true, Ordering::SeqCst);
    fixture.write("playlists/main.yaml", bulletins(&["n1", "n2", "n3"]));
    until_count(
        &hook,
        3,
        Duration::from_secs(30),
        "the resolved webhook",
        &daemon,
    )
    .await;
    assert_eq!(gateway.requests().len(), 3);
    let resolved = json(&hook.requests()[2]);
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    assert_eq!(resolved["subject"], "k");
    assert_eq!(resolved["unwatched"], false);

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.requests().len(), 3, "{:?}", hook.requests());
}

// -- the alerts: section, checked --------------------------------------------------------------

/// The minimal fixture with `alerts` (a YAML block) appended at line 15, and `sms` replacing its
/// `sms:` line.
fn checked(sms: &str, alerts: &str) -> gongkai::config::Loaded {
    let site = Fixture::new();
    site.edit("gongkai.yaml", "sms: { signature: 测试县政务公开 }", sms);
    let text = std::fs::read_to_string(site.path().join("gongkai.yaml")).expect("site file");
    site.write("gongkai.yaml", format!("{text}{alerts}"));
    site.load()
}

const KANNEL: &str = "sms: { signature: 测试县政务公开, gateways: [{ id: k, kind: kannel, url: \"http://127.0.0.1:13013\", username: u, secret_env: K }] }";

#[test]
fn a_valid_alerts_section_is_in_the_model() {
    let loaded = checked(
        KANNEL,
        "alerts:\n  board_silent_for: 5m\n  link_errors_above: 20%\n  gateway_failures: 5\n  sms_to: [\"+86 138-0013-8000\", \"13900139000\"]\n  webhook: { url: \"https://ops.example.cn/hook\", token_env: T }\n",
    );
    let model = loaded
        .model
        .unwrap_or_else(|| panic!("{}", loaded.report.render(gongkai::i18n::Lang::En)));
    let alerts = model.site.alerts.expect("alerts");
    assert_eq!(alerts.board_silent_for, Some(Duration::from_secs(300)));
    assert_eq!(alerts.link_errors_above, Some(0.2));
    assert_eq!(alerts.gateway_failures, Some(5));
    assert_eq!(alerts.sms_to, ["13800138000", "13900139000"]);
    let hook = alerts.webhook.expect("webhook");
    assert_eq!(hook.url, "https://ops.example.cn/hook");
    assert_eq!(
        hook.token,
        Some(gongkai::config::model::SecretSource::Env("T".into()))
    );
}

#[test]
fn an_alert_number_that_is_not_a_mobile_number_is_an_error_at_it() {
    let loaded = checked(
        KANNEL,
        "alerts:\n  board_silent_for: 5m\n  sms_to: [\"13800138000\", \"0797-8712345\"]\n",
    );
    crate::fixture::assert_error(
        &loaded,
        "gongkai.yaml:17:27: error: `0797-8712345` is not a mainland mobile number: not a mobile segment in use",
        "gongkai.yaml:17:27: 错误: `0797-8712345` 不是有效的大陆手机号：不是在用的手机号段",
    );
}

#[test]
fn alert_sms_without_an_sms_section_is_an_error() {
    let loaded = checked(
        "",
        "alerts:\n  board_silent_for: 5m\n  sms_to: [\"13800138000\"]\n",
    );
    crate::fixture::assert_error(
        &loaded,
        "gongkai.yaml:17:12: error: this alert needs the site's SMS gateways, but the site file has no `sms:` section",
        "gongkai.yaml:17:12: 错误: 此项告警需要站点的短信网关，但站点文件中没有 `sms:` 设置",
    );
}

#[test]
fn alert_sms_through_the_outbox_only_is_an_error() {
    let loaded = checked(
        "sms: { signature: 测试县政务公开 }",
        "alerts:\n  board_silent_for: 5m\n  sms_to: [\"13800138000\"]\n",
    );
    let error = crate::fixture::assert_error(
        &loaded,
        "gongkai.yaml:17:12: error: none of the site's SMS gateways can send an alert: they need free text (kannel, or yunmas without a template)",
        "gongkai.yaml:17:12: 错误: 站点的短信网关都不能发送告警：告警是自由文本，须用 kannel 或不带模板的云MAS",
    );
    assert!(crate::fixture::hint(&error, gongkai::i18n::Lang::En).contains("webhook"));
}

#[test]
fn a_webhook_that_is_not_http_and_a_share_without_percent_are_errors() {
    let loaded = checked(
        KANNEL,
        "alerts:\n  board_silent_for: 5m\n  webhook: { url: \"ftp://ops.example.cn/hook\" }\n",
    );
    crate::fixture::assert_error(
        &loaded,
        "gongkai.yaml:17:19: error: `ftp://ops.example.cn/hook` is not an http:// or https:// address",
        "gongkai.yaml:17:19: 错误: `ftp://ops.example.cn/hook` 不是 http:// 或 https:// 地址",
    );
    let loaded = checked(KANNEL, "alerts:\n  link_errors_above: 20\n");
    crate::fixture::assert_error(
        &loaded,
        "gongkai.yaml:16:22: error: `20` is not a percentage above 0 and at most 100",
        "gongkai.yaml:16:22: 错误: `20` 不是大于 0、不超过 100 的百分比",
    );
}

#[test]
fn a_webhook_token_in_clear_to_another_machine_is_a_warning() {
    let loaded = checked(
        KANNEL,
        "alerts:\n  board_silent_for: 5m\n  webhook: { url: \"http://10.0.0.5/hook\", token_env: T }\n",
    );
    assert!(loaded.model.is_some());
    let warning = &loaded.report.diagnostics[0];
    assert_eq!(
        warning.headline(gongkai::i18n::Lang::En),
        "gongkai.yaml:17:19: warning: the webhook's token would cross the network unencrypted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_board_whose_will_says_offline_fires_once_and_recovers_when_it_returns() {
    const PREFIX: &str = "county/alerts";
    let broker = crate::mqtt::TestBroker::start().await;
    let hook = webhook().await;
    let admin = free_port();
    let fixture = Fixture::empty();
    let mqtt = format!(
        "\
mqtt:
  broker: mqtt://127.0.0.1:{}
  topic_prefix: {PREFIX}
  username: {}
  password_env: GONGKAI_TEST_MQTT_PASSWORD",
        broker.port,
        crate::mqtt::USER
    );
    let alerts = format!(
        "\
alerts:
  board_silent_for: 2s
  webhook:
    url: http://127.0.0.1:{}/hook
    token_env: GONGKAI_TEST_ALERT_TOKEN
",
        hook.port
    );
    fixture
        .write(
            "gongkai.yaml",
            site(admin, &mqtt, &alerts, "{ mqtt: boards/town }"),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/main.yaml", PLAYLIST);
    let out = tempfile::tempdir().expect("a temporary directory");
    let url = format!("mqtt://board@127.0.0.1:{}/{PREFIX}", broker.port);
    let board_args = ["--mqtt", url.as_str(), "--topic", "boards/town"];
    let emulator = Emulator::run(fixture.path(), &board_args, out.path()).await;
    let daemon = start_daemon(fixture.path());
    let base = format!("http://127.0.0.1:{admin}");
    board_online(&base, true, Duration::from_secs(20), &daemon).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(hook.requests().is_empty(), "{:?}", hook.requests());

    // The board goes away: its goodbye is retained on its status topic.
    emulator.stop().await;
    until_count(
        &hook,
        1,
        Duration::from_secs(20),
        "the firing webhook",
        &daemon,
    )
    .await;
    let firing = json(&hook.requests()[0]);
    assert_eq!(firing["state"], "firing", "{firing}");
    assert_eq!(firing["kind"], "board_silent");
    assert_eq!(firing["subject"], "hall");

    let _emulator = Emulator::run(fixture.path(), &board_args, out.path()).await;
    until_count(
        &hook,
        2,
        Duration::from_secs(20),
        "the resolved webhook",
        &daemon,
    )
    .await;
    assert_eq!(json(&hook.requests()[1])["state"], "resolved");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.requests().len(), 2, "{:?}", hook.requests());
}

#[test]
fn watching_gateways_of_a_site_without_sms_is_a_warning() {
    let loaded = checked("", "alerts:\n  gateway_failures: 3\n");
    assert!(loaded.model.is_some());
    assert_eq!(
        loaded.report.diagnostics[0].headline(gongkai::i18n::Lang::En),
        "gongkai.yaml:16:21: warning: the site has no `sms:` section, so there is no gateway to watch"
    );
}
