//! FHIR R4 documents from an EHR export: any JSON is read into patients and
//! skipped entries (or refused whole) without a panic, and every entry is
//! accounted for exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(read) = carekey_domain::fhir::read_patients(&document, None, "US") else {
        return;
    };
    let entries = match document["resourceType"].as_str() {
        Some("Bundle") => document["entry"].as_array().map_or(0, Vec::len),
        _ => 1,
    };
    assert_eq!(read.patients.len() + read.skipped.len(), entries);
});
