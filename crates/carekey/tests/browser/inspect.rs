//! What is checked at each stop of the tour: WCAG 2.1 A/AA by axe-core, and
//! on a phone no sideways scrolling, tap targets of 44×44 CSS px, and inputs
//! that ask the phone for the right keyboard and autofill. Problems are
//! collected, not thrown, so one run lists every page that needs work.

use crate::helpers::TestApp;
use fantoccini::Client;
use serde::Deserialize;
use std::path::PathBuf;

/// axe-core, pinned in `package.json` beside this file and installed from
/// the npm registry by `npm ci` (`.ci/run` does it).
pub fn axe_source() -> Option<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/node_modules/axe-core/axe.min.js"
    );
    match std::fs::read_to_string(path) {
        Ok(source) => Some(source),
        Err(_) => {
            assert!(
                !carekey_store::testing::in_ci(),
                "CI=true but axe-core is not installed (npm ci --prefix crates/carekey/tests/browser)"
            );
            eprintln!("SKIPPED accessibility checks: axe-core not installed (npm ci --prefix crates/carekey/tests/browser)");
            None
        }
    }
}

pub struct Inspector {
    /// The language every page should be in (`en`, `es`).
    pub lang: &'static str,
    /// Run axe-core at each stop.
    pub axe: Option<String>,
    /// Check phone layout, tap targets and input attributes.
    pub phone: bool,
    /// Save a PNG of each stop here.
    pub screenshots: Option<PathBuf>,
    /// A prefix for stop names (`patient`, `staff`).
    pub part: &'static str,
    /// The tour is behind sign-in now: every page must offer sign-out.
    pub signed_in: bool,
    pub problems: Vec<String>,
    pub stops: Vec<String>,
}

impl Inspector {
    pub fn new(lang: &'static str, part: &'static str) -> Self {
        Self {
            lang,
            axe: None,
            phone: false,
            screenshots: None,
            part,
            signed_in: false,
            problems: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// Goes to a page of the app (the language was chosen by [`Self::begin`]).
    pub async fn open(&self, client: &Client, app: &TestApp, path: &str) {
        client.goto(&app.url(path)).await.unwrap();
    }

    /// Chooses the tour's language the way a patient does, by the page's
    /// language link (`?lang=`, remembered in a cookie).
    pub async fn begin(&self, client: &Client, app: &TestApp, path: &str) {
        client
            .goto(&app.url(&format!("{path}?lang={}", self.lang)))
            .await
            .unwrap();
    }

    /// Looks at the page the browser shows now.
    pub async fn look(&mut self, client: &Client, stop: &str) {
        let stop = format!("{}/{stop}", self.part);
        self.stops.push(stop.clone());
        wait_until_loaded(client).await;
        let lang = run(client, "return document.documentElement.lang;").await;
        if lang != serde_json::json!(self.lang) {
            self.problems
                .push(format!("{stop}: the page is in {lang}, not {}", self.lang));
        }
        let text = run(client, "return document.body.innerText;").await;
        let text = text.as_str().unwrap_or_default();
        for sign in ["Unknown localization", "{$", "{ $"] {
            if text.contains(sign) {
                self.problems.push(format!(
                    "{stop}: a message is missing from the catalogue ({sign:?} on the page)"
                ));
            }
        }
        if self.signed_in
            && run(
                client,
                "return document.querySelector('header form.sign-out button') !== null;",
            )
            .await
                != serde_json::Value::Bool(true)
        {
            self.problems.push(format!(
                "{stop}: a signed-in page without a sign-out button in its header"
            ));
        }
        if let Some(axe) = self.axe.clone() {
            for violation in axe_violations(client, &axe).await {
                self.problems.push(format!("{stop}: {violation}"));
            }
        }
        if self.phone {
            for problem in phone_problems(client).await {
                self.problems.push(format!("{stop}: {problem}"));
            }
        }
        for problem in input_problems(client, self.part == "staff").await {
            self.problems.push(format!("{stop}: {problem}"));
        }
        if let Some(folder) = &self.screenshots {
            std::fs::create_dir_all(folder).unwrap();
            let png = client.screenshot().await.unwrap();
            let name = format!("{}-{}.png", self.lang, stop.replace('/', "-"));
            std::fs::write(folder.join(name), png).unwrap();
        }
    }
}

async fn run(client: &Client, script: &str) -> serde_json::Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
}

async fn wait_until_loaded(client: &Client) {
    for _ in 0..100 {
        if run(client, "return document.readyState;").await == "complete" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the page never finished loading");
}

#[derive(Deserialize)]
struct Violation {
    id: String,
    impact: Option<String>,
    help: String,
    nodes: Vec<String>,
}

/// axe-core's WCAG 2.1 A and AA violations on the current page.
async fn axe_violations(client: &Client, axe: &str) -> Vec<String> {
    // WebDriver scripts run outside the page's CSP, as a browser extension's would.
    if run(client, "return typeof window.axe;").await != "object" {
        client.execute(axe, vec![]).await.unwrap();
    }
    let result = client
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            window.axe
              .run(document, {
                runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
                resultTypes: ["violations"],
              })
              .then((r) => done(r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ") + " — " + (n.failureSummary || "")),
              }))))
              .catch((e) => done([{ id: "axe-error", impact: null, help: String(e), nodes: [] }]));
            "#,
            vec![],
        )
        .await
        .unwrap();
    let violations: Vec<Violation> = serde_json::from_value(result).unwrap();
    violations
        .into_iter()
        .map(|v| {
            format!(
                "axe {} ({}): {} at {}",
                v.id,
                v.impact.unwrap_or_default(),
                v.help,
                v.nodes.join("; ")
            )
        })
        .collect()
}

/// Sideways scrolling and small tap targets. A link inside a sentence is
/// exempt, as in WCAG 2.5.5 (making it 44 px tall would break the line).
async fn phone_problems(client: &Client) -> Vec<String> {
    let found = run(
        client,
        r#"
        const problems = [];
        const page = document.documentElement;
        if (page.scrollWidth > window.innerWidth) {
          problems.push(`scrolls sideways: ${page.scrollWidth} px wide in a ${window.innerWidth} px screen`);
        }
        const targets = "a[href], button, input:not([type=hidden]), select, textarea, summary";
        for (const el of document.querySelectorAll(targets)) {
          const style = getComputedStyle(el);
          if (el.closest("[hidden]") || style.display === "none" || style.visibility === "hidden"
              || el.getClientRects().length === 0) continue;
          if (el.classList.contains("skip-link") && document.activeElement !== el) continue;
          if (el.tagName === "A" && [...el.parentElement.childNodes]
                .some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== "")) continue;
          let box = el.getBoundingClientRect();
          if (el.type === "radio" || el.type === "checkbox") {
            const row = el.closest(".choice, label") || (el.labels && el.labels[0]);
            if (row) box = row.getBoundingClientRect();
          }
          if (box.width < 44 || box.height < 44) {
            const name = el.id ? `#${el.id}` : el.outerHTML.slice(0, 70);
            problems.push(`tap target ${name} is ${Math.round(box.width)}×${Math.round(box.height)} px`);
          }
        }
        return problems;
        "#,
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// What each input must ask of the browser, by its `name`: its `type`, its
/// `autocomplete` token (so password managers fill and save, and phones offer
/// the code from a message) and `inputmode` (the number pad for digits).
/// Several allowed forms are listed where a name serves several pages. Staff
/// pages edit other people's details, so autofill is off there.
fn allowed(name: &str, staff: bool) -> &'static [(&'static str, &'static str, &'static str)] {
    match (name, staff) {
        ("login", _) => &[("text", "username", "")],
        ("username", _) => &[("text", "username", "")],
        ("identifier", _) => &[("text", "username", ""), ("text", "email", "")],
        ("password" | "current_password", _) => &[("password", "current-password", "")],
        ("new_password" | "new_password_confirm", _) => &[("password", "new-password", "")],
        // Numeric codes from a message; the clinic's codes have letters.
        ("code", _) => &[
            ("text", "one-time-code", "numeric"),
            ("text", "one-time-code", ""),
        ],
        ("totp", _) => &[("text", "one-time-code", "numeric")],
        ("birth_month", _) => &[("text", "bday-month", "numeric")],
        ("birth_day", _) => &[("text", "bday-day", "numeric")],
        ("birth_year", _) => &[("text", "bday-year", "numeric")],
        ("postal_code", _) => &[("text", "postal-code", "")],
        ("email", false) => &[("email", "email", "")],
        ("phone", false) => &[("tel", "tel", "")],
        ("value", false) => &[("email", "email", ""), ("tel", "tel", "")],
        ("email", true) => &[("email", "off", "")],
        ("phone", true) => &[("tel", "off", "")],
        ("query", true) => &[("search", "off", "")],
        ("reason" | "note", true) => &[("text", "off", "")],
        ("method", true) => &[("select-one", "", "")],
        _ => &[],
    }
}

async fn input_problems(client: &Client, staff: bool) -> Vec<String> {
    let found = run(
        client,
        r#"
        return [...document.querySelectorAll("input, select, textarea")]
          .filter((el) => !["hidden", "radio", "checkbox", "submit"].includes(el.type) && !el.hidden)
          .map((el) => [el.name, el.type, el.getAttribute("autocomplete") || "",
                        el.getAttribute("inputmode") || ""]);
        "#,
    )
    .await;
    let inputs: Vec<(String, String, String, String)> = serde_json::from_value(found).unwrap();
    inputs
        .into_iter()
        .filter_map(|(name, kind, autocomplete, inputmode)| {
            let rules = allowed(&name, staff);
            let fits = rules.iter().any(|(t, a, i)| {
                *t == kind.as_str() && *a == autocomplete.as_str() && *i == inputmode.as_str()
            });
            (!fits).then(|| {
                format!(
                    "input {name:?} is type={kind:?} autocomplete={autocomplete:?} inputmode={inputmode:?}; expected one of {rules:?}"
                )
            })
        })
        .collect()
}
