//! Configuration files: any text is loaded and checked without a panic; a
//! refused file says why, and an accepted one gives settings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match carekey::config::Config::from_toml(text) {
        Ok(config) => {
            if let Err(problems) = config.validate() {
                assert!(!problems.is_empty() && problems.iter().all(|p| !p.is_empty()));
            }
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
