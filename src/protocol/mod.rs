//! Protocol codecs: a [`Frame`](crate::raster::frame::Frame) or a program in, the bytes a
//! board understands out — and back, for tests and the emulator.
//!
//! Owns the byte formats of every board family gongkai drives:
//! - [`gongkai`] and [`transfer`]: gongkai's own acknowledged, addressed RS-485 protocol
//!   (specified in `docs/protocol.md`), with [`cobs`] stuffing and [`crc`] checks;
//! - [`tpm2`] and [`adalight`]: pixel streams for WLED-style LED matrices, with the LED order
//!   of [`pixels`];
//! - [`bx5k`]: the Onbon BX-5K text protocol of installed Chinese controllers.
//!
//! Must not touch: ports, sockets, the clock, the model's validation, or what a frame shows.
//! Everything here is pure — retries, timeouts and pacing belong to the links, which call
//! these codecs. Decoders take hostile bytes: they return typed errors, never panic, and
//! never allocate more than their stated limits.

pub mod adalight;
pub mod bx5k;
pub mod cobs;
pub mod crc;
pub mod gongkai;
pub mod pixels;
pub mod tpm2;
pub mod transfer;

use crate::config::model::PixelFormat;

/// Why a frame cannot become a TPM2 or Adalight stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelStreamError {
    #[error("pixel streams carry rgb888 frames, not {0:?}")]
    Format(PixelFormat),
    #[error("{leds} LEDs; the format carries at most {max}")]
    TooManyLeds { leds: usize, max: usize },
    #[error("a frame without LEDs")]
    NoLeds,
}
