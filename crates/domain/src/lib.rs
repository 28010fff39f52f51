//! CareKey's domain: the product's rules as pure types and functions, with no I/O.
//!
//! Everything a reader needs to know about *what* CareKey allows lives here:
//! how identifiers are normalised, how secrets are kept, how tokens are made and
//! hashed, how lockout escalates, what the organisation's policy holds, and the
//! ports (traits) that storage implements.

pub mod audit;
pub mod clock;
pub mod fhir;
pub mod identifiers;
pub mod ids;
pub mod lockout;
pub mod message;
pub mod model;
pub mod password_rules;
pub mod policy;
pub mod ports;
pub mod rate_limit;
pub mod recovery;
pub mod secret;
pub mod session;
pub mod staff;
pub mod token;
pub mod totp;
