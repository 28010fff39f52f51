//! Usernames, emails, phone numbers, dates of birth and the codes patients
//! type: any input is accepted or refused without a panic, and what is
//! accepted is already in its normal form (normalising it again changes nothing).
#![no_main]

use carekey_domain::identifiers::{DateOfBirth, Email, Login, PhoneE164, Username};
use carekey_domain::recovery::{normalise_crockford, normalise_numeric_code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(username) = Username::parse(text) {
        assert_eq!(Username::parse(username.as_str()).as_ref(), Ok(&username));
    }
    if let Ok(email) = Email::parse(text) {
        assert_eq!(Email::parse(email.as_str()).as_ref(), Ok(&email));
        assert!(email.as_str().starts_with(email.local_part()));
    }
    for region in ["US", "MX", "GB"] {
        if let Ok(phone) = PhoneE164::parse(text, region) {
            assert!(phone.as_str().starts_with('+'), "{phone:?}");
            assert_eq!(PhoneE164::parse(phone.as_str(), "US").as_ref(), Ok(&phone));
        }
    }
    if let Ok(date) = DateOfBirth::parse(text) {
        let written = date.date().format("%Y-%m-%d").to_string();
        assert_eq!(DateOfBirth::parse(&written), Ok(date));
    }
    let _ = Login::parse(text);
    if let Some(code) = normalise_crockford(text) {
        assert_eq!(normalise_crockford(&code).as_deref(), Some(code.as_str()));
    }
    if let Some(code) = normalise_numeric_code(text) {
        assert!(code.len() <= 12 && code.bytes().all(|b| b.is_ascii_digit()));
    }
});
