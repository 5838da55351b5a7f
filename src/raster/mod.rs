//! Raster: laid-out text → pixels in the board's format.
//!
//! Pure: no I/O, no clock. Raster runs only for what is shown; the schedule never needs it.

pub mod frame;
