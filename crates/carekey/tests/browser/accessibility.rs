//! Every page, in both languages and in its error states, checked in a real
//! browser: axe-core finds no WCAG 2.1 A/AA violation, patient pages fit a
//! 360×640 phone with 44 px tap targets, and every input asks for the right
//! keyboard and autofill. Also the screenshot command (an ignored test).

use crate::driver::{browser_on, Screen};
use crate::helpers::{spawn_app, Backend};
use crate::inspect::{axe_source, Inspector};
use crate::tour::{patient_tour, populate, staff_tour};
use std::path::PathBuf;

/// What to do at each stop, besides the checks every stop gets.
#[derive(Clone, Copy)]
enum Mode {
    Check,
    Screenshots,
}

/// Walks the staff pages on a desktop and the patient pages on a phone, in
/// one language; the problems found (empty when all is well).
async fn tour(lang: &'static str, mode: Mode) -> Option<(Vec<String>, usize)> {
    let axe = match mode {
        Mode::Check => Some(axe_source()?),
        Mode::Screenshots => None,
    };
    let folder = match mode {
        Mode::Screenshots => Some(screenshot_folder()),
        Mode::Check => None,
    };
    let (desk, _desk_driver) = browser_on(Screen::Desktop).await?;
    let (phone, _phone_driver) = browser_on(Screen::Phone).await?;
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    populate(&app).await;

    let mut staff = Inspector::new(lang, "staff");
    staff.axe = axe.clone();
    staff.screenshots = folder.clone();
    staff.begin(&desk, &app, "/staff/signin").await;
    let activation_code = staff_tour(&desk, &app, &mut staff).await;

    let mut patient = Inspector::new(lang, "patient");
    patient.axe = axe;
    patient.phone = true;
    patient.screenshots = folder;
    patient.begin(&phone, &app, "/signin").await;
    patient_tour(&phone, &app, &mut patient, &activation_code).await;

    desk.close().await.unwrap();
    phone.close().await.unwrap();
    let stops = staff.stops.len() + patient.stops.len();
    let mut problems = staff.problems;
    problems.extend(patient.problems);
    Some((problems, stops))
}

fn screenshot_folder() -> PathBuf {
    std::env::var_os("CAREKEY_SCREENSHOTS").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/screenshots"
            ))
        },
        PathBuf::from,
    )
}

async fn check_every_page(lang: &'static str) {
    let Some((problems, stops)) = tour(lang, Mode::Check).await else {
        return;
    };
    assert!(stops >= 40, "the tour stopped at only {stops} pages");
    assert!(
        problems.is_empty(),
        "{} problems on the pages in {lang}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_english_is_accessible_and_fits_a_phone() {
    check_every_page("en").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_spanish_is_accessible_and_fits_a_phone() {
    check_every_page("es").await;
}

/// `cargo test -p carekey --test browser -- --ignored screenshots`: a PNG of
/// every stop of the tour (patient pages at phone size, staff pages at
/// desktop size) in both languages, into `target/screenshots/` (or the
/// folder in `CAREKEY_SCREENSHOTS`). A few are copied into `docs/screenshots/`
/// for the README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots; run on purpose"]
async fn screenshots() {
    for lang in ["en", "es"] {
        let Some((_, stops)) = tour(lang, Mode::Screenshots).await else {
            return;
        };
        eprintln!(
            "{stops} screenshots in {lang} written to {}",
            screenshot_folder().display()
        );
    }
}
