//! The MQTT link through a real broker, no mocks: rumqttd in the process (raised limits, on
//! 127.0.0.1), the real `gongkai emulate --mqtt` as the board, and — in the interop tier —
//! Debian's mosquitto started by `.ci/run`.
//!
//! rumqttd cannot be stopped once started, so the broker's socket is a small TCP relay in
//! front of it: "killing the broker" closes the relay's listener and every connection, and
//! "starting a new one" binds the same port again in front of a *fresh* rumqttd, which holds
//! no retained message — exactly what the daemon sees when a real broker restarts empty.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gongkai::config::model::{Mqtt, PixelFormat, Rgb, SecretSource};
use gongkai::link::Link;
use gongkai::link::mqtt::{
    self, DisplayTopics, MAX_PACKET, MqttConfig, MqttDisplay, MqttTask, decode_frame,
};
use gongkai::raster::frame::Frame;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

const VALID: Duration = Duration::from_secs(300);
pub(crate) const USER: &str = "gongkai";
pub(crate) const PASSWORD: &str = "frame-pusher-secret";
const PREFIX: &str = "county/test";

/// Waits for `condition`, failing the test after `limit`.
pub(crate) async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn picture(width: u32, height: u32, format: PixelFormat, seed: u32) -> Frame {
    let mut frame = Frame::new(width, height, format);
    for y in 0..height {
        for x in 0..width {
            if (x * 7 + y * 13 + seed * 31).is_multiple_of(5 + seed % 4) {
                frame.set_pixel(x, y, Rgb(255, (x * 3) as u8, (y * 5) as u8));
            }
        }
    }
    frame
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts a fresh rumqttd on a free port (limits raised to the link's packet size, with the
/// test's username and password) and returns its address once it accepts connections.
pub(crate) async fn start_rumqttd() -> SocketAddr {
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: MAX_PACKET,
        max_inflight_count: 100,
        auth: Some(HashMap::from([
            (USER.to_owned(), PASSWORD.to_owned()),
            ("board".to_owned(), "board-secret".to_owned()),
        ])),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * MAX_PACKET,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Default::default()
    };
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        // Runs until the test process ends.
        let _ = broker.start();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "rumqttd did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    listen
}

/// The broker as clients see it: a port that can die and come back with an empty broker.
pub(crate) struct TestBroker {
    pub(crate) port: u16,
    relay: Option<tokio::task::JoinHandle<()>>,
}

impl TestBroker {
    pub(crate) async fn start() -> TestBroker {
        let mut broker = TestBroker {
            port: free_port(),
            relay: None,
        };
        broker.restart().await;
        broker
    }

    /// Closes the listener and every connection, as a crashed broker does.
    pub(crate) async fn kill(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
            let _ = relay.await;
        }
    }

    /// A new, empty broker on the same port.
    pub(crate) async fn restart(&mut self) {
        let upstream = start_rumqttd().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) => {
                    assert!(Instant::now() < deadline, "cannot bind again: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        self.relay = Some(tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }
}

fn config(port: u16) -> MqttConfig {
    let model = Mqtt {
        host: "127.0.0.1".into(),
        port,
        tls: false,
        client_id: format!("gongkai-test-{}", free_port()),
        topic_prefix: PREFIX.into(),
        username: Some(USER.into()),
        password: Some(SecretSource::Env("GONGKAI_TEST_MQTT_PASSWORD".into())),
        ca_file: None,
    };
    let env = |name: &str| (name == "GONGKAI_TEST_MQTT_PASSWORD").then(|| PASSWORD.to_owned());
    MqttConfig::from_model(&model, std::path::Path::new("."), env).expect("the test's config")
}

async fn connected(task: &MqttTask, limit: Duration) {
    let connection = task.connection();
    wait_until(limit, "the link to connect to the broker", || {
        connection.borrow().connected
    })
    .await;
}

/// Connects as a fresh client, subscribes to `topic`, and returns the retained message the
/// broker hands over (`None` if none comes within `window` after the SUBACK).
pub(crate) async fn retained(port: u16, topic: &str, window: Duration) -> Option<Vec<u8>> {
    let mut options = MqttOptions::new(format!("reader-{}", free_port()), "127.0.0.1", port);
    options
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_credentials("board", "board-secret");
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let mut deadline = Instant::now() + Duration::from_secs(10);
    let mut subscribed = false;
    let result = loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll()).await;
        match event {
            Err(_) => break None,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client.try_subscribe(topic, QoS::AtLeastOnce).ok()?;
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !subscribed => {
                subscribed = true;
                deadline = Instant::now() + window;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == topic && p.retain => {
                break Some(p.payload.to_vec());
            }
            Ok(Ok(_)) => {}
            // The broker is not there (yet): no retained message from it.
            Ok(Err(_)) => break None,
        }
    };
    let _ = client.try_disconnect();
    result
}

/// Polls for the retained frame of `topic` until it decodes to `want`.
async fn wait_retained_frame(port: u16, topic: &str, want: &Frame, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(payload) = retained(port, topic, Duration::from_millis(500)).await
            && decode_frame(&payload).is_ok_and(|(_, frame)| frame == *want)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the retained frame on {topic}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_link(port: u16, topics: &[&str]) -> (MqttTask, Vec<MqttDisplay>) {
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    mqtt::spawn(&config(port), &topics).expect("the link starts")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[test]
fn a_touchscreen_frame_travels_as_png_and_comes_back_exact() {
    use gongkai::link::mqtt::{Encoding, PayloadError, encode_frame_as};
    let frame = picture(1080, 1920, PixelFormat::Rgb888, 7);
    let payload = encode_frame_as(&frame, 9, 1_800_000_000, Encoding::Png).expect("encodes");
    // The header says PNG (byte 10), and the body is a PNG file, smaller than packed.
    assert_eq!(payload[10], 1);
    assert_eq!(&payload[24..32], b"\x89PNG\r\n\x1a\n");
    // (A test pattern compresses worst; a page of text on a plain ground far better.)
    assert!(
        payload.len() < frame.data.len() / 2,
        "{} bytes",
        payload.len()
    );
    let (header, back) = decode_frame(&payload).expect("decodes");
    assert_eq!(header.encoding, Encoding::Png);
    assert_eq!(
        (header.width, header.height, header.content_id),
        (1080, 1920, 9)
    );
    assert_eq!(back, frame);
    // A header that disagrees with the picture inside is refused, not drawn wrong.
    let mut lying = payload.clone();
    lying[8..10].copy_from_slice(&1000u16.to_be_bytes());
    assert!(matches!(decode_frame(&lying), Err(PayloadError::Png(_))));
    // Mono boards' frames can be sent as PNG too (a browser shows them as they are).
    let mono = picture(128, 16, PixelFormat::Mono, 3);
    let payload = encode_frame_as(&mono, 1, 1, Encoding::Png).expect("encodes");
    assert_eq!(decode_frame(&payload).expect("decodes").1, mono);
}

#[test]
fn header_round_trip_and_refusals() {
    let frame = picture(128, 16, PixelFormat::Mono, 1);
    let payload = mqtt::encode_frame(&frame, 7, 1_900_000_000).expect("encodes");
    assert_eq!(payload.len(), mqtt::HEADER_LEN + 256);
    assert_eq!(&payload[..4], b"GKF1");
    let (header, decoded) = decode_frame(&payload).expect("decodes");
    assert_eq!(decoded, frame);
    assert_eq!(
        (
            header.width,
            header.height,
            header.content_id,
            header.valid_until
        ),
        (128, 16, 7, 1_900_000_000)
    );
    // The example in docs/links.md.
    let example = mqtt::encode_frame(&frame, 1, 1_800_000_000).expect("encodes");
    assert_eq!(
        example[..mqtt::HEADER_LEN],
        [
            0x47, 0x4B, 0x46, 0x31, 0x01, 0x00, 0x00, 0x80, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x6B, 0x49, 0xD2, 0x00
        ]
    );
    assert!(decode_frame(&payload[..payload.len() - 1]).is_err());
    assert!(decode_frame(&payload[..10]).is_err());
    let mut bad = payload.clone();
    bad[0] = b'X';
    assert!(decode_frame(&bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_reaches_the_emulator_exactly_and_late_subscribers_at_once() {
    let broker = TestBroker::start().await;
    let topic = "town/window-1";
    let topics = DisplayTopics::new(PREFIX, topic);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("a temporary directory");
    let shown_png = out.path().join(gongkai::cli::emulate::SHOWN_PNG);
    let url = format!("mqtt://board@127.0.0.1:{}/{PREFIX}", broker.port);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["--site", root.to_str().expect("utf-8 path"), "emulate"])
        .args(["--mqtt", &url, "--topic", topic])
        .arg("--profile")
        .arg(root.join("hw-profiles/strip-mono-128x16.yaml"))
        .arg("--out")
        .arg(out.path())
        .env("GONGKAI_MQTT_PASSWORD", "board-secret")
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gongkai emulate");

    let (task, mut displays) = spawn_link(broker.port, &[topic]);
    connected(&task, Duration::from_secs(5)).await;
    let status = displays[0].status();
    // The board says it is online (retained), which the link follows.
    wait_until(Duration::from_secs(10), "the board's status", || {
        status.borrow().as_deref() == Some("online")
    })
    .await;

    let frame = picture(128, 16, PixelFormat::Mono, 3);
    let before = unix_now();
    let delivery = displays[0].show(&frame, VALID).await.expect("shown");
    let mut expected = Vec::new();
    gongkai::preview::write_png(&frame, &gongkai::preview::LedLook::default(), &mut expected)
        .expect("png");
    wait_until(Duration::from_secs(5), "the emulator's picture", || {
        std::fs::read(&shown_png).is_ok_and(|png| png == expected)
    })
    .await;
    let content = format!("shown {}", delivery.generation());
    wait_until(Duration::from_secs(5), "the board's report", || {
        status.borrow().as_deref() == Some(content.as_str())
    })
    .await;

    // A board that connects now gets the frame at once, byte for byte.
    let payload = retained(broker.port, &topics.frame, Duration::from_secs(2))
        .await
        .expect("a retained frame");
    let (header, got) = decode_frame(&payload).expect("a valid payload");
    assert_eq!(got, frame);
    assert_eq!((header.width, header.height), (128, 16));
    assert_eq!(header.format, PixelFormat::Mono);
    assert_eq!(u64::from(header.content_id), delivery.generation());
    let until = before + VALID.as_secs();
    assert!(
        (until..=until + 5).contains(&header.valid_until),
        "{header:?}"
    );
    let daemon = retained(
        broker.port,
        &mqtt::daemon_status_topic(PREFIX),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(daemon.as_deref(), Some(&b"online"[..]));
    let counters = displays[0].counters();
    assert_eq!(counters.frames, 1);
    assert!(counters.last_ack.is_some());

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("the emulator's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Board subscribed to"), "{stdout}");
    assert!(stdout.contains("1 frame(s) shown"), "{stdout}");
    assert!(stdout.contains("0 payload(s) refused"), "{stdout}");
    // Its will, or its goodbye: the board is offline.
    wait_until(Duration::from_secs(5), "the board's offline status", || {
        status.borrow().as_deref() == Some("offline")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hd_rgb888_frame_fits() {
    let broker = TestBroker::start().await;
    let (task, mut displays) = spawn_link(broker.port, &["lobby/kiosk"]);
    connected(&task, Duration::from_secs(5)).await;
    let frame = picture(1080, 1920, PixelFormat::Rgb888, 2);
    assert_eq!(frame.data.len(), 6_220_800);
    displays[0].show(&frame, VALID).await.expect("shown");
    let topic = displays[0].topics().frame.clone();
    wait_retained_frame(broker.port, &topic, &frame, Duration::from_secs(30)).await;
    assert_eq!(task.connection().borrow().errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_is_current_again_within_5_s_of_the_brokers_return() {
    let mut broker = TestBroker::start().await;
    let (task, mut displays) = spawn_link(broker.port, &["town/a", "town/b"]);
    connected(&task, Duration::from_secs(5)).await;
    let (a1, b1) = (
        picture(128, 16, PixelFormat::Mono, 1),
        picture(64, 32, PixelFormat::Rgb565, 2),
    );
    displays[0].show(&a1, VALID).await.expect("shown");
    displays[1].show(&b1, VALID).await.expect("shown");
    let (topic_a, topic_b) = (
        displays[0].topics().frame.clone(),
        displays[1].topics().frame.clone(),
    );
    wait_retained_frame(broker.port, &topic_a, &a1, Duration::from_secs(5)).await;
    wait_retained_frame(broker.port, &topic_b, &b1, Duration::from_secs(5)).await;

    broker.kill().await;
    let connection = task.connection();
    wait_until(Duration::from_secs(5), "the link to notice", || {
        !connection.borrow().connected
    })
    .await;
    // A new picture while the broker is away: it must be the one the new broker gets.
    let a2 = picture(128, 16, PixelFormat::Mono, 5);
    displays[0].show(&a2, VALID).await.expect("shown");
    // Let the back-off grow to its cap, so the test measures the worst case.
    let errors = connection.borrow().errors;
    wait_until(Duration::from_secs(10), "a few failed reconnects", || {
        connection.borrow().errors >= errors + 5
    })
    .await;

    broker.restart().await;
    let back = Instant::now();
    wait_retained_frame(broker.port, &topic_a, &a2, Duration::from_secs(5)).await;
    wait_retained_frame(broker.port, &topic_b, &b1, Duration::from_secs(1)).await;
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "{:?}",
        back.elapsed()
    );
    let daemon = retained(
        broker.port,
        &mqtt::daemon_status_topic(PREFIX),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(daemon.as_deref(), Some(&b"online"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_clears_the_retained_frame() {
    let broker = TestBroker::start().await;
    let (task, mut displays) = spawn_link(broker.port, &["town/a"]);
    connected(&task, Duration::from_secs(5)).await;
    let frame = picture(128, 16, PixelFormat::Mono, 4);
    displays[0].show(&frame, VALID).await.expect("shown");
    displays[0].brightness(9).await.expect("brightness");
    let topics = displays[0].topics().clone();
    wait_retained_frame(broker.port, &topics.frame, &frame, Duration::from_secs(5)).await;
    let level = retained(broker.port, &topics.brightness, Duration::from_secs(2)).await;
    assert_eq!(level.as_deref(), Some(&b"9"[..]));

    displays[0].clear().await.expect("cleared");
    // Generation 1 was the frame, 2 is the withdrawal.
    wait_until(Duration::from_secs(5), "the withdrawal to go out", || {
        displays[0].published() >= 2
    })
    .await;
    // No retained frame any more: a board that connects now shows nothing. (Absence can
    // only be seen as nothing arriving for a while; a late message would fail the test.)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = retained(broker.port, &topics.frame, Duration::from_secs(1)).await;
        if got.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retained frame is still there"
        );
    }
}

/// Debian's mosquitto, as `.ci/run` starts it (`message_size_limit` raised, no password).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto on 127.0.0.1:1883 (started by .ci/run)"]
async fn mosquitto_keeps_the_retained_frame() {
    let mut config = config(1883);
    config.username = None;
    config.password = None;
    let topic = format!("interop/{}", free_port());
    let (task, mut displays) = mqtt::spawn(&config, &[topic]).expect("the link starts");
    // Fails, not passes, when no broker is there.
    connected(&task, Duration::from_secs(10)).await;
    let frame = picture(1080, 1920, PixelFormat::Rgb888, 6);
    let delivery = displays[0].show(&frame, VALID).await.expect("shown");
    let frame_topic = displays[0].topics().frame.clone();
    wait_until(Duration::from_secs(30), "the publish", || {
        displays[0].published() == delivery.generation()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let topic = frame_topic.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", "1883", "-t", &topic])
                .args(["--retained-only", "-C", "1", "-W", "10", "-N"])
                .output()
        })
        .await
        .expect("join")
        .expect("mosquitto_sub runs (apt-get install mosquitto-clients)");
        if output.status.success()
            && decode_frame(&output.stdout).is_ok_and(|(_, got)| got == frame)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub did not read the frame back: {} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_display_says_offline_and_ends_the_link() {
    let broker = TestBroker::start().await;
    let (task, displays) = spawn_link(broker.port, &["town/a", "town/b"]);
    connected(&task, Duration::from_secs(5)).await;
    let topic = mqtt::daemon_status_topic(PREFIX);
    let online = retained(broker.port, &topic, Duration::from_secs(2)).await;
    assert_eq!(online.as_deref(), Some(&b"online"[..]));
    drop(displays);
    // Generous: on a loaded machine a publish in flight may wait out a reconnect back-off
    // (capped at 2 s) and the goodbye another second before the link ends.
    tokio::time::timeout(Duration::from_secs(15), task.handle)
        .await
        .expect("the link ends")
        .expect("without a panic");
    let offline = retained(broker.port, &topic, Duration::from_secs(2)).await;
    assert_eq!(offline.as_deref(), Some(&b"offline"[..]));
}

/// `openssl` with `args` in `dir`; fails the test, saying what to install, if it cannot run.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A county's own mosquitto with TLS, its certificate signed by the county's own CA (no public
/// CA issues certificates for 127.0.0.1 or a private host name): with `ca_file` the link
/// verifies the broker against that CA and delivers; with the system's roots it refuses the
/// broker and never connects; a `ca_file` that holds no certificate is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto and openssl"]
async fn a_tls_broker_signed_by_the_sites_own_ca_is_trusted_through_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    openssl(
        path,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=gongkai test county CA",
        ],
    );
    openssl(
        path,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        path.join("broker.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    openssl(
        path,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.pem",
            "-days",
            "2",
            "-extfile",
            "broker.ext",
        ],
    );
    let port = free_port();
    let conf = format!(
        "listener {port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/broker.pem\nkeyfile {0}/broker.key\nallow_anonymous true\npersistence false\nmessage_size_limit 0\n",
        path.display()
    );
    std::fs::write(path.join("mosquitto.conf"), conf).expect("write");
    // As root (CI) mosquitto switches to its own user, who must read the files.
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(path).expect("dir") {
        let entry = entry.expect("entry");
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    struct Broker(std::process::Child);
    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _broker = Broker(
        std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(path.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("/usr/sbin/mosquitto runs (apt-get install mosquitto)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let model = |ca_file: Option<&str>| Mqtt {
        host: "127.0.0.1".into(),
        port,
        tls: true,
        client_id: format!("gongkai-tls-{}", free_port()),
        topic_prefix: PREFIX.into(),
        username: None,
        password: None,
        ca_file: ca_file.map(str::to_owned),
    };

    // The site's own CA: connects, and the frame is there for a subscriber who trusts it too.
    let config = MqttConfig::from_model(&model(Some("ca.pem")), path, |_| None).expect("config");
    let (task, mut displays) = mqtt::spawn(&config, &["tls/board".to_owned()]).expect("the link");
    connected(&task, Duration::from_secs(10)).await;
    let frame = picture(64, 32, PixelFormat::Rgb888, 7);
    let delivery = displays[0].show(&frame, VALID).await.expect("shown");
    wait_until(Duration::from_secs(10), "the publish", || {
        displays[0].published() == delivery.generation()
    })
    .await;
    let topic = displays[0].topics().frame.clone();
    let ca = path.join("ca.pem");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", &topic])
            .arg("--cafile")
            .arg(&ca)
            .args(["--retained-only", "-C", "1", "-W", "10", "-N"])
            .output()
    })
    .await
    .expect("join")
    .expect("mosquitto_sub runs (apt-get install mosquitto-clients)");
    assert!(
        decode_frame(&output.stdout).is_ok_and(|(_, got)| got == frame),
        "mosquitto_sub over TLS: {} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // The system's roots do not know the county's CA: the link never connects.
    let config = MqttConfig::from_model(&model(None), path, |_| None).expect("config");
    let (untrusting, _displays) =
        mqtt::spawn(&config, &["tls/other".to_owned()]).expect("the link");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connection = untrusting.connection().borrow().clone();
    assert!(
        !connection.connected && connection.connects == 0 && connection.errors > 0,
        "{connection:?}"
    );

    // A CA file that holds no certificate is refused, naming the file.
    std::fs::write(path.join("empty.pem"), "not a certificate\n").expect("write");
    let refused = MqttConfig::from_model(&model(Some("empty.pem")), path, |_| None)
        .expect_err("no certificate");
    assert!(refused.to_string().contains("empty.pem"), "{refused}");
}
