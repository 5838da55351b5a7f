//! `gongkai emulate`: the reference board on a serial device, for tests and firmware authors.
//!
//! Owns the command's I/O: loading the hardware profile, opening the device, writing what the
//! board shows as PNG, and the operator's messages. The board itself is
//! [`crate::emulator`]; this file must not decide anything about the protocol.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_serial::SerialPortBuilderExt;

use super::Exit;
use crate::config;
use crate::config::model::{Profile, Protocol};
use crate::config::validate;
use crate::emulator::{Board, BoardConfig, lock, serve};
use crate::i18n::{Lang, tr};
use crate::preview::{LedLook, write_png};
use crate::raster::frame::Frame;

/// The picture the board shows, rewritten on every change.
pub const SHOWN_PNG: &str = "shown.png";

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: PathBuf,
    pub address: u8,
    pub profile: PathBuf,
    pub out: PathBuf,
    /// Default: the profile's first baud rate, else 115,200.
    pub baud: Option<u32>,
}

/// Runs the board until SIGINT (exit 0) or until the device fails (exit 3).
pub fn run(site: &Path, options: &Options, lang: Lang) -> Exit {
    let Some(profile) = load_profile(site, &options.profile, lang) else {
        return Exit::Problems;
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
    if let Err(error) = std::fs::create_dir_all(&options.out) {
        let (path, reason) = (options.out.display().to_string(), error.to_string());
        eprintln!(
            "{}",
            tr(
                lang,
                "emulate.out_failed",
                &[("path", &path), ("reason", &reason)]
            )
        );
        return Exit::Failed;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let reason = error.to_string();
            eprintln!("{}", tr(lang, "emulate.failed", &[("reason", &reason)]));
            return Exit::Failed;
        }
    };
    runtime.block_on(emulate(options, &profile, baud, lang))
}

async fn emulate(options: &Options, profile: &Profile, baud: u32, lang: Lang) -> Exit {
    let port_name = options.port.display().to_string();
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
        BoardConfig::from_profile(profile, options.address),
        0,
    )));
    let look = LedLook {
        scale: LedLook::default().scale,
        led_color: profile.led_color,
    };
    let out = options.out.join(SHOWN_PNG);
    let mut write_failed = false;
    let mut draw = |frame: &Frame| {
        if let Err(reason) = save(frame, &look, &out)
            && !write_failed
        {
            // Once is enough: the board keeps working without its pictures.
            write_failed = true;
            let path = out.display().to_string();
            eprintln!(
                "{}",
                tr(
                    lang,
                    "emulate.png_failed",
                    &[("path", &path), ("reason", &reason)]
                )
            );
        }
    };
    draw(&lock(&board).picture());
    let (address, baud_text) = (options.address.to_string(), baud.to_string());
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

/// Writes the picture beside its final name and renames it, so a viewer never reads half a
/// PNG.
fn save(frame: &Frame, look: &LedLook, path: &Path) -> Result<(), String> {
    let partial = path.with_extension("png.partial");
    let mut bytes = Vec::new();
    write_png(frame, look, &mut bytes).map_err(|e| e.to_string())?;
    std::fs::write(&partial, &bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}

/// A profile file on its own (the site's `fonts/` only matter for its font reference).
fn load_profile(site: &Path, path: &Path, lang: Lang) -> Option<Profile> {
    let name = path.to_string_lossy().replace('\\', "/");
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            let reason = error.to_string();
            eprintln!(
                "{}",
                tr(
                    lang,
                    "emulate.profile_unreadable",
                    &[("path", &name), ("reason", &reason)]
                )
            );
            return None;
        }
    };
    let fonts = config::font_files(site);
    let (profile, report) = validate::check_profile(config::SourceFile { name, text }, fonts);
    let _ = write!(std::io::stdout(), "{}", report.render(lang));
    profile
}
