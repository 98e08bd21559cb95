//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed by `scripts/test`): one browser per test, one test's browser at a time (the
//! machine's cores are few), with a download folder of its own. Every wait is for a condition,
//! with a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// How long a browser wait lasts before the test fails.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is looked at again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A browser and its driver, removed when dropped.
pub struct Browser {
    pub client: Client,
    pub base: String,
    pub downloads: PathBuf,
    driver: Child,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that opens pages under `base`.
    pub async fn start(base: &str) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so that the browsers it starts end with it (see Drop).
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) is installed");
        let downloads =
            std::env::temp_dir().join(format!("console-downloads-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&downloads).unwrap();
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run",
                         "--disable-breakpad", "--disable-crash-reporter"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false
                }
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + BROWSER_DEADLINE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => break client,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(LOOK_AGAIN).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        Browser {
            client,
            base: base.to_owned(),
            downloads,
            driver,
            _turn: turn,
        }
    }

    /// Opens `path` under the base URL.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(BROWSER_DEADLINE)
            .every(LOOK_AGAIN)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {url:?}: {e}\n{page}")
            }
        }
    }

    /// Whether an element matching `css` is on the page now.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// The text of the first element matching `css`, if there is one now.
    pub async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        }
    }

    /// Waits until the text of `css` satisfies `wanted`; returns it.
    pub async fn wait_text(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + BROWSER_DEADLINE;
        loop {
            let text = self.text(css).await;
            if let Some(text) = text.as_deref().filter(|t| wanted(t)) {
                return text.to_owned();
            }
            if tokio::time::Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!("{css} never showed what was awaited on {url:?}; last {text:?}\n{page}");
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }

    /// Types `text` into the element matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Signs in with `token` and waits for the overview.
    pub async fn sign_in(&self, token: &str) {
        self.open("/console/sign-in").await;
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.find("#live").await;
    }

    /// POSTs a form from inside the page (with the browser's cookies) and returns the status.
    pub async fn post_form(&self, path: &str, body: &str) -> u16 {
        let script = "const [path, body, done] = arguments;
            fetch(path, {method: 'POST', body, credentials: 'same-origin',
                         headers: {'Content-Type': 'application/x-www-form-urlencoded'}})
              .then(r => done(r.status), e => done(String(e)));";
        let status = self
            .client
            .execute_async(script, vec![path.into(), body.into()])
            .await
            .unwrap();
        u16::try_from(
            status
                .as_u64()
                .unwrap_or_else(|| panic!("fetch failed: {status}")),
        )
        .unwrap()
    }

    /// The session's CSRF token, as the sign-out form carries it.
    pub async fn csrf(&self) -> String {
        self.find("form.signout input[name=csrf]")
            .await
            .attr("value")
            .await
            .unwrap()
            .unwrap()
    }

    /// Keeps a PNG of the page as `name.png` in the folder `FULFILMENT_SCREENSHOTS` names, when
    /// it names one (how the pictures in docs/console/ are made).
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("FULFILMENT_SCREENSHOTS") else {
            return;
        };
        self.client
            .execute("window.scrollTo(0, 0);", vec![])
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }

    /// Waits until a finished download named `name` is in the download folder; its bytes.
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let deadline = tokio::time::Instant::now() + BROWSER_DEADLINE;
        loop {
            // Chromium writes `<name>.crdownload` and renames it when the download is whole.
            if path.exists() {
                return std::fs::read(&path).unwrap();
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<_> = std::fs::read_dir(&self.downloads)
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                panic!("{name} was not downloaded; the folder holds {seen:?}");
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }

    /// Ends the browser session, then the driver and the browser (on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Ends the driver and every browser process it started, even when the test failed part-way,
    /// and removes the download folder.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.driver.start_kill();
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}
