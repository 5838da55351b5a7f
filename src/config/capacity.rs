//! Can each serial link carry what its display is asked to show?
//!
//! A board whose controller cannot play pages or scroll by itself is fed one frame per change:
//! a scrolling notice needs a frame per pixel of travel (`speed` frames a second), a page a
//! frame per `dwell`. A serial line carries baud ÷ 10 bytes a second (8N1), and every display on
//! one RS-485 bus shares it. When the need exceeds that, the board would stutter or fall behind,
//! so it is an error, with the ways out: let the controller play locally (`local_playback` in
//! the profile, the protocol's PROGRAM message), a lower speed, or page mode.
//!
//! Frame bytes include the protocol's framing overhead (at most 3 % for buffers of 1 KiB and
//! more, docs/protocol.md §1.10); the check uses that figure.

use std::collections::HashMap;

use super::model::{Channel, Link, Model, ShowMode};
use crate::diag::{Diagnostic, Msg, Pos, Report};
use crate::raster::frame::Frame;

/// Bytes on the wire per byte of frame, framing and chunk headers included.
const PROTOCOL_OVERHEAD: f64 = 1.03;

/// Checks every item shown on a display with a serial link.
pub fn check(model: &Model, report: &mut Report) {
    // Displays sharing a port share its bytes: the need of each is counted against its share.
    let mut on_port: HashMap<&str, u32> = HashMap::new();
    for display in &model.displays {
        if let Link::Serial { port, .. } = &display.link {
            *on_port.entry(port.as_str()).or_default() += 1;
        }
    }
    for playlist in &model.playlists {
        for &index in &playlist.targets {
            let display = &model.displays[index];
            let Link::Serial { port, baud, .. } = &display.link else {
                continue;
            };
            let profile = model.profile_of(display);
            let sharing = on_port.get(port.as_str()).copied().unwrap_or(1).max(1);
            let available = f64::from(*baud) / 10.0 / f64::from(sharing);
            let frame_bytes = Frame::new(profile.width, profile.height, profile.pixel)
                .data
                .len() as f64
                * PROTOCOL_OVERHEAD;
            for item in playlist
                .items
                .iter()
                .filter(|i| i.channels.contains(&Channel::Board))
            {
                let (local, frames_per_second) = match item.show.mode {
                    ShowMode::Scroll | ShowMode::Roll => {
                        (profile.local_scroll, f64::from(item.show.speed))
                    }
                    ShowMode::Page => (
                        profile.local_pages,
                        1.0 / item.show.dwell.as_secs_f64().max(0.001),
                    ),
                };
                let needed = frame_bytes * frames_per_second;
                if local || needed <= available {
                    continue;
                }
                let pos = Pos::new(&playlist.file, item.line, item.id_at.0, item.id_at.1);
                let message = Msg::new("capacity.too_much")
                    .arg("item", &item.id)
                    .arg("display", &display.id)
                    .arg("needed", needed.round())
                    .arg("available", available.round())
                    .arg("baud", baud)
                    .arg("sharing", sharing);
                let hint = match item.show.mode {
                    ShowMode::Page => Msg::new("capacity.page.hint").arg("profile", &profile.id),
                    _ => {
                        // The fastest scroll the share of the line carries, a pixel per frame.
                        let speed = (available / frame_bytes).floor().max(0.0);
                        Msg::new("capacity.scroll.hint")
                            .arg("profile", &profile.id)
                            .arg("speed", speed)
                    }
                };
                report.push(Diagnostic::error(pos, message).with_hint(hint));
            }
        }
    }
}
