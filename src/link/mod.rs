//! Links: how a display's newest frame reaches its board.
//!
//! Owns the I/O between gongkai and the boards — ports, retries, timeouts, reconnects and
//! the per-display counters. [`Link`] is the one thing the rest of gongkai (the daemon) sees:
//! like embedded-graphics' `DrawTarget`, one required method (`show`) and a few with defaults
//! (brightness, power, clear), and every kind of link (serial and MQTT now; the simulated
//! link later) implements it.
//!
//! Must not touch: the bytes of a protocol (`crate::protocol`, pure codecs called from here),
//! what a frame shows (`crate::raster`), or the schedule. Links never queue more than the
//! newest frame per display (ARCHITECTURE.md, invariant 4).

pub mod mqtt;
pub mod serial;

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::raster::frame::Frame;

/// What became of a frame handed to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The frame is now the display's newest; the link delivers it as soon as the board can
    /// take it. `generation` counts the frames handed to this display.
    Queued { generation: u64 },
    /// As `Queued`, and an older frame that had not gone out yet was dropped for it.
    Replaced { generation: u64 },
}

impl Delivery {
    pub fn generation(self) -> u64 {
        match self {
            Delivery::Queued { generation } | Delivery::Replaced { generation } => generation,
        }
    }
}

/// Why a link refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The task that owns the port has ended (the link was shut down).
    #[error("the link's task has ended")]
    Closed,
    /// Content must expire, and the protocol counts in whole seconds up to 65,535.
    #[error("valid for {0:?}; must be 1 s to 65535 s")]
    ValidFor(Duration),
    /// This kind of link cannot do that (brightness over a pixel stream, …).
    #[error("this link does not support the request")]
    Unsupported,
}

/// A way to a display. One required method; everything else has a default.
pub trait Link {
    /// Makes `frame` the display's picture, valid for `valid_for` after the board applies it.
    /// Returns at once: the newest frame replaces any frame not yet sent.
    fn show(
        &mut self,
        frame: &Frame,
        valid_for: Duration,
    ) -> impl Future<Output = Result<Delivery, LinkError>> + Send;

    /// Sets the LEDs' brightness (0 to the board's maximum). Links that cannot say `Unsupported`.
    fn brightness(&mut self, level: u8) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = level;
        std::future::ready(Err(LinkError::Unsupported))
    }

    /// Turns the LEDs off or on; off keeps the content and its timer running.
    fn power(&mut self, on: bool) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = on;
        std::future::ready(Err(LinkError::Unsupported))
    }

    /// Withdraws the picture: the board shows nothing.
    fn clear(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send {
        std::future::ready(Err(LinkError::Unsupported))
    }
}

/// What a link has done for one display, shared between its task and its handle.
#[derive(Debug, Default)]
pub struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    last_ack: Mutex<Option<Instant>>,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Bodies (FRAME, RECT) the board acknowledged.
    pub frames: u64,
    /// Bytes written to the line for this display.
    pub bytes: u64,
    /// Requests sent again after a timeout, a NAK or a lost reply.
    pub retries: u64,
    /// Exchanges that failed: no reply after every attempt, or a NAK that ends a transfer.
    pub errors: u64,
    /// When the board last answered.
    pub last_ack: Option<Instant>,
}

impl Counters {
    pub(crate) fn add_frame(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn acked(&self, at: Instant) {
        *self
            .last_ack
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_ack: *self
                .last_ack
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

/// `valid_for` as the protocol's whole seconds (rounded up, so content never expires early).
pub(crate) fn valid_for_secs(valid_for: Duration) -> Result<u16, LinkError> {
    let secs = valid_for.as_secs() + u64::from(valid_for.subsec_nanos() > 0);
    match u16::try_from(secs) {
        Ok(0) | Err(_) => Err(LinkError::ValidFor(valid_for)),
        Ok(s) => Ok(s),
    }
}
