//! The MQTT link: one broker connection per site, one [`MqttDisplay`] per display.
//!
//! Owns the topic tree, the frame payload's header, the connection (credentials, TLS, the
//! raised packet limit, the capped back-off after errors) and republishing every display's
//! retained state after a reconnect. `docs/links.md` ("MQTT link") documents the topic tree
//! and the header for board authors; `docs/scaling.md` says why the design scales.
//!
//! Must not touch: what a frame shows (`crate::raster`), the schedule, or where a secret is
//! kept (`crate::sms::secret` reads it; it is never logged or put in an error). Like every
//! link it holds only the newest frame per display (ARCHITECTURE.md, invariant 4): a display's
//! state is a `watch` value, and the broker's retained message is the board's queue.
//!
//! # Topic tree (below the site's `topic_prefix`, default `gongkai`)
//!
//! | topic | who publishes | QoS, retain | payload |
//! |---|---|---|---|
//! | `<prefix>/display/<topic>/frame` | daemon | 1, retained | [`FrameHeader`] + packed frame; empty = withdrawn |
//! | `<prefix>/display/<topic>/cmd/brightness` | daemon | 1, retained | decimal level, `0`–`255` |
//! | `<prefix>/display/<topic>/cmd/power` | daemon | 1, retained | `on` or `off` |
//! | `<prefix>/display/<topic>/status` | board | 1, retained | `online`, `shown <content id>`, `blank`, `error <reason>`, `offline` (its will) |
//! | `<prefix>/daemon/status` | daemon | 1, retained | `online`; `offline` (its will, and on shutdown) |

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{
    Counters, CountersSnapshot, Delivery, DesiredState, Link, LinkError, Settings, valid_for_secs,
};
use crate::config::model::{Mqtt, PixelFormat};
use crate::protocol::gongkai::{format_code, format_from_code};
use crate::raster::frame::Frame;
use crate::sms::secret::{self, Secret, SecretError};

/// Largest packet the client sends or accepts: a 1080×1920 rgb888 frame (6,220,800 bytes)
/// plus header and topic, with room to spare. rumqttc's default (10 KiB) would make every
/// frame publish fail with `OutgoingPacketTooLarge`. The broker must allow as much
/// (mosquitto: `message_size_limit`; EMQX: `mqtt.max_packet_size`).
pub const MAX_PACKET: usize = 8 * 1024 * 1024;

/// First pause after a connection error; doubles up to the configured cap. Without a pause
/// rumqttc reconnects in a tight loop.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Default cap of the back-off: a returning broker sees the daemon within 2 s.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// The four bytes that open every frame payload.
pub const MAGIC: [u8; 4] = *b"GKF1";
/// Bytes of [`FrameHeader`] on the wire.
pub const HEADER_LEN: usize = 24;
const HEADER_VERSION: u8 = 1;

/// The small header in front of the packed frame on a `…/frame` topic. All integers are
/// big-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `GKF1` |
/// | 4 | 1 | header version, 1 |
/// | 5 | 1 | pixel format: 0 mono, 1 bicolor, 2 rgb565, 3 rgb888 (as `docs/protocol.md`) |
/// | 6 | 2 | width in pixels |
/// | 8 | 2 | height in pixels |
/// | 10 | 1 | encoding: 0 the frame packed as on the serial wire, 1 a PNG file of it |
/// | 11 | 1 | reserved, 0 |
/// | 12 | 4 | content id: increases with every new picture of the display |
/// | 16 | 8 | valid until, Unix seconds (UTC); the board blanks after it |
/// | 24 | … | encoding 0: the frame packed as on the serial wire (`raster::frame`), exactly its
/// length; encoding 1: a PNG file (8-bit RGB) of the picture, for screens that show images |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub width: u16,
    pub height: u16,
    pub format: PixelFormat,
    pub encoding: Encoding,
    pub content_id: u32,
    pub valid_until: u64,
}

/// How the picture follows the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Packed as on the serial wire: LED controllers take it as it is.
    #[default]
    Packed,
    /// A PNG file: touchscreens and browsers show it as it is, and a full-HD picture is a
    /// fraction of its 6.2 MB packed size.
    Png,
}

impl Encoding {
    fn code(self) -> u8 {
        match self {
            Encoding::Packed => 0,
            Encoding::Png => 1,
        }
    }
}

/// Why a frame payload cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("payload does not start with GKF1")]
    Magic,
    #[error("header version {0} is not 1")]
    Version(u8),
    #[error("unknown pixel format {0}")]
    Format(u8),
    #[error("frame of {width}×{height} does not fit the header's 16-bit size")]
    TooWide { width: u32, height: u32 },
    #[error("frame data is {got} bytes; {width}×{height} needs {expected}")]
    Length {
        width: u16,
        height: u16,
        expected: usize,
        got: usize,
    },
    #[error("payload of {0} bytes exceeds the {MAX_PACKET}-byte packet limit")]
    TooLarge(usize),
    #[error("unknown encoding {0}")]
    Encoding(u8),
    #[error("PNG: {0}")]
    Png(String),
}

/// Builds a frame payload: header, then the packed frame.
pub fn encode_frame(
    frame: &Frame,
    content_id: u32,
    valid_until: u64,
) -> Result<Vec<u8>, PayloadError> {
    encode_frame_as(frame, content_id, valid_until, Encoding::Packed)
}

/// Builds a frame payload with the picture in `encoding`.
pub fn encode_frame_as(
    frame: &Frame,
    content_id: u32,
    valid_until: u64,
    encoding: Encoding,
) -> Result<Vec<u8>, PayloadError> {
    let (Ok(width), Ok(height)) = (u16::try_from(frame.width), u16::try_from(frame.height)) else {
        return Err(PayloadError::TooWide {
            width: frame.width,
            height: frame.height,
        });
    };
    let png;
    let body: &[u8] = match encoding {
        Encoding::Packed => &frame.data,
        Encoding::Png => {
            png = encode_png(frame)?;
            &png
        }
    };
    let len = HEADER_LEN + body.len();
    // The topic and fixed header take a few hundred bytes at most.
    if len > MAX_PACKET - 1024 {
        return Err(PayloadError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.push(HEADER_VERSION);
    out.push(format_code(frame.format));
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[encoding.code(), 0]);
    out.extend_from_slice(&content_id.to_be_bytes());
    out.extend_from_slice(&valid_until.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// The picture as an 8-bit RGB PNG, compressed for speed (a kiosk page changes every few
/// seconds; the broker and the screen care more about latency than about the last kilobyte).
fn encode_png(frame: &Frame) -> Result<Vec<u8>, PayloadError> {
    let mut rgb = Vec::with_capacity(frame.width as usize * frame.height as usize * 3);
    if frame.format == PixelFormat::Rgb888 {
        rgb.extend_from_slice(&frame.data);
    } else {
        for y in 0..frame.height {
            for x in 0..frame.width {
                let p = frame.pixel(x, y);
                rgb.extend_from_slice(&[p.0, p.1, p.2]);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| PayloadError::Png(e.to_string()))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| PayloadError::Png(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| PayloadError::Png(e.to_string()))?;
    Ok(out)
}

/// Reads a PNG body into a frame of the header's size and format.
fn decode_png(
    data: &[u8],
    width: u16,
    height: u16,
    format: PixelFormat,
) -> Result<Frame, PayloadError> {
    let png_error = |e: png::DecodingError| PayloadError::Png(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(data));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| PayloadError::Png("image too large".into()))?;
    // A header that lies about the size must not make a board allocate a huge buffer.
    let (w, h) = (reader.info().width, reader.info().height);
    if (w, h) != (u32::from(width), u32::from(height)) {
        return Err(PayloadError::Png(format!(
            "picture is {w}×{h}, the header says {width}×{height}"
        )));
    }
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).map_err(png_error)?;
    let channels = info.color_type.samples();
    let mut frame = Frame::new(w, h, format);
    for y in 0..h {
        for x in 0..w {
            let at = (y as usize * info.line_size) + x as usize * channels;
            let px = &buffer[at..at + channels.min(3)];
            let rgb = match px {
                [r, g, b] => crate::config::model::Rgb(*r, *g, *b),
                [v, ..] => crate::config::model::Rgb(*v, *v, *v),
                [] => crate::config::model::Rgb(0, 0, 0),
            };
            frame.set_pixel(x, y, rgb);
        }
    }
    Ok(frame)
}

/// Reads a frame payload. The data must be exactly as long as the header's size and format
/// need, so a truncated or padded payload is refused rather than drawn wrong.
pub fn decode_frame(payload: &[u8]) -> Result<(FrameHeader, Frame), PayloadError> {
    let Some((head, data)) = payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(PayloadError::Short(payload.len()));
    };
    if head[0..4] != MAGIC {
        return Err(PayloadError::Magic);
    }
    if head[4] != HEADER_VERSION {
        return Err(PayloadError::Version(head[4]));
    }
    let format = format_from_code(head[5]).ok_or(PayloadError::Format(head[5]))?;
    let width = u16::from_be_bytes([head[6], head[7]]);
    let height = u16::from_be_bytes([head[8], head[9]]);
    let content_id = u32::from_be_bytes([head[12], head[13], head[14], head[15]]);
    let mut until = [0; 8];
    until.copy_from_slice(&head[16..24]);
    let valid_until = u64::from_be_bytes(until);
    let encoding = match head[10] {
        0 => Encoding::Packed,
        1 => Encoding::Png,
        other => return Err(PayloadError::Encoding(other)),
    };
    if encoding == Encoding::Png {
        let frame = decode_png(data, width, height, format)?;
        let header = FrameHeader {
            width,
            height,
            format,
            encoding,
            content_id,
            valid_until,
        };
        return Ok((header, frame));
    }
    let mut frame = Frame::new(u32::from(width), u32::from(height), format);
    if frame.data.len() != data.len() {
        return Err(PayloadError::Length {
            width,
            height,
            expected: frame.data.len(),
            got: data.len(),
        });
    }
    frame.data.copy_from_slice(data);
    let header = FrameHeader {
        width,
        height,
        format,
        encoding,
        content_id,
        valid_until,
    };
    Ok((header, frame))
}

/// The topics of one display, below the site's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayTopics {
    pub frame: String,
    pub brightness: String,
    pub power: String,
    pub status: String,
}

impl DisplayTopics {
    /// `topic` is the display's `link: { mqtt: … }` value.
    pub fn new(prefix: &str, topic: &str) -> DisplayTopics {
        let base = format!("{}/display/{}", prefix, topic.trim_matches('/'));
        DisplayTopics {
            frame: format!("{base}/frame"),
            brightness: format!("{base}/cmd/brightness"),
            power: format!("{base}/cmd/power"),
            status: format!("{base}/status"),
        }
    }
}

/// `<prefix>/daemon/status`: `online`, or `offline` from the last will.
pub fn daemon_status_topic(prefix: &str) -> String {
    format!("{prefix}/daemon/status")
}

/// Why the MQTT link could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("the MQTT password: {0}")]
    Secret(#[from] SecretError),
    #[error("a password needs a username")]
    PasswordWithoutUser,
    #[error("TLS: {0}")]
    Tls(String),
}

/// How to reach the broker. Built from the model with [`MqttConfig::from_model`], which reads
/// the password from where the model says.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub topic_prefix: String,
    pub username: Option<String>,
    /// Prints as `***`.
    pub password: Option<Secret>,
    /// Longest pause between reconnection attempts.
    pub backoff_cap: Duration,
    /// With TLS, the certificates trusted for the broker: the site's own CA, or (`None`) the
    /// system's roots.
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl MqttConfig {
    /// Reads the password (an environment variable or an owner-only file; a relative file is
    /// read from `site_dir`).
    pub fn from_model(
        mqtt: &Mqtt,
        site_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<MqttConfig, MqttError> {
        let password = match &mqtt.password {
            Some(source) => Some(secret::load(source, site_dir, env)?),
            None => None,
        };
        let ca = match &mqtt.ca_file {
            Some(path) => Some(read_ca(&site_dir.join(path))?),
            None => None,
        };
        Ok(MqttConfig {
            host: mqtt.host.clone(),
            port: mqtt.port,
            tls: mqtt.tls,
            client_id: mqtt.client_id.clone(),
            topic_prefix: mqtt.topic_prefix.clone(),
            username: mqtt.username.clone(),
            password,
            backoff_cap: BACKOFF_CAP,
            ca,
        })
    }

    /// rumqttc's options: a clean session (a persistent one would resend a refused publish
    /// forever, and the retained topics make it needless), the raised packet limit, the last
    /// will, credentials and TLS.
    pub fn options(&self, will: LastWill) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_last_will(will);
        match (&self.username, &self.password) {
            (Some(user), password) => {
                let password = password.as_ref().map_or("", Secret::expose);
                options.set_credentials(user, password);
            }
            (None, Some(_)) => return Err(MqttError::PasswordWithoutUser),
            (None, None) => {}
        }
        if self.tls {
            options.set_transport(Transport::tls_with_config(tls_config(self.ca.as_deref())?));
        }
        Ok(options)
    }
}

/// The certificates of a PEM file (a site's own CA): at least one, every block readable.
fn read_ca(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, MqttError> {
    use rustls::pki_types::pem::PemObject as _;
    let failed = |why: String| MqttError::Tls(format!("ca_file {}: {why}", path.display()));
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("no certificate in the file".into()));
    }
    Ok(certs)
}

/// rustls with the ring provider (no aws-lc C build), trusting `ca` (a site's own CA) or, without
/// one, the system's root certificates.
pub fn tls_config(
    ca: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<TlsConfiguration, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(certs) => {
            let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                return Err(MqttError::Tls("ca_file: no usable CA certificate".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(MqttError::Tls("no system root certificates".into()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// What a display should show, as its handle last said.
#[derive(Debug, Clone, Default)]
enum Desired {
    #[default]
    Unset,
    Frame {
        frame: Arc<Frame>,
        valid_for: u16,
        generation: u64,
    },
    Cleared {
        generation: u64,
    },
}

/// The connection as the link's tasks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Connected now (a CONNACK came and no error since).
    pub connected: bool,
    /// How many times the broker accepted the connection.
    pub connects: u64,
    /// Connection errors since the start.
    pub errors: u64,
}

/// One display on the site's MQTT connection: implements [`Link`].
#[derive(Debug)]
pub struct MqttDisplay {
    topics: DisplayTopics,
    desired: DesiredState<Desired>,
    published: Arc<AtomicU64>,
    counters: Arc<Counters>,
    status: watch::Receiver<Option<String>>,
}

impl MqttDisplay {
    pub fn topics(&self) -> &DisplayTopics {
        &self.topics
    }

    /// Frames handed to the broker connection (`frames`), their bytes, and `last_ack`: when
    /// the board last reported its status.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// The counters themselves, for a status page that outlives borrowing the display.
    pub fn shared_counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The board's last `…/status` payload (retained by the broker, so known at once).
    pub fn status(&self) -> watch::Receiver<Option<String>> {
        self.status.clone()
    }

    /// The newest generation this handle has asked for (a frame or a withdrawal).
    pub fn requested(&self) -> u64 {
        self.desired.generation()
    }

    /// The newest generation handed to the broker connection.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

impl Link for MqttDisplay {
    async fn show(&mut self, frame: &Frame, valid_for: Duration) -> Result<Delivery, LinkError> {
        let valid_for = valid_for_secs(valid_for)?;
        let frame = Arc::new(frame.clone());
        let (generation, previous) = self.desired.replace(|generation| Desired::Frame {
            frame,
            valid_for,
            generation,
        })?;
        self.desired.wake();
        let published = self.published();
        Ok(match previous {
            Desired::Frame { generation: p, .. } | Desired::Cleared { generation: p }
                if published < p =>
            {
                Delivery::Replaced { generation }
            }
            _ => Delivery::Queued { generation },
        })
    }

    async fn brightness(&mut self, level: u8) -> Result<(), LinkError> {
        self.desired.setting(|s| s.brightness = Some(level))
    }

    async fn power(&mut self, on: bool) -> Result<(), LinkError> {
        self.desired.setting(|s| s.power = Some(on))
    }

    /// Withdraws the picture: the retained frame is replaced by an empty retained payload,
    /// which removes it from the broker, so a board that connects later gets nothing.
    async fn clear(&mut self) -> Result<(), LinkError> {
        self.desired
            .replace(|generation| Desired::Cleared { generation })?;
        self.desired.wake();
        Ok(())
    }
}

/// The site's connection tasks. Dropping this does not stop them; dropping every
/// [`MqttDisplay`] does (the daemon then publishes `offline` and disconnects).
#[derive(Debug)]
pub struct MqttTask {
    pub handle: tokio::task::JoinHandle<()>,
    connection: watch::Receiver<Connection>,
}

impl MqttTask {
    /// Follows the connection's state.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.clone()
    }
}

/// Connects to the broker for displays on `topics` (each a display's `link: { mqtt: … }`)
/// and returns a handle per topic, in order. Must be called inside a tokio runtime.
pub fn spawn(
    config: &MqttConfig,
    topics: &[String],
) -> Result<(MqttTask, Vec<MqttDisplay>), MqttError> {
    let displays: Vec<(String, Encoding)> = topics
        .iter()
        .map(|t| (t.clone(), Encoding::Packed))
        .collect();
    spawn_encoded(config, &displays)
}

/// As [`spawn`], each display with the encoding its screen takes (PNG for touchscreens).
pub fn spawn_encoded(
    config: &MqttConfig,
    displays_wanted: &[(String, Encoding)],
) -> Result<(MqttTask, Vec<MqttDisplay>), MqttError> {
    let prefix = config.topic_prefix.trim_matches('/').to_owned();
    let daemon_topic = daemon_status_topic(&prefix);
    let will = LastWill::new(&daemon_topic, "offline", QoS::AtLeastOnce, true);
    let mut options = config.options(will)?;
    // The publisher waits for room; a few requests are enough (frames are large, and only
    // the newest matters).
    options.set_request_channel_capacity(16);
    let (client, eventloop) = AsyncClient::new(options, 16);
    let wake = Arc::new(Notify::new());
    let (connection_tx, connection_rx) = watch::channel(Connection::default());
    let mut boards = Vec::new();
    let mut displays = Vec::new();
    let mut statuses = HashMap::new();
    for (topic, encoding) in displays_wanted {
        let display_topics = DisplayTopics::new(&prefix, topic);
        let (desired, wanted_rx, settings_rx) = DesiredState::new(wake.clone());
        let (status_tx, status_rx) = watch::channel(None);
        let counters = Arc::new(Counters::default());
        let published = Arc::new(AtomicU64::new(0));
        statuses.insert(display_topics.status.clone(), (status_tx, counters.clone()));
        boards.push(Board {
            topics: display_topics.clone(),
            wanted: wanted_rx,
            settings: settings_rx,
            counters: counters.clone(),
            published: published.clone(),
            refresh_at: None,
            encoding: *encoding,
        });
        displays.push(MqttDisplay {
            topics: display_topics,
            desired,
            published,
            counters,
            status: status_rx,
        });
    }
    let driver = tokio::spawn(drive(
        eventloop,
        connection_tx,
        statuses,
        config.backoff_cap,
    ));
    let publisher = Publisher {
        client,
        daemon_topic,
        boards,
        wake,
        connection: connection_rx.clone(),
    };
    let handle = tokio::spawn(publisher.run(driver));
    Ok((
        MqttTask {
            handle,
            connection: connection_rx,
        },
        displays,
    ))
}

/// Polls the connection: rumqttc does its I/O and reconnects inside `poll`, and spins on
/// errors unless we pause, so the pause doubles up to `cap` and resets on a CONNACK.
async fn drive(
    mut eventloop: EventLoop,
    connection: watch::Sender<Connection>,
    statuses: HashMap<String, (watch::Sender<Option<String>>, Arc<Counters>)>,
    cap: Duration,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF_MIN;
                connection.send_modify(|c| {
                    c.connected = true;
                    c.connects += 1;
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some((status, counters)) = statuses.get(publish.topic.as_str()) {
                    counters.acked(std::time::Instant::now());
                    let text = String::from_utf8_lossy(&publish.payload).into_owned();
                    status.send_replace((!text.is_empty()).then_some(text));
                }
            }
            Ok(_) => {}
            // Every client handle is gone: the publisher has shut down.
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(_) => {
                // The error itself carries nothing secret, but nothing here logs; the count
                // and the state are what the daemon reports.
                connection.send_modify(|c| {
                    c.connected = false;
                    c.errors += 1;
                });
                if connection.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cap);
            }
        }
    }
}

/// The publisher's view of one display.
struct Board {
    topics: DisplayTopics,
    wanted: watch::Receiver<Desired>,
    settings: watch::Receiver<Settings>,
    counters: Arc<Counters>,
    published: Arc<AtomicU64>,
    /// When the shown frame is published again with a new valid-until (at half its
    /// `valid_for`, as the serial link's HEARTBEAT), so a live daemon's content never expires.
    refresh_at: Option<Instant>,
    encoding: Encoding,
}

struct Publisher {
    client: AsyncClient,
    daemon_topic: String,
    boards: Vec<Board>,
    wake: Arc<Notify>,
    connection: watch::Receiver<Connection>,
}

/// The client's request channel is closed: the event loop is gone.
struct Gone;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Publisher {
    async fn run(mut self, driver: tokio::task::JoinHandle<()>) {
        let mut seen_connects = 0;
        loop {
            if self.boards.iter().all(|b| b.wanted.has_changed().is_err()) {
                break;
            }
            let connection = self.connection.borrow_and_update().clone();
            if connection.connected && connection.connects != seen_connects {
                // A new session: the broker may be a new one that lost every retained
                // message, so everything is published again.
                seen_connects = connection.connects;
                if self.republish_all().await.is_err() {
                    break;
                }
            } else if connection.connected && self.publish_changes().await.is_err() {
                break;
            }
            // Refreshes wait while disconnected: the reconnect republishes everything anyway.
            let refresh = if connection.connected {
                self.boards.iter().filter_map(|b| b.refresh_at).min()
            } else {
                None
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                changed = self.connection.changed() => if changed.is_err() { break },
                () = sleep_until(refresh) => self.refresh_due().await,
            }
        }
        // Shut down: a clean disconnect sends no will, so say it ourselves.
        let _ = self
            .client
            .try_publish(&self.daemon_topic, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let mut driver = driver;
        if tokio::time::timeout(Duration::from_secs(1), &mut driver)
            .await
            .is_err()
        {
            // The broker did not see the goodbye in time; stop polling anyway.
            driver.abort();
        }
    }

    async fn republish_all(&mut self) -> Result<(), Gone> {
        let mut filters = Vec::new();
        for board in &self.boards {
            filters.push(rumqttc::SubscribeFilter::new(
                board.topics.status.clone(),
                QoS::AtLeastOnce,
            ));
        }
        if !filters.is_empty() {
            self.client
                .subscribe_many(filters)
                .await
                .map_err(|_| Gone)?;
        }
        self.client
            .publish(&self.daemon_topic, QoS::AtLeastOnce, true, "online")
            .await
            .map_err(|_| Gone)?;
        for i in 0..self.boards.len() {
            self.publish_settings(i, true).await?;
            self.publish_frame(i, true).await?;
        }
        Ok(())
    }

    async fn publish_changes(&mut self) -> Result<(), Gone> {
        for i in 0..self.boards.len() {
            self.publish_settings(i, false).await?;
            self.publish_frame(i, false).await?;
        }
        Ok(())
    }

    async fn refresh_due(&mut self) {
        if !self.connection.borrow().connected {
            return;
        }
        let now = Instant::now();
        for i in 0..self.boards.len() {
            if self.boards[i].refresh_at.is_some_and(|at| at <= now)
                && self.publish_frame(i, true).await.is_err()
            {
                return;
            }
        }
    }

    async fn publish_settings(&mut self, i: usize, all: bool) -> Result<(), Gone> {
        let board = &mut self.boards[i];
        if !all && !board.settings.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let settings = *board.settings.borrow_and_update();
        let topics = board.topics.clone();
        if let Some(level) = settings.brightness {
            self.client
                .publish(topics.brightness, QoS::AtLeastOnce, true, level.to_string())
                .await
                .map_err(|_| Gone)?;
        }
        if let Some(on) = settings.power {
            let payload = if on { "on" } else { "off" };
            self.client
                .publish(topics.power, QoS::AtLeastOnce, true, payload)
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    async fn publish_frame(&mut self, i: usize, all: bool) -> Result<(), Gone> {
        let board = &mut self.boards[i];
        if !all && !board.wanted.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let desired = board.wanted.borrow_and_update().clone();
        let topic = board.topics.frame.clone();
        let (payload, generation) = match desired {
            Desired::Unset => return Ok(()),
            Desired::Cleared { generation } => {
                let board = &mut self.boards[i];
                board.refresh_at = None;
                // An empty retained payload deletes the retained message.
                (Vec::new(), generation)
            }
            Desired::Frame {
                frame,
                valid_for,
                generation,
            } => {
                // The header's id wraps at 2³²; boards compare it for equality only.
                let content_id = (generation & 0xFFFF_FFFF) as u32;
                let until = unix_now() + u64::from(valid_for);
                let encoding = board.encoding;
                let encoded = match encoding {
                    Encoding::Packed => encode_frame(&frame, content_id, until),
                    // Compressing a full-HD picture takes tens of milliseconds: off the
                    // runtime's threads.
                    Encoding::Png => tokio::task::spawn_blocking(move || {
                        encode_frame_as(&frame, content_id, until, encoding)
                    })
                    .await
                    .unwrap_or_else(|e| Err(PayloadError::Png(e.to_string()))),
                };
                let board = &mut self.boards[i];
                match encoded {
                    Ok(payload) => {
                        board.refresh_at =
                            Some(Instant::now() + Duration::from_secs(u64::from(valid_for)) / 2);
                        (payload, generation)
                    }
                    Err(_) => {
                        // Too large for a packet: counted, not sent (the next frame is).
                        board.counters.add_error();
                        board.refresh_at = None;
                        board.published.fetch_max(generation, Ordering::AcqRel);
                        return Ok(());
                    }
                }
            }
        };
        let board = &self.boards[i];
        let counters = board.counters.clone();
        let published = board.published.clone();
        let len = payload.len();
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|_| Gone)?;
        if len > 0 {
            counters.add_frame();
        }
        counters.add_bytes(len);
        published.fetch_max(generation, Ordering::AcqRel);
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
