//! Pixel streams on a serial line: TPM2 and Adalight boards (WLED, hobby LED matrices).
//!
//! Owns one port per board (these protocols have no addresses) and the rhythm of a stream:
//! such boards never acknowledge, and most fall back to their own effects when data stops
//! (WLED's real-time mode times out after a few seconds), so the newest picture is written
//! whole when it changes and again every [`REFRESH`]. Brightness scales the pixels, power off
//! and expiry send black. A vanished port is reopened with a capped back-off.
//!
//! Must not touch: the bytes of a block (`crate::protocol::{tpm2, adalight}`), what a frame
//! shows, other ports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

use super::{
    Counters, CountersSnapshot, Delivery, DesiredState, Link, LinkError, Settings, valid_for_secs,
};
use crate::config::model::{PixelFormat, Rgb, Wiring};
use crate::protocol::PixelStreamError;
use crate::raster::frame::Frame;

/// How often the current picture is written again when nothing changes.
pub const REFRESH: Duration = Duration::from_secs(1);
const REOPEN_FIRST: Duration = Duration::from_millis(50);
const REOPEN_MAX: Duration = Duration::from_millis(500);

/// Which block format the board reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    Tpm2,
    Adalight,
}

impl StreamProtocol {
    /// The bytes of one whole picture.
    pub fn encode(self, frame: &Frame, wiring: &Wiring) -> Result<Vec<u8>, PixelStreamError> {
        match self {
            StreamProtocol::Tpm2 => crate::protocol::tpm2::encode(frame, wiring),
            StreamProtocol::Adalight => crate::protocol::adalight::encode(frame, wiring),
        }
    }
}

/// A board on its own serial port.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub path: PathBuf,
    pub baud: u32,
    pub protocol: StreamProtocol,
    pub wiring: Wiring,
    pub width: u32,
    pub height: u32,
    /// The top of the board's brightness range: `brightness(level)` scales by level / max.
    pub brightness_max: u32,
}

/// What the board should show.
#[derive(Debug, Clone, Default)]
enum Desired {
    #[default]
    Unset,
    Frame {
        frame: Arc<Frame>,
        until: Instant,
    },
    Cleared,
}

/// The one display on a pixel-stream port: implements [`Link`].
#[derive(Debug)]
pub struct StreamDisplay {
    desired: DesiredState<Desired>,
    counters: Arc<Counters>,
}

impl StreamDisplay {
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// The counters themselves, for a status page that outlives borrowing the display.
    pub fn shared_counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

impl Link for StreamDisplay {
    async fn show(&mut self, frame: &Frame, valid_for: Duration) -> Result<Delivery, LinkError> {
        let secs = valid_for_secs(valid_for)?;
        let frame = Arc::new(frame.clone());
        let until = Instant::now() + Duration::from_secs(secs.into());
        let (generation, _) = self.desired.replace(|_| Desired::Frame { frame, until })?;
        self.desired.wake();
        Ok(Delivery::Queued { generation })
    }

    async fn brightness(&mut self, level: u8) -> Result<(), LinkError> {
        self.desired.setting(|s| s.brightness = Some(level))
    }

    async fn power(&mut self, on: bool) -> Result<(), LinkError> {
        self.desired.setting(|s| s.power = Some(on))
    }

    async fn clear(&mut self) -> Result<(), LinkError> {
        self.desired.replace(|_| Desired::Cleared)?;
        self.desired.wake();
        Ok(())
    }
}

/// The task that owns the port; it ends when the display is dropped (after a last black
/// picture, so a board does not keep a notice nobody maintains).
#[derive(Debug)]
pub struct StreamTask {
    pub handle: tokio::task::JoinHandle<()>,
}

/// Starts the port's task. Must be called inside a tokio runtime.
pub fn spawn(config: StreamConfig) -> (StreamTask, StreamDisplay) {
    let wake = Arc::new(Notify::new());
    let (desired, wanted, settings) = DesiredState::new(wake.clone());
    let counters = Arc::new(Counters::default());
    let handle = tokio::spawn(run(config, wanted, settings, wake, counters.clone()));
    (StreamTask { handle }, StreamDisplay { desired, counters })
}

/// The picture to write now: the wanted frame, scaled by brightness, or black when there is
/// none, it expired, or the board is off.
fn picture_now(
    config: &StreamConfig,
    desired: &Desired,
    settings: Settings,
    now: Instant,
) -> Frame {
    let black = Frame::new(config.width, config.height, PixelFormat::Rgb888);
    let Desired::Frame { frame, until } = desired else {
        return black;
    };
    if now >= *until || settings.power == Some(false) {
        return black;
    }
    let mut out = black;
    let scale = settings.brightness.map_or(1.0, |level| {
        f32::from(level) / config.brightness_max.max(1) as f32
    });
    for y in 0..config.height.min(frame.height) {
        for x in 0..config.width.min(frame.width) {
            let Rgb(r, g, b) = frame.pixel(x, y);
            let dim = |v: u8| (f32::from(v) * scale.min(1.0)).round() as u8;
            out.set_pixel(x, y, Rgb(dim(r), dim(g), dim(b)));
        }
    }
    out
}

async fn run(
    config: StreamConfig,
    mut wanted: watch::Receiver<Desired>,
    mut settings: watch::Receiver<Settings>,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
) {
    let mut reopen = REOPEN_FIRST;
    loop {
        let mut port = match tokio_serial::new(config.path.to_string_lossy(), config.baud)
            .open_native_async()
        {
            Ok(port) => {
                reopen = REOPEN_FIRST;
                port
            }
            Err(_) => {
                if wanted.has_changed().is_err() {
                    return;
                }
                tokio::time::sleep(reopen).await;
                reopen = (reopen * 2).min(REOPEN_MAX);
                continue;
            }
        };
        loop {
            let closed = wanted.has_changed().is_err() && settings.has_changed().is_err();
            let desired = wanted.borrow_and_update().clone();
            let now_settings = *settings.borrow_and_update();
            let frame = if closed {
                // The display is gone: leave the board dark.
                Frame::new(config.width, config.height, PixelFormat::Rgb888)
            } else {
                picture_now(&config, &desired, now_settings, Instant::now())
            };
            let bytes = match config.protocol.encode(&frame, &config.wiring) {
                Ok(bytes) => bytes,
                Err(_) => {
                    counters.add_error();
                    Vec::new()
                }
            };
            if !bytes.is_empty() {
                if port.write_all(&bytes).await.is_err() || port.flush().await.is_err() {
                    counters.add_error();
                    break;
                }
                counters.add_frame();
                counters.add_bytes(bytes.len());
                // Nothing answers on a pixel stream: the port taking the bytes is all there is.
                counters.acked(std::time::Instant::now());
            }
            if closed {
                return;
            }
            // The next write: on a change, at the refresh, or when the picture expires.
            let expiry = match &desired {
                Desired::Frame { until, .. } if *until > Instant::now() => Some(*until),
                _ => None,
            };
            let next = expiry.map_or(Instant::now() + REFRESH, |e| {
                e.min(Instant::now() + REFRESH)
            });
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        tokio::time::sleep(reopen).await;
        reopen = (reopen * 2).min(REOPEN_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ColorOrder, Corner, WiringLayout};

    fn config() -> StreamConfig {
        StreamConfig {
            path: PathBuf::from("/nonexistent"),
            baud: 115_200,
            protocol: StreamProtocol::Tpm2,
            wiring: Wiring {
                layout: WiringLayout::Serpentine,
                origin: Corner::TopLeft,
                order: ColorOrder::Grb,
            },
            width: 4,
            height: 2,
            brightness_max: 10,
        }
    }

    #[test]
    fn brightness_scales_and_power_off_or_expiry_is_black() {
        let mut frame = Frame::new(4, 2, PixelFormat::Rgb888);
        frame.set_pixel(1, 1, Rgb(200, 100, 50));
        let now = Instant::now();
        let desired = Desired::Frame {
            frame: Arc::new(frame.clone()),
            until: now + Duration::from_secs(5),
        };
        let full = picture_now(&config(), &desired, Settings::default(), now);
        assert_eq!(full, frame);
        let half = Settings {
            brightness: Some(5),
            power: None,
        };
        assert_eq!(
            picture_now(&config(), &desired, half, now).pixel(1, 1),
            Rgb(100, 50, 25)
        );
        let off = Settings {
            brightness: None,
            power: Some(false),
        };
        let black = Frame::new(4, 2, PixelFormat::Rgb888);
        assert_eq!(picture_now(&config(), &desired, off, now), black);
        let later = now + Duration::from_secs(6);
        assert_eq!(
            picture_now(&config(), &desired, Settings::default(), later),
            black
        );
        assert_eq!(
            picture_now(&config(), &Desired::Cleared, Settings::default(), now),
            black
        );
    }
}
