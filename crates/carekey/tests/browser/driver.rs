//! Headless Chromium driven through ChromeDriver: starting it at desktop or
//! phone size, and the few moves every browser test makes (go, fill, click,
//! wait for a page). Without ChromeDriver a test skips with a message, except
//! under `CI=true`, where its absence fails the run.

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The screen a page is looked at on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// A 1280×800 desktop window, as the front desk uses.
    Desktop,
    /// A 360×640 phone with touch (Chrome's device emulation), as many patients use.
    Phone,
}

/// A ChromeDriver process that ends with the test.
pub struct Driver {
    process: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn chromedriver_path() -> Option<String> {
    let candidates = [
        std::env::var("CHROMEDRIVER").ok(),
        Some("/usr/bin/chromedriver".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| std::path::Path::new(p).exists())
}

/// A desktop browser, or `None` (with a message) where ChromeDriver is missing outside CI.
pub async fn browser() -> Option<(Client, Driver)> {
    browser_on(Screen::Desktop).await
}

pub async fn browser_on(screen: Screen) -> Option<(Client, Driver)> {
    let Some(chromedriver) = chromedriver_path() else {
        assert!(
            !carekey_store::testing::in_ci(),
            "CI=true but chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED browser test: chromedriver not found (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
    };
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut options = serde_json::json!({
        "binary": chromium,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--window-size=1280,800",
            format!("--user-data-dir={}", driver._profile.path().display()),
        ]
    });
    if screen == Screen::Phone {
        options["mobileEmulation"] = serde_json::json!({
            "deviceMetrics": { "width": 360, "height": 640, "pixelRatio": 2.0, "touch": true, "mobile": true }
        });
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    for _ in 0..100 {
        // ChromeDriver listens on plain http on loopback: no TLS connector is needed.
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await;
        if let Ok(client) = attempt {
            return Some((client, driver));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not start a Chromium session through chromedriver");
}

/// Waits until the page's path is `path` (pages load asynchronously after a click).
pub async fn wait_for_path(client: &Client, path: &str) {
    for _ in 0..100 {
        if client.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "never reached {path}; at {}",
        client.current_url().await.unwrap()
    );
}

/// Waits until the page's path starts with `prefix`.
pub async fn wait_for_path_prefix(client: &Client, prefix: &str) {
    for _ in 0..100 {
        if client
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with(prefix)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {prefix}…");
}

/// Fills in the sign-in form (replacing what is in it) and submits it.
pub async fn submit_sign_in(client: &Client, login: &str, password: &str) {
    fill(client, "login", login).await;
    fill(client, "password", password).await;
    click(client, "form[action='/signin'] button[type=submit]").await;
}

/// The text of the first element matching `css`, waiting for it to appear
/// (after a form post the new page may still be loading).
pub async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Types into a field by id, replacing what is there.
pub async fn fill(client: &Client, id: &str, text: &str) {
    let field = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no field #{id} on the page: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("nothing to click at {css}: {e}"))
        .click()
        .await
        .unwrap();
}
