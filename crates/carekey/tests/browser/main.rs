//! Browser tests: headless Chromium, driven through ChromeDriver, uses the
//! real pages — whole journeys ([`flows`]), and a tour of every page state
//! checked for accessibility and phone use ([`accessibility`]).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../api/sinks.rs"]
#[allow(dead_code)]
mod sinks;

mod accessibility;
mod driver;
mod flows;
mod inspect;
mod tour;
