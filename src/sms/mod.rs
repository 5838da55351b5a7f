//! The SMS side's pure core: bulletin text, segmentation, subscribers, and each gateway's
//! requests and answers.
//!
//! Owns turning an item into the text that goes out, counting what it costs, choosing who gets
//! it, and expressing a batch in a provider's terms. It must not do network I/O, read the clock
//! or touch the ledger: the dispatcher (still to come) owns sending, retries, quiet hours and
//! the SQLite ledger, and passes the time in. The one exception is [`secret::load`], which
//! reads an environment variable or a file when a command asks for it.

pub mod bulletin;
pub mod gateways;
pub mod secret;
pub mod segments;
pub mod subscribers;
