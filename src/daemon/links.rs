//! The daemon's side of the links: one handle per display, whatever kind of link it is, and
//! the tasks that own ports and the broker connection.
//!
//! Owns building handles from the model (simulated, a serial port shared by the boards of a
//! bus, the site's MQTT connection), the key that says when a display's link must be built
//! again on reload, and the live view of a link for the status API. The [`Link`] trait is not
//! object safe (its methods return `impl Future`), so [`AnyLink`] dispatches by hand.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::model::{DisplayIdx, Link as LinkConfig, Model, Protocol};
use crate::link::mqtt::{self, Connection, MqttConfig, MqttDisplay, MqttTask};
use crate::link::serial::{self, BoardView, PortConfig, PortTask, SerialDisplay};
use crate::link::simulated::SimulatedDisplay;
use crate::link::stream::{StreamConfig, StreamDisplay, StreamProtocol, StreamTask};
use crate::link::{Counters, CountersSnapshot, Delivery, Link, LinkError, Program};
use crate::raster::frame::Frame;

/// A display's link, of any kind.
#[derive(Debug)]
pub enum AnyLink {
    Simulated(SimulatedDisplay),
    Serial(SerialDisplay),
    Mqtt(MqttDisplay),
    /// A TPM2 or Adalight board on a port of its own.
    Stream(StreamDisplay),
    /// The display cannot be driven (a protocol the daemon does not speak yet, or the broker
    /// settings could not be read); the reason is shown in the status API.
    Unavailable(String),
}

impl AnyLink {
    pub async fn show(
        &mut self,
        frame: &Frame,
        valid_for: Duration,
    ) -> Result<Delivery, LinkError> {
        match self {
            AnyLink::Simulated(l) => l.show(frame, valid_for).await,
            AnyLink::Serial(l) => l.show(frame, valid_for).await,
            AnyLink::Mqtt(l) => l.show(frame, valid_for).await,
            AnyLink::Stream(l) => l.show(frame, valid_for).await,
            AnyLink::Unavailable(_) => Err(LinkError::Unsupported),
        }
    }

    pub async fn program(
        &mut self,
        program: &Program,
        valid_for: Duration,
    ) -> Result<Delivery, LinkError> {
        match self {
            AnyLink::Simulated(l) => l.program(program, valid_for).await,
            AnyLink::Serial(l) => l.program(program, valid_for).await,
            AnyLink::Mqtt(l) => l.program(program, valid_for).await,
            AnyLink::Stream(l) => l.program(program, valid_for).await,
            AnyLink::Unavailable(_) => Err(LinkError::Unsupported),
        }
    }

    pub async fn brightness(&mut self, level: u8) -> Result<(), LinkError> {
        match self {
            AnyLink::Simulated(l) => l.brightness(level).await,
            AnyLink::Serial(l) => l.brightness(level).await,
            AnyLink::Mqtt(l) => l.brightness(level).await,
            AnyLink::Stream(l) => l.brightness(level).await,
            AnyLink::Unavailable(_) => Err(LinkError::Unsupported),
        }
    }

    pub async fn power(&mut self, on: bool) -> Result<(), LinkError> {
        match self {
            AnyLink::Simulated(l) => l.power(on).await,
            AnyLink::Serial(l) => l.power(on).await,
            AnyLink::Mqtt(l) => l.power(on).await,
            AnyLink::Stream(l) => l.power(on).await,
            AnyLink::Unavailable(_) => Err(LinkError::Unsupported),
        }
    }

    pub async fn clear(&mut self) -> Result<(), LinkError> {
        match self {
            AnyLink::Simulated(l) => l.clear().await,
            AnyLink::Serial(l) => l.clear().await,
            AnyLink::Mqtt(l) => l.clear().await,
            AnyLink::Stream(l) => l.clear().await,
            AnyLink::Unavailable(_) => Err(LinkError::Unsupported),
        }
    }

    /// Waits (at most `limit`) until a withdrawal handed to an MQTT link has gone to the
    /// broker, so that dropping the handle right after does not lose it.
    pub async fn settle(&self, limit: Duration) {
        if let AnyLink::Mqtt(l) = self {
            let deadline = tokio::time::Instant::now() + limit;
            let wanted = l.requested();
            while l.published() < wanted && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A view of the link that the status API can read while the display task owns the link.
    pub fn probe(&self, mqtt: Option<&watch::Receiver<Connection>>) -> LinkProbe {
        match self {
            AnyLink::Simulated(l) => LinkProbe::Simulated(l.shared_counters()),
            AnyLink::Serial(l) => LinkProbe::Serial(l.shared_counters(), l.view()),
            AnyLink::Mqtt(l) => LinkProbe::Mqtt {
                counters: l.shared_counters(),
                connection: mqtt.cloned(),
                board: l.status(),
            },
            AnyLink::Stream(l) => LinkProbe::Stream(l.shared_counters()),
            AnyLink::Unavailable(why) => LinkProbe::Unavailable(why.clone()),
        }
    }
}

/// What the status API reads of a link.
#[derive(Debug, Clone)]
pub enum LinkProbe {
    Simulated(Arc<Counters>),
    Serial(Arc<Counters>, watch::Receiver<BoardView>),
    /// Pixel streams are never answered: "online" means the port takes the bytes.
    Stream(Arc<Counters>),
    Mqtt {
        counters: Arc<Counters>,
        connection: Option<watch::Receiver<Connection>>,
        /// The board's own status message, when it sends one.
        board: watch::Receiver<Option<String>>,
    },
    Unavailable(String),
}

/// A link's health in a few words, for people and for `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkHealth {
    /// `simulated`, `serial`, `mqtt` or `unavailable`.
    pub kind: &'static str,
    /// The board (serial) or the broker connection (MQTT) answered lately.
    pub online: bool,
    pub detail: Option<String>,
    pub frames: u64,
    pub bytes: u64,
    pub retries: u64,
    pub errors: u64,
    /// Seconds since the board last answered.
    pub last_ack_seconds_ago: Option<f64>,
}

impl LinkProbe {
    pub fn health(&self) -> LinkHealth {
        let base = |kind, online, detail, c: CountersSnapshot| LinkHealth {
            kind,
            online,
            detail,
            frames: c.frames,
            bytes: c.bytes,
            retries: c.retries,
            errors: c.errors,
            last_ack_seconds_ago: c.last_ack.map(|t| t.elapsed().as_secs_f64()),
        };
        match self {
            LinkProbe::Simulated(c) => base("simulated", true, None, c.snapshot()),
            LinkProbe::Stream(c) => {
                let c = c.snapshot();
                // Written within the last refreshes: the port takes the bytes.
                let online = c
                    .last_ack
                    .is_some_and(|t| t.elapsed() < crate::link::stream::REFRESH * 3);
                base("stream", online, None, c)
            }
            LinkProbe::Serial(c, view) => {
                let view = *view.borrow();
                base("serial", view.online, None, c.snapshot())
            }
            LinkProbe::Mqtt {
                counters,
                connection,
                board,
            } => {
                let online = connection.as_ref().is_some_and(|c| c.borrow().connected);
                base("mqtt", online, board.borrow().clone(), counters.snapshot())
            }
            LinkProbe::Unavailable(why) => LinkHealth {
                kind: "unavailable",
                online: false,
                detail: Some(why.clone()),
                frames: 0,
                bytes: 0,
                retries: 0,
                errors: 0,
                last_ack_seconds_ago: None,
            },
        }
    }
}

/// What must stay the same for a display to keep its link across a reload: its own link, and
/// everything the task that owns its port or connection was started with (the other boards
/// on the bus, the broker settings and every topic).
pub fn link_keys(model: &Model) -> Vec<String> {
    let mut ports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut topics = Vec::new();
    for d in &model.displays {
        let link = model.effective_link(d);
        match &*link {
            LinkConfig::Serial {
                port,
                baud,
                address,
            } => ports
                .entry(port.clone())
                .or_default()
                .push(format!("{baud}/{address:?}")),
            LinkConfig::Mqtt { topic } => topics.push(topic.clone()),
            LinkConfig::Simulated => {}
        }
    }
    let mqtt = format!("{:?}|{}", model.site.mqtt, topics.join(","));
    model
        .displays
        .iter()
        .map(|d| {
            let protocol = model.profile_of(d).protocol;
            match &*model.effective_link(d) {
                LinkConfig::Simulated => "simulated".to_owned(),
                LinkConfig::Serial {
                    port,
                    baud,
                    address,
                } => format!(
                    "serial|{port}|{baud}|{address:?}|{protocol:?}|{}",
                    ports
                        .get(port.as_str())
                        .map(|v| v.join(","))
                        .unwrap_or_default()
                ),
                LinkConfig::Mqtt { topic } => format!("mqtt|{topic}|{mqtt}"),
            }
        })
        .collect()
}

/// The tasks that own ports and the broker connection; they end when every handle they gave
/// out is dropped.
#[derive(Debug, Default)]
pub struct Owners {
    ports: HashMap<String, PortTask>,
    streams: HashMap<String, StreamTask>,
    mqtt: Option<MqttTask>,
}

impl Owners {
    /// The broker connection's state, for the status API.
    pub fn mqtt_connection(&self) -> Option<watch::Receiver<Connection>> {
        self.mqtt.as_ref().map(MqttTask::connection)
    }

    /// Builds links for `wanted` displays of `model` (their old handles must be dropped
    /// already): waits for the old owner of a port or of the broker connection to end before a
    /// new one starts, so a port is never opened twice.
    pub async fn build(
        &mut self,
        model: &Model,
        site_dir: &Path,
        wanted: &[DisplayIdx],
    ) -> HashMap<DisplayIdx, AnyLink> {
        let mut out = HashMap::new();
        let mut by_port: BTreeMap<String, (u32, Vec<(DisplayIdx, u8)>)> = BTreeMap::new();
        let mut mqtt_wanted = Vec::new();
        for &idx in wanted {
            let Some(d) = model.displays.get(idx) else {
                continue;
            };
            let protocol = model.profile_of(d).protocol;
            match &*model.effective_link(d) {
                LinkConfig::Simulated => {
                    out.insert(idx, AnyLink::Simulated(SimulatedDisplay::new()));
                }
                LinkConfig::Serial {
                    port,
                    baud,
                    address,
                } => {
                    let profile = model.profile_of(d);
                    let stream = match protocol {
                        Protocol::Tpm2 => Some(StreamProtocol::Tpm2),
                        Protocol::Adalight => Some(StreamProtocol::Adalight),
                        _ => None,
                    };
                    if let (Some(stream), Some(wiring)) = (stream, profile.wiring) {
                        if let Some(old) = self.streams.remove(port) {
                            let _ = tokio::time::timeout(Duration::from_secs(3), old.handle).await;
                        }
                        let (task, handle) = crate::link::stream::spawn(StreamConfig {
                            path: port.into(),
                            baud: *baud,
                            protocol: stream,
                            wiring,
                            width: profile.width,
                            height: profile.height,
                            brightness_max: *profile.brightness.end(),
                        });
                        self.streams.insert(port.clone(), task);
                        out.insert(idx, AnyLink::Stream(handle));
                        continue;
                    }
                    if protocol != Protocol::Gongkai {
                        out.insert(
                            idx,
                            AnyLink::Unavailable(format!(
                                "the daemon drives serial boards with gongkai's protocol, TPM2 and Adalight; {protocol:?} is not driven yet"
                            )),
                        );
                        continue;
                    }
                    by_port
                        .entry(port.clone())
                        .or_insert((*baud, Vec::new()))
                        .1
                        .push((idx, address.unwrap_or(1)));
                }
                LinkConfig::Mqtt { topic } => {
                    // Touchscreens take pictures as PNG files; LED controllers packed.
                    let encoding = if protocol == Protocol::Png {
                        mqtt::Encoding::Png
                    } else {
                        mqtt::Encoding::Packed
                    };
                    mqtt_wanted.push((idx, (topic.clone(), encoding)));
                }
            }
        }
        for (port, (baud, boards)) in by_port {
            if let Some(old) = self.ports.remove(&port) {
                let _ = tokio::time::timeout(Duration::from_secs(3), old.handle).await;
            }
            let addresses: Vec<u8> = boards.iter().map(|(_, a)| *a).collect();
            let (task, handles) = serial::spawn(
                PortConfig {
                    path: port.clone().into(),
                    baud,
                },
                &addresses,
            );
            self.ports.insert(port, task);
            for ((idx, _), handle) in boards.into_iter().zip(handles) {
                out.insert(idx, AnyLink::Serial(handle));
            }
        }
        if !mqtt_wanted.is_empty() {
            if let Some(old) = self.mqtt.take() {
                let _ = tokio::time::timeout(Duration::from_secs(3), old.handle).await;
            }
            let started = match &model.site.mqtt {
                Some(settings) => {
                    MqttConfig::from_model(settings, site_dir, |k| std::env::var(k).ok())
                        .map_err(|e| e.to_string())
                        .and_then(|config| {
                            let topics: Vec<(String, mqtt::Encoding)> =
                                mqtt_wanted.iter().map(|(_, t)| t.clone()).collect();
                            mqtt::spawn_encoded(&config, &topics).map_err(|e| e.to_string())
                        })
                }
                None => Err("the site has no mqtt section".to_owned()),
            };
            match started {
                Ok((task, handles)) => {
                    self.mqtt = Some(task);
                    for ((idx, _), handle) in mqtt_wanted.into_iter().zip(handles) {
                        out.insert(idx, AnyLink::Mqtt(handle));
                    }
                }
                Err(why) => {
                    for (idx, _) in mqtt_wanted {
                        out.insert(idx, AnyLink::Unavailable(format!("MQTT: {why}")));
                    }
                }
            }
        }
        out
    }

    /// Waits (at most `limit`) for every owner task to end, once every handle is dropped.
    pub async fn finish(self, limit: Duration) {
        let tasks = self
            .ports
            .into_values()
            .map(|p| p.handle)
            .chain(self.streams.into_values().map(|s| s.handle))
            .chain(self.mqtt.map(|m| m.handle));
        let _ = tokio::time::timeout(limit, futures_join(tasks.collect())).await;
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}
