//! The SMS side: bulletin text, segmentation, subscribers, each gateway's requests and answers
//! (the pure core), and at the edge the ledger, the HTTP client and the dispatcher.
//!
//! The pure core — `bulletin`, `segments`, `subscribers`, `gateways` — turns an item into the
//! text that goes out, counts what it costs, chooses who gets it, and expresses a batch in a
//! provider's terms; it does no network I/O, reads no clock and never touches the ledger
//! ([`secret::load`] reads an environment variable or a file when asked). The edge: `ledger`
//! (SQLite: the queue and the record of every send), `http` (the gateways' client and the
//! "certainly not sent" judgement) and `dispatch` (the sending rules, with the time passed
//! in). `docs/sms.md` is the specification.

pub mod bulletin;
pub mod dispatch;
pub mod gateways;
pub mod http;
pub mod ledger;
pub mod secret;
pub mod segments;
pub mod subscribers;
