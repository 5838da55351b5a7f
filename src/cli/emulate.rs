//! `gongkai emulate`: the reference board on a serial device or on MQTT, for tests and
//! firmware authors.
//!
//! Owns the command's I/O: loading the hardware profile, opening the device or subscribing to
//! the display's topics, writing what the board shows as PNG, and the operator's messages.
//! The serial board itself is [`crate::emulator`], and the MQTT topics and frame header are
//! [`crate::link::mqtt`]'s; this file must not decide anything about either protocol.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_serial::SerialPortBuilderExt;

use super::Exit;
use crate::config::model::{Profile, Protocol};
use crate::emulator::{Board, BoardConfig, lock, serve};
use crate::i18n::{Lang, tr};
use crate::preview::{LedLook, write_png};
use crate::raster::frame::Frame;

/// The picture the board shows, rewritten on every change.
pub const SHOWN_PNG: &str = "shown.png";

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// The serial device; `None` with `mqtt`.
    pub port: Option<PathBuf>,
    /// The RS-485 address on the serial device.
    pub address: Option<u8>,
    pub profile: PathBuf,
    pub out: PathBuf,
    /// Default: the profile's first baud rate, else 115,200.
    pub baud: Option<u32>,
    /// A board on MQTT instead of a serial device.
    pub mqtt: Option<MqttSource>,
}

/// `--mqtt URL --topic T`.
#[derive(Debug, Clone)]
pub struct MqttSource {
    /// `mqtt://[user@]host[:port][/prefix]` or `mqtts://…` (TLS); the password of `user` is
    /// read from `GONGKAI_MQTT_PASSWORD`. The path is the site's topic prefix (default
    /// `gongkai`).
    pub url: String,
    /// The display's `link: { mqtt: … }` value.
    pub topic: String,
}

/// Runs the board until SIGINT (exit 0) or until the device fails (exit 3).
pub fn run(site: &Path, options: &Options, lang: Lang) -> Exit {
    let Some(profile) = load_profile(site, &options.profile, lang) else {
        return Exit::Problems;
    };
    if let Some(source) = &options.mqtt {
        return run_mqtt(source, options, &profile, lang);
    }
    let (Some(port), Some(address)) = (&options.port, options.address) else {
        // clap requires both without --mqtt; a caller that builds Options itself may not.
        return Exit::Usage;
    };
    if profile.protocol != Protocol::Gongkai {
        let name = options.profile.display().to_string();
        eprintln!("{}", tr(lang, "emulate.not_gongkai", &[("profile", &name)]));
        return Exit::Failed;
    }
    let baud = options
        .baud
        .or_else(|| profile.bauds.first().copied())
        .unwrap_or(115_200);
    let Some(runtime) = prepare(&options.out, lang) else {
        return Exit::Failed;
    };
    runtime.block_on(emulate(port, address, options, &profile, baud, lang))
}

async fn emulate(
    port: &Path,
    address: u8,
    options: &Options,
    profile: &Profile,
    baud: u32,
    lang: Lang,
) -> Exit {
    let port_name = port.display().to_string();
    let port = match tokio_serial::new(port_name.as_str(), baud).open_native_async() {
        Ok(port) => port,
        Err(error) => {
            let reason = error.to_string();
            eprintln!(
                "{}",
                tr(
                    lang,
                    "emulate.open_failed",
                    &[("port", &port_name), ("reason", &reason)]
                )
            );
            return Exit::Failed;
        }
    };
    let epoch = tokio::time::Instant::now();
    let board = Arc::new(Mutex::new(Board::new(
        BoardConfig::from_profile(profile, address),
        0,
    )));
    let mut shown = ShownPng::new(&options.out, profile, lang);
    let mut draw = |frame: &Frame| shown.draw(frame);
    draw(&lock(&board).picture());
    let (address, baud_text) = (address.to_string(), baud.to_string());
    let out_dir = options.out.display().to_string();
    println!(
        "{}",
        tr(
            lang,
            "emulate.listening",
            &[
                ("port", &port_name),
                ("address", &address),
                ("baud", &baud_text),
                ("out", &out_dir)
            ]
        )
    );
    let exit = tokio::select! {
        served = serve(port, board.clone(), baud, epoch, &mut draw) => {
            let reason = match served {
                Ok(()) => String::new(),
                Err(error) => error.to_string(),
            };
            eprintln!("{}", tr(lang, "emulate.port_gone", &[("port", &port_name), ("reason", &reason)]));
            Exit::Failed
        }
        _ = tokio::signal::ctrl_c() => Exit::Ok,
    };
    let counts = lock(&board).counts();
    let values = [
        counts.frames.to_string(),
        counts.bytes.to_string(),
        counts.crc_errors.to_string(),
        counts.rx_errors.to_string(),
        counts.naks.to_string(),
    ];
    println!(
        "{}",
        tr(
            lang,
            "emulate.counts",
            &[
                ("frames", &values[0]),
                ("bytes", &values[1]),
                ("crc_errors", &values[2]),
                ("rx_errors", &values[3]),
                ("naks", &values[4]),
            ]
        )
    );
    exit
}

/// `DIR/shown.png`, rewritten whenever the board's picture changes, on either kind of board.
struct ShownPng {
    look: LedLook,
    path: PathBuf,
    lang: Lang,
    /// A write failure is reported once: the board keeps working without its pictures.
    failed: bool,
}

impl ShownPng {
    fn new(out: &Path, profile: &Profile, lang: Lang) -> ShownPng {
        let look = LedLook {
            scale: LedLook::default().scale,
            led_color: profile.led_color,
        };
        ShownPng {
            look,
            path: out.join(SHOWN_PNG),
            lang,
            failed: false,
        }
    }

    fn draw(&mut self, frame: &Frame) {
        if let Err(reason) = save(frame, &self.look, &self.path)
            && !self.failed
        {
            self.failed = true;
            let path = self.path.display().to_string();
            eprintln!(
                "{}",
                tr(
                    self.lang,
                    "emulate.png_failed",
                    &[("path", &path), ("reason", &reason)]
                )
            );
        }
    }
}

/// Writes the picture beside its final name and renames it, so a viewer never reads half a
/// PNG.
fn save(frame: &Frame, look: &LedLook, path: &Path) -> Result<(), String> {
    let partial = path.with_extension("png.partial");
    let mut bytes = Vec::new();
    write_png(frame, look, &mut bytes).map_err(|e| e.to_string())?;
    std::fs::write(&partial, &bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}

/// What both kinds of board need before they run: the output folder and a runtime. Problems
/// are reported on stderr.
fn prepare(out: &Path, lang: Lang) -> Option<tokio::runtime::Runtime> {
    if let Err(error) = std::fs::create_dir_all(out) {
        let (path, reason) = (out.display().to_string(), error.to_string());
        eprintln!(
            "{}",
            tr(
                lang,
                "emulate.out_failed",
                &[("path", &path), ("reason", &reason)]
            )
        );
        return None;
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            let reason = error.to_string();
            eprintln!("{}", tr(lang, "emulate.failed", &[("reason", &reason)]));
            None
        }
    }
}

/// A profile file on its own (the site's `fonts/` only matter for its font reference).
fn load_profile(site: &Path, path: &Path, lang: Lang) -> Option<Profile> {
    super::load_profile_file(site, path, lang, "emulate.profile_unreadable")
}

/// Why `--mqtt` cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL must start with mqtt:// or mqtts://")]
    Scheme,
    #[error("the URL names no host")]
    Host,
    #[error("the port is not a number from 1 to 65535")]
    Port,
}

/// `--mqtt` read: where the broker is and the site's topic prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    pub tls: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

/// Reads `mqtt://[user@]host[:port][/prefix]` (mqtts: TLS, default port 8883). A password in
/// the URL is refused by omission: it would sit in the shell history and the process list.
pub fn parse_mqtt_url(url: &str) -> Result<MqttUrl, UrlError> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else {
        return Err(UrlError::Scheme);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user.to_owned()), hostport),
        None => (None, authority),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or(UrlError::Port)?,
        ),
        None => (hostport, default_port),
    };
    if host.is_empty() {
        return Err(UrlError::Host);
    }
    let prefix = path.trim_matches('/');
    Ok(MqttUrl {
        tls,
        user,
        host: host.to_owned(),
        port,
        prefix: if prefix.is_empty() { "gongkai" } else { prefix }.to_owned(),
    })
}

fn run_mqtt(source: &MqttSource, options: &Options, profile: &Profile, lang: Lang) -> Exit {
    let url = match parse_mqtt_url(&source.url) {
        Ok(url) => url,
        Err(error) => {
            let reason = error.to_string();
            eprintln!(
                "{}",
                tr(
                    lang,
                    "emulate.mqtt.bad_url",
                    &[("url", &source.url), ("reason", &reason)]
                )
            );
            return Exit::Usage;
        }
    };
    let Some(runtime) = prepare(&options.out, lang) else {
        return Exit::Failed;
    };
    runtime.block_on(emulate_mqtt(&url, &source.topic, options, profile, lang))
}

/// What the MQTT board did, printed on Ctrl-C.
#[derive(Debug, Default)]
struct MqttCounts {
    frames: u64,
    bytes: u64,
    refused: u64,
}

async fn emulate_mqtt(
    url: &MqttUrl,
    topic: &str,
    options: &Options,
    profile: &Profile,
    lang: Lang,
) -> Exit {
    use crate::link::mqtt::{self, DisplayTopics, MqttConfig};
    use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};

    let topics = DisplayTopics::new(&url.prefix, topic);
    let config = MqttConfig {
        host: url.host.clone(),
        port: url.port,
        tls: url.tls,
        client_id: format!("gongkai-emulate-{}", std::process::id()),
        topic_prefix: url.prefix.clone(),
        username: url.user.clone(),
        password: std::env::var("GONGKAI_MQTT_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(crate::sms::secret::Secret::new),
        backoff_cap: mqtt::BACKOFF_CAP,
        ca: None,
    };
    let will = LastWill::new(&topics.status, "offline", QoS::AtLeastOnce, true);
    let options_mqtt = match config.options(will) {
        Ok(o) => o,
        Err(error) => {
            let reason = error.to_string();
            eprintln!("{}", tr(lang, "emulate.failed", &[("reason", &reason)]));
            return Exit::Failed;
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options_mqtt, 16);
    let blank = Frame::new(profile.width, profile.height, profile.pixel);
    let mut shown = ShownPng::new(&options.out, profile, lang);
    let mut draw = |frame: &Frame| shown.draw(frame);
    draw(&blank);
    let out_dir = options.out.display().to_string();
    let broker = format!("{}:{}", url.host, url.port);
    println!(
        "{}",
        tr(
            lang,
            "emulate.mqtt.listening",
            &[
                ("broker", &broker),
                ("topic", &topics.frame),
                ("out", &out_dir)
            ]
        )
    );
    let mut counts = MqttCounts::default();
    // What the board shows: its picture and when it expires (Unix seconds).
    let mut shown: Option<(Frame, u64)> = None;
    let mut power_on = true;
    let mut backoff = Duration::from_millis(100);
    let status = |text: String| {
        // Never blocks the loop that drains the channel: a full channel drops a report,
        // and the next one says the same.
        let _ = client.try_publish(&topics.status, QoS::AtLeastOnce, true, text);
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let expiry = shown.as_ref().map(|(_, until)| *until);
        tokio::select! {
            _ = &mut ctrl_c => break,
            () = expire(expiry) => {
                shown = None;
                draw(&blank);
                status("blank".into());
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    // A clean session: subscribe again after every connect.
                    for t in [&topics.frame, &topics.brightness, &topics.power] {
                        let _ = client.try_subscribe(t, QoS::AtLeastOnce);
                    }
                    status("online".into());
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let payload = &publish.payload;
                    if publish.topic == topics.power {
                        power_on = payload.as_ref() != b"off";
                        match (&shown, power_on) {
                            (Some((frame, _)), true) => draw(frame),
                            _ => draw(&blank),
                        }
                    } else if publish.topic == topics.frame {
                        counts.bytes += payload.len() as u64;
                        if payload.is_empty() {
                            // Withdrawn: the retained frame was deleted.
                            shown = None;
                            draw(&blank);
                            status("blank".into());
                            continue;
                        }
                        match mqtt::decode_frame(payload) {
                            Ok((header, frame))
                                if frame.width == profile.width
                                    && frame.height == profile.height
                                    && frame.format == profile.pixel =>
                            {
                                counts.frames += 1;
                                if power_on {
                                    draw(&frame);
                                }
                                shown = Some((frame, header.valid_until));
                                status(format!("shown {}", header.content_id));
                            }
                            Ok(_) => {
                                counts.refused += 1;
                                status("error size".into());
                            }
                            Err(error) => {
                                counts.refused += 1;
                                status(format!("error {error}"));
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    // rumqttc reconnects on the next poll; without a pause it spins.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(mqtt::BACKOFF_CAP);
                }
            },
        }
    }
    let _ = client.try_publish(&topics.status, QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    let values = [
        counts.frames.to_string(),
        counts.bytes.to_string(),
        counts.refused.to_string(),
    ];
    println!(
        "{}",
        tr(
            lang,
            "emulate.mqtt.counts",
            &[
                ("frames", &values[0]),
                ("bytes", &values[1]),
                ("refused", &values[2]),
            ]
        )
    );
    Exit::Ok
}

/// Waits until `until` (Unix seconds) has passed; forever for `None`.
async fn expire(until: Option<u64>) {
    let Some(until) = until else {
        return std::future::pending().await;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(Duration::ZERO, |d| d);
    let left = Duration::from_secs(until).saturating_sub(now);
    tokio::time::sleep(left).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        let url = parse_mqtt_url("mqtt://board@127.0.0.1:1884/county/a").expect("valid");
        assert_eq!(
            url,
            MqttUrl {
                tls: false,
                user: Some("board".into()),
                host: "127.0.0.1".into(),
                port: 1884,
                prefix: "county/a".into(),
            }
        );
        let url = parse_mqtt_url("mqtts://broker.example").expect("valid");
        assert_eq!(
            (url.tls, url.port, url.prefix.as_str()),
            (true, 8883, "gongkai")
        );
        assert_eq!(parse_mqtt_url("tcp://x"), Err(UrlError::Scheme));
        assert_eq!(parse_mqtt_url("mqtt://:1883"), Err(UrlError::Host));
        assert_eq!(parse_mqtt_url("mqtt://h:0"), Err(UrlError::Port));
    }
}
