//! The simulated link: a board inside the process.
//!
//! Owns nothing but the simulated board's state: the newest frame or program handed to it,
//! its brightness and power. It behaves like a board that plays programs by itself and takes
//! every frame at once, so a site with `simulate: true` runs the whole daemon — schedule,
//! render, status page, audit — with no hardware. The daemon's status page draws what a
//! display shows from the daemon's own record, so this link keeps only what a test or the
//! status API asks of a board: what it was told last.
//!
//! Must not touch: ports, brokers, protocol bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Counters, CountersSnapshot, Delivery, Link, LinkError, Program, valid_for_secs};
use crate::raster::frame::Frame;

/// What a simulated board was told last.
#[derive(Debug, Clone, Default)]
pub struct SimulatedBoard {
    pub content: SimulatedContent,
    /// When the content stops being valid (the board then goes dark, as a real one does).
    pub valid_until: Option<Instant>,
    pub brightness: Option<u8>,
    /// `None`: never switched; the board is on.
    pub power: Option<bool>,
    /// Frames, programs and withdrawals taken, in order; see [`Delivery`].
    pub generation: u64,
}

#[derive(Debug, Clone, Default)]
pub enum SimulatedContent {
    #[default]
    Nothing,
    Frame(Arc<Frame>),
    Program(Arc<Program>),
}

/// One simulated display: implements [`Link`].
#[derive(Debug)]
pub struct SimulatedDisplay {
    board: watch::Sender<SimulatedBoard>,
    counters: Arc<Counters>,
}

impl Default for SimulatedDisplay {
    fn default() -> Self {
        SimulatedDisplay::new()
    }
}

impl SimulatedDisplay {
    pub fn new() -> SimulatedDisplay {
        SimulatedDisplay {
            board: watch::channel(SimulatedBoard::default()).0,
            counters: Arc::default(),
        }
    }

    /// Follows what the board was told.
    pub fn board(&self) -> watch::Receiver<SimulatedBoard> {
        self.board.subscribe()
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// The counters themselves, for a status page that outlives borrowing the display.
    pub fn shared_counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn take(&mut self, content: SimulatedContent, bytes: usize, valid_for: Duration) -> Delivery {
        let now = Instant::now();
        self.counters.add_frame();
        self.counters.add_bytes(bytes);
        self.counters.acked(now);
        let mut generation = 0;
        self.board.send_modify(|b| {
            b.generation += 1;
            generation = b.generation;
            b.content = content;
            b.valid_until = Some(now + valid_for);
        });
        Delivery::Queued { generation }
    }
}

impl Link for SimulatedDisplay {
    async fn show(&mut self, frame: &Frame, valid_for: Duration) -> Result<Delivery, LinkError> {
        let secs = valid_for_secs(valid_for)?;
        let bytes = frame.data.len();
        Ok(self.take(
            SimulatedContent::Frame(Arc::new(frame.clone())),
            bytes,
            Duration::from_secs(secs.into()),
        ))
    }

    async fn program(
        &mut self,
        program: &Program,
        valid_for: Duration,
    ) -> Result<Delivery, LinkError> {
        let secs = valid_for_secs(valid_for)?;
        program.check()?;
        let bytes = match program {
            Program::Pages { pages, .. } => pages.iter().map(|p| p.data.len()).sum(),
            Program::Strip {
                background, strip, ..
            } => background.data.len() + strip.data.len(),
        };
        Ok(self.take(
            SimulatedContent::Program(Arc::new(program.clone())),
            bytes,
            Duration::from_secs(secs.into()),
        ))
    }

    async fn brightness(&mut self, level: u8) -> Result<(), LinkError> {
        self.board.send_modify(|b| b.brightness = Some(level));
        Ok(())
    }

    async fn power(&mut self, on: bool) -> Result<(), LinkError> {
        self.board.send_modify(|b| b.power = Some(on));
        Ok(())
    }

    async fn clear(&mut self) -> Result<(), LinkError> {
        self.board.send_modify(|b| {
            b.generation += 1;
            b.content = SimulatedContent::Nothing;
            b.valid_until = None;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::PixelFormat;

    #[tokio::test]
    async fn a_simulated_board_keeps_the_newest_content_and_counts_it() {
        let mut display = SimulatedDisplay::new();
        let board = display.board();
        let frame = Frame::new(8, 8, PixelFormat::Mono);
        let first = display
            .show(&frame, Duration::from_secs(5))
            .await
            .expect("shown");
        assert_eq!(first.generation(), 1);
        let program = Program::Pages {
            pages: vec![frame.clone(), frame.clone()],
            dwell: Duration::from_secs(2),
        };
        display
            .program(&program, Duration::from_secs(5))
            .await
            .expect("taken");
        assert!(matches!(
            board.borrow().content,
            SimulatedContent::Program(_)
        ));
        assert_eq!(display.counters().frames, 2);
        assert_eq!(display.counters().bytes, 3 * 8);
        display.power(false).await.expect("power");
        display.clear().await.expect("clear");
        let now = board.borrow().clone();
        assert!(matches!(now.content, SimulatedContent::Nothing));
        assert_eq!(now.power, Some(false));
        assert_eq!(now.generation, 3);
        // The protocol's limits hold here too, so a site tested simulated runs on boards.
        assert_eq!(
            display.show(&frame, Duration::ZERO).await,
            Err(LinkError::ValidFor(Duration::ZERO))
        );
    }
}
