//! The end-to-end suite: the real application over HTTP on a real database,
//! every behaviour checked on SQLite and again on PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod concurrency;
mod contacts;
mod delivery;
mod enrollment;
mod helpers;
mod hostile;
mod openapi;
mod pages;
mod passwords;
mod recovery;
mod recovery_pages;
mod signin;
mod sinks;
mod staff;
mod staff_pages;
