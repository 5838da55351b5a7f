//! gongkai's protocol over a serial line: one owner task per port, one or more boards on it
//! by RS-485 address.
//!
//! Owns the port (open, reopen with a capped back-off when it disappears), the host side of
//! `docs/protocol.md` §1.6 and §1.8 — HELLO first, FRAME or RECT (or a PROGRAM the board
//! plays by itself, if its INFO caps say it can) chunked to the board's buffer, stop-and-wait with the spec's timeouts and 3 retries, offline boards probed at
//! 1 s, 2 s, 4 s … 60 s — and fair turns between the boards of a bus (one exchange each,
//! round robin). Each display's newest frame sits in a `watch` channel: a newer frame
//! replaces one not yet started, so nothing queues.
//!
//! Must not touch: packet and body bytes (`crate::protocol`), what a frame shows, or other
//! ports — a dead port stalls only its own task.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio_serial::SerialPortBuilderExt;

use super::{
    Counters, CountersSnapshot, Delivery, DesiredState, Link, LinkError, Program, Settings,
    valid_for_secs,
};
use crate::protocol::gongkai::{
    Caps, ClearMode, Decoder, HOST, Info, Message, NakReason, Packet, Sequencer,
};
use crate::protocol::transfer::{Body, FrameBody, RectBody, split};
use crate::raster::frame::Frame;

/// Attempts per request: the first and 3 retries (§1.6).
const ATTEMPTS: u32 = 4;
/// First probe of an offline board, doubling up to [`PROBE_MAX`] (§1.6).
const PROBE_FIRST: Duration = Duration::from_secs(1);
const PROBE_MAX: Duration = Duration::from_secs(60);
/// A still picture is confirmed at least this often (docs/protocol.md: "at least every
/// 60 s"), so a board that died behind a picture valid for an hour is known offline within a
/// minute, not at the next change.
const HEARTBEAT_MAX: Duration = Duration::from_secs(60);

/// When content shown for `valid_for` seconds is next confirmed with a HEARTBEAT.
fn heartbeat_after(valid_for: u16) -> Duration {
    (Duration::from_secs(u64::from(valid_for)) / 2).min(HEARTBEAT_MAX)
}
/// Reopening a vanished port: quick at first (a replugged adapter is back within a second),
/// capped so that a missing adapter costs two `open`s a second and a replugged one is
/// served again well within 2 s.
const REOPEN_FIRST: Duration = Duration::from_millis(50);
const REOPEN_MAX: Duration = Duration::from_millis(500);
/// Turnaround, completing-chunk and margin terms of the reply timeout (§1.6).
const TURNAROUND: Duration = Duration::from_millis(20);
const COMPLETING: Duration = Duration::from_millis(200);
const MARGIN: Duration = Duration::from_millis(30);
/// A write that takes this much longer than its line time means the port is stuck.
const WRITE_STALL: Duration = Duration::from_secs(1);
/// The largest reply: INFO with 64 bytes of firmware.
const MAX_REPLY: usize = 88;
/// Sizes of the replies, for timeouts: an ACK/NAK packet, STATUS, INFO (wire, worst case).
const ACK_WIRE: usize = 14;
const STATUS_WIRE: usize = 26;
const INFO_WIRE: usize = MAX_REPLY + 3;

/// A serial port and the boards on it.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// The device: `/dev/ttyUSB0`, or better a stable `/dev/serial/by-id/…` link.
    pub path: PathBuf,
    pub baud: u32,
}

impl PortConfig {
    /// Time on the wire for `n` bytes at 8N1.
    fn line_time(&self, n: usize) -> Duration {
        Duration::from_micros(n as u64 * 10_000_000 / u64::from(self.baud.max(1)))
    }
}

/// What a display should show: nothing said yet, a frame, or nothing (withdrawn).
#[derive(Debug, Clone, Default)]
enum Desired {
    #[default]
    Unset,
    Frame(Wanted),
    Cleared {
        generation: u64,
    },
}

/// The newest frame or program of a display.
#[derive(Debug, Clone)]
struct Wanted {
    what: What,
    valid_for: u16,
    generation: u64,
}

#[derive(Debug, Clone)]
enum What {
    Frame(Arc<Frame>),
    Program(Arc<Program>),
}

/// What the host knows about a board, for status pages and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardView {
    /// The board answered its last request.
    pub online: bool,
    /// The generation (see [`Delivery`]) of the frame the board acknowledged last.
    pub shown: Option<u64>,
    /// Times the port was (re)opened.
    pub opens: u64,
    /// What the board said it can do in its last INFO (local pages, local scroll, …).
    pub caps: Caps,
}

/// One display on a serial port: implements [`Link`].
#[derive(Debug)]
pub struct SerialDisplay {
    address: u8,
    desired: DesiredState<Desired>,
    counters: Arc<Counters>,
    view: watch::Receiver<BoardView>,
}

impl SerialDisplay {
    pub fn address(&self) -> u8 {
        self.address
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// The counters themselves, for a status page that outlives borrowing the display.
    pub fn shared_counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Follows what the host knows about the board.
    pub fn view(&self) -> watch::Receiver<BoardView> {
        self.view.clone()
    }
}

impl SerialDisplay {
    fn want(&mut self, what: What, valid_for: Duration) -> Result<Delivery, LinkError> {
        let valid_for = valid_for_secs(valid_for)?;
        let (generation, previous) = self.desired.replace(|generation| {
            Desired::Frame(Wanted {
                what,
                valid_for,
                generation,
            })
        })?;
        let shown = self.view.borrow().shown;
        self.desired.wake();
        // The previous frame was dropped unsent if the board never acknowledged it.
        Ok(match previous {
            Desired::Frame(p) if shown.is_none_or(|s| s < p.generation) => {
                Delivery::Replaced { generation }
            }
            _ => Delivery::Queued { generation },
        })
    }
}

impl Link for SerialDisplay {
    async fn show(&mut self, frame: &Frame, valid_for: Duration) -> Result<Delivery, LinkError> {
        self.want(What::Frame(Arc::new(frame.clone())), valid_for)
    }

    /// Uploads `program` once, chunked like a FRAME; the board plays it. A board whose INFO
    /// lacks the capability, or refuses the body (too large for its store), gets nothing and
    /// the link counts an error: the caller falls back to frames.
    async fn program(
        &mut self,
        program: &Program,
        valid_for: Duration,
    ) -> Result<Delivery, LinkError> {
        program.check()?;
        self.want(What::Program(Arc::new(program.clone())), valid_for)
    }

    async fn brightness(&mut self, level: u8) -> Result<(), LinkError> {
        self.desired.setting(|s| s.brightness = Some(level))
    }

    async fn power(&mut self, on: bool) -> Result<(), LinkError> {
        self.desired.setting(|s| s.power = Some(on))
    }

    async fn clear(&mut self) -> Result<(), LinkError> {
        self.desired
            .replace(|generation| Desired::Cleared { generation })?;
        self.desired.wake();
        Ok(())
    }
}

/// The task that owns one port. Dropping it does not stop the task; dropping every
/// [`SerialDisplay`] of the port does.
#[derive(Debug)]
pub struct PortTask {
    pub handle: tokio::task::JoinHandle<()>,
}

/// Starts the owner task of `config`'s port for boards at `addresses` (1–254), and returns a
/// display handle per address, in order. Must be called inside a tokio runtime.
pub fn spawn(config: PortConfig, addresses: &[u8]) -> (PortTask, Vec<SerialDisplay>) {
    let wake = Arc::new(Notify::new());
    let mut boards = Vec::new();
    let mut displays = Vec::new();
    for &address in addresses {
        let (desired, wanted_rx, settings_rx) = DesiredState::new(wake.clone());
        let (view_tx, view_rx) = watch::channel(BoardView::default());
        let counters = Arc::new(Counters::default());
        boards.push(BoardLink::new(
            address,
            wanted_rx,
            settings_rx,
            view_tx,
            counters.clone(),
        ));
        displays.push(SerialDisplay {
            address,
            desired,
            counters,
            view: view_rx,
        });
    }
    let handle = tokio::spawn(run(config, boards, wake));
    (PortTask { handle }, displays)
}

/// The port vanished: an unplugged adapter reads end-of-file or fails (EIO).
#[derive(Debug)]
struct Gone;

/// What was shown on a board, as far as the host knows.
#[derive(Debug, Clone)]
struct Shown {
    content: u16,
    /// The picture, a base for RECT; `None` for a program (its picture moves).
    frame: Option<Arc<Frame>>,
    generation: u64,
    valid_for: u16,
    applied: Instant,
}

/// A body on its way: its chunks, the next to send, and what it will show.
#[derive(Debug)]
struct Transfer {
    chunks: Vec<Message>,
    next: usize,
    is_rect: bool,
    shown: Shown,
}

#[derive(Debug)]
enum Work {
    /// `probe`: the board is offline; one attempt per probe, so that a silent board costs
    /// the bus one HELLO timeout per probe interval.
    Hello {
        probe: bool,
    },
    Chunk {
        completing: bool,
    },
    Heartbeat,
    Brightness(u8),
    Power(bool),
    Clear {
        generation: u64,
    },
}

/// The host's state for one board.
#[derive(Debug)]
struct BoardLink {
    address: u8,
    wanted: watch::Receiver<Desired>,
    settings: watch::Receiver<Settings>,
    view: watch::Sender<BoardView>,
    counters: Arc<Counters>,
    seq: Sequencer,
    /// Settings the board has taken (or refused: not sent again); forgotten when the
    /// board may have restarted.
    settled: Settings,
    /// The withdrawal the board has carried out.
    cleared: Option<u64>,
    /// Some while the board is online.
    info: Option<Info>,
    probe_at: Instant,
    backoff: Duration,
    /// The board stopped answering; HELLOs are single probes until it answers.
    probing: bool,
    shown: Option<Shown>,
    transfer: Option<Transfer>,
    next_content: u16,
    /// A frame the board refused for a reason a retry cannot fix; not sent again.
    refused: Option<u64>,
}

impl BoardLink {
    fn new(
        address: u8,
        wanted: watch::Receiver<Desired>,
        settings: watch::Receiver<Settings>,
        view: watch::Sender<BoardView>,
        counters: Arc<Counters>,
    ) -> BoardLink {
        BoardLink {
            address,
            wanted,
            settings,
            settled: Settings::default(),
            cleared: None,
            view,
            counters,
            seq: Sequencer::default(),
            info: None,
            probe_at: Instant::now(),
            backoff: PROBE_FIRST,
            probing: false,
            shown: None,
            transfer: None,
            next_content: 0,
            refused: None,
        }
    }

    /// After the port (re)opens: HELLO at once, then the current frame in full.
    fn reopened(&mut self) {
        self.info = None;
        self.probe_at = Instant::now();
        self.backoff = PROBE_FIRST;
        self.probing = false;
        self.shown = None;
        self.transfer = None;
        self.settled = Settings::default();
        self.cleared = None;
        self.view.send_modify(|v| {
            v.online = false;
            v.shown = None;
            v.opens += 1;
        });
    }

    fn offline(&mut self, now: Instant) {
        if self.info.is_some() {
            self.backoff = PROBE_FIRST;
        }
        self.info = None;
        self.probing = true;
        self.probe_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(PROBE_MAX);
        self.shown = None;
        self.transfer = None;
        self.settled = Settings::default();
        self.cleared = None;
        self.counters.add_error();
        self.view.send_modify(|v| {
            v.online = false;
            v.shown = None;
        });
    }

    fn closed(&self) -> bool {
        self.wanted.has_changed().is_err() && self.settings.has_changed().is_err()
    }

    /// When this board next has something to do without a new frame.
    fn deadline(&self) -> Option<Instant> {
        if self.info.is_none() {
            return Some(self.probe_at);
        }
        self.shown
            .as_ref()
            .map(|s| s.applied + heartbeat_after(s.valid_for))
    }

    fn content_id(&mut self) -> u16 {
        self.next_content = self.next_content.checked_add(1).unwrap_or(1);
        self.next_content
    }

    /// The next request for this board, if it has one now.
    fn next_work(&mut self, now: Instant) -> Option<(Packet, Work)> {
        let Some(info) = &self.info else {
            return (now >= self.probe_at).then(|| {
                let probe = self.probing;
                (
                    self.seq.request(self.address, Message::Hello),
                    Work::Hello { probe },
                )
            });
        };
        let buffer = usize::from(info.buffer);
        if self.transfer.is_none() {
            // Power and brightness go before pictures: they are small and the operator
            // expects them at once.
            let settings = *self.settings.borrow_and_update();
            if let Some(on) = settings.power
                && self.settled.power != Some(on)
            {
                let packet = self.seq.request(self.address, Message::Power(on));
                return Some((packet, Work::Power(on)));
            }
            if let Some(level) = settings.brightness
                && self.settled.brightness != Some(level)
            {
                let packet = self.seq.request(self.address, Message::Brightness(level));
                return Some((packet, Work::Brightness(level)));
            }
            let desired = self.wanted.borrow_and_update().clone();
            if let Desired::Cleared { generation } = desired
                && self.cleared != Some(generation)
            {
                let packet = self
                    .seq
                    .request(self.address, Message::Clear(ClearMode::Blank));
                return Some((packet, Work::Clear { generation }));
            }
            if let Desired::Frame(wanted) = desired
                && self
                    .shown
                    .as_ref()
                    .is_none_or(|s| s.generation != wanted.generation)
                && self.refused != Some(wanted.generation)
            {
                self.transfer = self.start(&wanted, buffer);
            }
        }
        if let Some(t) = &self.transfer {
            let completing = t.next + 1 == t.chunks.len();
            let message = t.chunks[t.next].clone();
            return Some((
                self.seq.request(self.address, message),
                Work::Chunk { completing },
            ));
        }
        let shown = self.shown.as_ref()?;
        let due = shown.applied + heartbeat_after(shown.valid_for);
        (now >= due).then(|| {
            let message = Message::Heartbeat {
                content: shown.content,
                extend: shown.valid_for,
            };
            (self.seq.request(self.address, message), Work::Heartbeat)
        })
    }

    /// The transfer that puts `wanted` on the board: for a frame RECT from what it shows
    /// when that is smaller, else FRAME; for a program, PROGRAM.
    fn start(&mut self, wanted: &Wanted, buffer: usize) -> Option<Transfer> {
        let info = self.info.as_ref()?;
        let board = (u32::from(info.width), u32::from(info.height), info.format);
        let (geometry, playable) = match &wanted.what {
            What::Frame(f) => ((f.width, f.height, f.format), true),
            What::Program(p) => (p.geometry(), p.playable_with(info.caps)),
        };
        if geometry != board || !playable {
            // Rendered for another board, or a program this board cannot play: nothing to
            // send until the caller sends something else.
            self.counters.add_error();
            self.refused = Some(wanted.generation);
            return None;
        }
        let content = self.content_id();
        let (body, bytes, frame) = match &wanted.what {
            What::Frame(frame) => {
                let full = Body::Frame(FrameBody::from_frame(frame, content, wanted.valid_for));
                let rect = self.shown.as_ref().and_then(|s| {
                    let base = s.frame.as_ref()?;
                    RectBody::from_diff(base, frame, s.content, content, wanted.valid_for)
                        .map(Body::Rect)
                });
                let full_bytes = full.encode().ok()?;
                let (body, bytes) = match rect.and_then(|r| r.encode().ok().map(|b| (r, b))) {
                    Some((rect, bytes)) if bytes.len() < full_bytes.len() => (rect, bytes),
                    _ => (full, full_bytes),
                };
                (body, bytes, Some(frame.clone()))
            }
            What::Program(program) => {
                let encoded = program
                    .body(content, wanted.valid_for)
                    .map(Body::Program)
                    .and_then(|b| b.encode().map(|bytes| (b, bytes)));
                let Ok((body, bytes)) = encoded else {
                    self.counters.add_error();
                    self.refused = Some(wanted.generation);
                    return None;
                };
                (body, bytes, None)
            }
        };
        let xfer = self.seq.next_xfer();
        let Ok(chunks) = split(body.kind(), xfer, &bytes, buffer) else {
            self.counters.add_error();
            self.refused = Some(wanted.generation);
            return None;
        };
        Some(Transfer {
            chunks: chunks.into_iter().map(Message::Chunk).collect(),
            next: 0,
            is_rect: matches!(body, Body::Rect(_)),
            shown: Shown {
                content,
                frame,
                generation: wanted.generation,
                valid_for: wanted.valid_for,
                applied: Instant::now(),
            },
        })
    }

    /// Acts on the outcome of one exchange: the reply, or `None` after every attempt failed.
    fn outcome(&mut self, work: &Work, reply: Option<Message>, now: Instant) {
        let Some(reply) = reply else {
            self.offline(now);
            return;
        };
        self.counters.acked(now);
        match (work, reply) {
            (Work::Hello { .. }, Message::Info(info)) => {
                let caps = info.caps;
                self.info = Some(info);
                self.backoff = PROBE_FIRST;
                self.probing = false;
                self.view.send_modify(|v| {
                    v.online = true;
                    v.caps = caps;
                });
            }
            (Work::Chunk { completing }, Message::Ack) => {
                let Some(t) = self.transfer.as_mut() else {
                    return;
                };
                t.next += 1;
                if (*completing || t.next >= t.chunks.len())
                    && let Some(t) = self.transfer.take()
                {
                    let mut shown = t.shown;
                    shown.applied = now;
                    let generation = shown.generation;
                    self.shown = Some(shown);
                    self.counters.add_frame();
                    self.view.send_modify(|v| v.shown = Some(generation));
                }
            }
            (Work::Chunk { .. }, Message::Nak { reason, detail }) => self.refusal(reason, detail),
            (Work::Power(on), reply @ (Message::Ack | Message::Nak { .. })) => {
                if reply != Message::Ack {
                    self.counters.add_error();
                }
                self.settled.power = Some(*on);
            }
            (Work::Brightness(level), reply @ (Message::Ack | Message::Nak { .. })) => {
                // A level the board refuses (above its maximum) is not sent again.
                if reply != Message::Ack {
                    self.counters.add_error();
                }
                self.settled.brightness = Some(*level);
            }
            (Work::Clear { generation }, Message::Ack) => {
                self.cleared = Some(*generation);
                self.shown = None;
                self.view.send_modify(|v| v.shown = None);
            }
            (Work::Heartbeat, Message::Status(status)) => {
                if let Some(shown) = self.shown.as_mut() {
                    if status.content == shown.content {
                        shown.applied = now;
                    } else {
                        // The board lost it (reset, expiry): send it again in full.
                        self.shown = None;
                    }
                }
            }
            (Work::Hello { .. }, Message::Nak { .. }) => {
                // A board that refuses HELLO speaks another version: leave it offline.
                self.offline(now);
            }
            _ => {
                // A reply that does not answer the request: the board is confused; start
                // over with HELLO.
                self.counters.add_error();
                self.info = None;
                self.probe_at = now;
                self.transfer = None;
                self.shown = None;
            }
        }
    }

    fn refusal(&mut self, reason: NakReason, detail: u8) {
        match reason {
            NakReason::Missing => {
                // Resend from the first missing chunk on (with new sequence numbers).
                self.counters.add_retry();
                if let Some(t) = self.transfer.as_mut() {
                    t.next = usize::from(detail).min(t.chunks.len().saturating_sub(1));
                }
            }
            NakReason::NoBase => {
                self.counters.add_retry();
                self.transfer = None;
                self.shown = None;
            }
            NakReason::Format => {
                self.counters.add_error();
                self.transfer = None;
                self.shown = None;
                self.info = None;
                self.probe_at = Instant::now();
            }
            _ => {
                self.counters.add_error();
                match self.transfer.take() {
                    // A refused RECT: try the full FRAME.
                    Some(t) if t.is_rect => self.shown = None,
                    Some(t) => self.refused = Some(t.shown.generation),
                    None => {}
                }
            }
        }
    }
}

async fn run(config: PortConfig, mut boards: Vec<BoardLink>, wake: Arc<Notify>) {
    let mut backoff = REOPEN_FIRST;
    loop {
        if boards.iter().all(BoardLink::closed) {
            return;
        }
        let opened =
            tokio_serial::new(config.path.to_string_lossy(), config.baud).open_native_async();
        if let Ok(port) = opened {
            backoff = REOPEN_FIRST;
            for board in &mut boards {
                board.reopened();
            }
            let mut session = Session {
                config: &config,
                port,
                decoder: Decoder::new(MAX_REPLY),
                buf: vec![0; 256],
            };
            match session.serve(&mut boards, &wake).await {
                Ok(()) => return,
                Err(Gone) => {
                    for board in &mut boards {
                        board.view.send_modify(|v| v.online = false);
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(REOPEN_MAX);
    }
}

struct Session<'a> {
    config: &'a PortConfig,
    port: tokio_serial::SerialStream,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Session<'_> {
    /// Serves the boards until the port goes (`Err`) or every display is dropped (`Ok`).
    async fn serve(&mut self, boards: &mut [BoardLink], wake: &Notify) -> Result<(), Gone> {
        let mut turn = 0;
        loop {
            if boards.iter().all(BoardLink::closed) {
                return Ok(());
            }
            let now = Instant::now();
            let mut worked = false;
            for i in 0..boards.len() {
                let index = (turn + i) % boards.len();
                let board = &mut boards[index];
                if let Some((packet, work)) = board.next_work(now) {
                    turn = index + 1;
                    let reply = self.exchange(board, &packet, &work).await?;
                    board.outcome(&work, reply, Instant::now());
                    worked = true;
                    break;
                }
            }
            if worked {
                continue;
            }
            let deadline = boards.iter().filter_map(BoardLink::deadline).min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = sleep => {}
                read = self.port.read(&mut self.buf) => {
                    // Unsolicited bytes (a late reply, noise) are dropped; the line is ours.
                    match read {
                        Ok(0) | Err(_) => return Err(Gone),
                        Ok(n) => { let _ = self.decoder.push(&self.buf[..n]); }
                    }
                }
            }
        }
    }

    /// One request, with up to 3 retries of the same bytes. `None`: no answer at all.
    async fn exchange(
        &mut self,
        board: &BoardLink,
        packet: &Packet,
        work: &Work,
    ) -> Result<Option<Message>, Gone> {
        let Ok(wire) = packet.encode() else {
            board.counters.add_error();
            return Ok(None);
        };
        let (reply_len, completing) = match work {
            Work::Hello { .. } => (INFO_WIRE, false),
            Work::Chunk { completing } => (ACK_WIRE, *completing),
            Work::Heartbeat => (STATUS_WIRE, false),
            Work::Brightness(_) | Work::Power(_) | Work::Clear { .. } => (ACK_WIRE, false),
        };
        let timeout = self.config.line_time(wire.len())
            + self.config.line_time(reply_len)
            + TURNAROUND
            + if completing {
                COMPLETING
            } else {
                Duration::ZERO
            }
            + MARGIN;
        let attempts = match work {
            Work::Hello { probe: true } => 1,
            _ => ATTEMPTS,
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                board.counters.add_retry();
            }
            // A line that cannot take the bytes in far more than their line time is stuck
            // (a pseudo-terminal nobody reads, a wedged adapter): reopen it.
            let stall = self.config.line_time(wire.len()) + WRITE_STALL;
            match tokio::time::timeout(stall, self.port.write_all(&wire)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(Gone),
            }
            board.counters.add_bytes(wire.len());
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let read = tokio::time::timeout_at(deadline, self.port.read(&mut self.buf)).await;
                let n = match read {
                    Err(_elapsed) => break,
                    Ok(Ok(0) | Err(_)) => return Err(Gone),
                    Ok(Ok(n)) => n,
                };
                let answer = self
                    .decoder
                    .push(&self.buf[..n])
                    .into_iter()
                    .filter_map(Result::ok)
                    .find(|p| p.dst == HOST && p.src == board.address && p.seq == packet.seq);
                match answer.map(|p| p.message) {
                    Some(Message::Nak {
                        reason: NakReason::Busy,
                        ..
                    }) => {
                        // Counts as an attempt; wait out the rest of the timeout first.
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Some(message) => return Ok(Some(message)),
                    None => {}
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_still_picture_is_confirmed_at_least_every_minute() {
        // Half the validity for short ones, as links.md says; never longer than a minute, as
        // protocol.md says, so that a board that died is known offline within a minute.
        assert_eq!(heartbeat_after(40), Duration::from_secs(20));
        assert_eq!(heartbeat_after(120), Duration::from_secs(60));
        assert_eq!(heartbeat_after(3660), Duration::from_secs(60));
    }
}
