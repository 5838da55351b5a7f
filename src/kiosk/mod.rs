//! Touchscreen kiosks: items drawn as full-screen pages with a scalable font
//! ([`render`]), and the page a kiosk's browser opens, with its JSON API ([`web`]).
//!
//! This module owns what a kiosk shows. It does not choose what plays when (`schedule`), load
//! the site (`config`) or publish frames (`link`); it reads a validated [`Model`] and the time
//! it is given.
//!
//! [`Model`]: crate::config::model::Model

pub mod render;
pub mod web;
