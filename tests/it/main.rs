//! The integration tests: one binary, small fixture helpers in `fixture`.

mod alerts;
mod audit;
mod catalogue;
mod cli;
mod daemon;
mod example;
mod faults;
mod fixture;
mod generated;
mod kannel;
mod kiosk;
mod link;
mod mqtt;
mod preview;
mod process;
mod publish;
mod render;
mod schedule;
mod sms;
mod sms_dispatch;
mod sms_ledger;
mod validate;
