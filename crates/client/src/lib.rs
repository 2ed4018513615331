//! The dronecast viewer: receives a stream from a cache-server (or a drone), decodes the JPEG
//! frames and shows them in a window, or measures them headless.
//!
//! # Layout
//! - [`decode`] — bounded JPEG decoding into a reused buffer: only at the size the frame
//!   header says, within `framing::MAX_DIMENSION`; failures logged once per burst.
//! - [`record`] — `--record`: the received JPEGs as an MJPEG file.
//! - [`report`] — per-viewer measurements (order, freshness, rate) in constant memory, and
//!   their report (JSON, or one line).
//! - [`headless`] — receive N frames without a window, optionally recording them; the
//!   `--headless` program (report on stdout, exit status).
//! - [`window`] — the minifb window.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod headless;
pub mod record;
pub mod report;
pub mod window;

pub use report::Report;
