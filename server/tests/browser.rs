//! The web page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven over
//! WebDriver with fantoccini adds a concept through the page's form, then asks about an uploaded image and sees
//! the answer stream in with the new concept among the references, then asks R2P which concept it is and sees
//! its trace. With `REPIC_SCREENSHOT=FILE` it also saves
//! a screenshot (the README's). It fails, never skips, when chromedriver is missing: `.ci/run` installs it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

/// chromedriver on a free port, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_a_concept_then_ask_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = common::fixture_store(dir.path());
    let fixture = common::fixture();
    let addr = common::serve(&store_dir, Some("pagekey"), 64).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is needed (Debian: apt-get install chromium chromium-driver; .ci/run installs it)");
    let _driver = Driver(child);
    let mut caps = serde_json::Map::new();
    let mut chrome = serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--window-size=1000,1800"]});
    if Path::new("/usr/bin/chromium").exists() {
        chrome["binary"] = "/usr/bin/chromium".into();
    }
    caps.insert("goog:chromeOptions".into(), chrome);
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder.capabilities(caps);
    let url = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        match builder.connect(&url).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let c = client.expect("no WebDriver session from chromedriver within 10 s");
    c.goto(&format!("http://{addr}/")).await.unwrap();
    // The page asks for the key; the concepts appear once it is given.
    c.find(Locator::Id("key")).await.unwrap().send_keys("pagekey").await.unwrap();
    c.execute("document.getElementById('key').dispatchEvent(new Event('change'))", vec![]).await.unwrap();
    c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(r#"tr[data-key="<c0>"]"#)).await.unwrap();

    let image = |name: &str| std::fs::canonicalize(fixture.join(name)).unwrap().to_string_lossy().into_owned();
    c.find(Locator::Id("add-key")).await.unwrap().send_keys("<zed>").await.unwrap();
    c.find(Locator::Id("add-name")).await.unwrap().send_keys("Zed").await.unwrap();
    c.find(Locator::Id("add-info")).await.unwrap().send_keys("a new toy").await.unwrap();
    c.find(Locator::Id("add-image")).await.unwrap().send_keys(&image("ref5.png")).await.unwrap();
    c.find(Locator::Id("add-submit")).await.unwrap().click().await.unwrap();
    let added = c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(r#"tr[data-key="<zed>"]"#)).await;
    if added.is_err() {
        let status = c.find(Locator::Id("add-status")).await.unwrap().text().await.unwrap();
        panic!("the concept was not added; the page says {status:?}");
    }

    c.find(Locator::Id("ask-image")).await.unwrap().send_keys(&image("query2.png")).await.unwrap();
    let q = c.find(Locator::Id("ask-question")).await.unwrap();
    q.clear().await.unwrap();
    q.send_keys("Where is <zed>?").await.unwrap();
    let max = c.find(Locator::Id("ask-max")).await.unwrap();
    max.clear().await.unwrap();
    max.send_keys("12").await.unwrap();
    c.find(Locator::Id("ask-submit")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css(r#"#answer[data-done="1"]"#)).await.unwrap();
    let refs = c.find(Locator::Id("references")).await.unwrap().text().await.unwrap();
    assert!(refs.starts_with("<zed> (named)"), "references shown: {refs:?}");
    let answer = c.find(Locator::Id("answer")).await.unwrap();
    assert_eq!(answer.attr("class").await.unwrap().unwrap_or_default(), "", "the answer is an error");
    // R2P on the same image: the trace says which stage decided.
    c.find(Locator::Id("recognize-submit")).await.unwrap().click().await.unwrap();
    let trace = c.find(Locator::Id("trace")).await.unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        text = trace.text().await.unwrap();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("recognized <") && text.contains("decided by retrieval"), "{text}");
    if let Ok(path) = std::env::var("REPIC_SCREENSHOT") {
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    }
    c.close().await.unwrap();
}
