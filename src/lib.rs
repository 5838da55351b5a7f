//! gongkai publishes government-affairs disclosure (政务公开) to LED boards, touchscreen kiosks
//! and subscribers' phones.
//!
//! The crate is a library with a thin binary on top (`src/main.rs`). The data flows one way:
//! the operator's YAML is parsed and validated into a [`config::Model`]; later stages (layout,
//! schedule, raster, protocol, links, SMS) take that model and the current time as arguments.
//! See `ARCHITECTURE.md` for the code map and the invariants every module keeps.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod durations;
pub mod emulator;
pub mod font;
pub mod i18n;
pub mod kiosk;
pub mod layout;
pub mod link;
pub mod preview;
pub mod protocol;
pub mod raster;
pub mod review;
pub mod schedule;
pub mod sms;
pub mod store;

/// Makes ring rustls's crypto provider for this process (the HTTP client and MQTT over TLS are
/// built without one, so that no second provider is compiled in). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// The message catalogue: one file per language under `locales/`, embedded at compile time.
rust_i18n::i18n!("locales", fallback = "en");
