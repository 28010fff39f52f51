//! CareKey's message delivery: the outbox worker that sends what use cases
//! queued, the channel senders (SMTP email, Twilio-style SMS and voice, a
//! clinic's own webhook gateway, and files for development), and the message
//! templates.

pub mod file;
pub mod render;
pub mod senders;
pub mod smtp;
pub mod twilio;
pub mod webhook;
pub mod worker;

pub use render::{render, RenderContext, Rendered};
pub use senders::{SendError, Sender, Senders};
pub use worker::{Worker, WorkerSettings};
