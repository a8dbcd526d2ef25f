//! The server with a concept store: chats are personalized (names in the text first, then the query image's
//! nearest concept; the response says which), concepts are listed, added, edited and removed over HTTP on the
//! store the CLI uses, an edit is seen by the next request, and bad input is refused without touching the store.

mod common;

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn data_url(p: &Path) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap()))
}

async fn http(addr: &str, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

/// A counter or gauge of `/metrics`.
async fn metric(addr: &str, name: &str) -> f64 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let line = out.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {out}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn json_req(addr: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    http(addr, method, path, "application/json", body.to_string().as_bytes()).await
}

/// A multipart body of text fields and image files.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &Path)]) -> (String, Vec<u8>) {
    let b = "REPICBOUNDARY";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    for (k, p) in files {
        body.extend(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"../../x.png\"\r\nContent-Type: image/png\r\n\r\n")
                .as_bytes(),
        );
        body.extend(std::fs::read(p).unwrap());
        body.extend(b"\r\n");
    }
    body.extend(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

fn chat(text: &str, image: &Path, extra: Value) -> Value {
    let mut v = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(image)}}, {"type": "text", "text": text}]}],
        "max_tokens": 3, "temperature": 0});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chats_are_personalized_and_concepts_edit_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = common::fixture_store(dir.path());
    let fixture = common::fixture();
    let addr = common::serve(&store_dir, None, 0).await;
    let q = fixture.join("query2.png");

    let (s, v) = json_req(&addr, "POST", "/v1/chat/completions", chat("Is <c6> here?", &q, json!({}))).await;
    assert_eq!(s, 200, "{v}");
    let refs = v["repic"]["references"].as_array().unwrap();
    assert_eq!(refs[0]["key"], "<c6>");
    assert_eq!(refs[0]["by"], "name");
    assert_eq!(refs.len(), 2, "{v}");
    assert_eq!(refs[1]["by"], "image");
    let (_, off) =
        json_req(&addr, "POST", "/v1/chat/completions", chat("Hi", &q, json!({"repic": {"personalize": false}}))).await;
    assert!(off.get("repic").is_none(), "{off}");

    // Add a concept by upload; the next chat that names it gets it.
    let (ctype, body) =
        multipart(&[("key", "<zed>"), ("name", "Zed"), ("info", "a new toy")], &[("image", &fixture.join("ref5.png"))]);
    let (s, v) = http(&addr, "POST", "/v1/concepts", &ctype, &body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["images"][0], "zed/image1.png", "the upload's own file name (../../x.png) is not used");
    let (_, v) = json_req(&addr, "POST", "/v1/chat/completions", chat("Where is <zed>?", &q, json!({}))).await;
    assert_eq!(v["repic"]["references"][0]["key"], "<zed>");
    let (s, v) = json_req(&addr, "PATCH", "/v1/concepts/%3Czed%3E", json!({"info": "an old toy"})).await;
    assert_eq!((s, v["info"].as_str()), (200, Some("an old toy")));
    let (_, list) = json_req(&addr, "GET", "/v1/concepts", json!({})).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 9);

    // Refusals leave the store as it was.
    let before = json_req(&addr, "GET", "/v1/concepts", json!({})).await.1;
    let text_file = dir.path().join("notes.png");
    std::fs::write(&text_file, "not an image").unwrap();
    let (ctype, bad_img) = multipart(&[("key", "<bad>")], &[("image", &text_file)]);
    let (ctype2, dup) = multipart(&[("key", "<zed>")], &[("image", &fixture.join("ref5.png"))]);
    let (ctype3, no_brackets) = multipart(&[("key", "zed")], &[("image", &fixture.join("ref5.png"))]);
    let (ctype4, add_bad) = multipart(&[], &[("add_image", &text_file)]);
    let (s, v) = http(&addr, "POST", "/v1/concepts", &ctype, &bad_img).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("image1")), "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().contains("/tmp"), "{v}");
    for (method, path, ct, body, want) in [
        ("POST", "/v1/concepts", ctype.as_str(), bad_img, 400),
        ("POST", "/v1/concepts", ctype2.as_str(), dup, 409),
        ("POST", "/v1/concepts", ctype3.as_str(), no_brackets, 400),
        ("PATCH", "/v1/concepts/%3Czed%3E", ctype4.as_str(), add_bad, 400),
        ("DELETE", "/v1/concepts/%3Cnope%3E", "application/json", Vec::new(), 404),
        ("PATCH", "/v1/concepts/%3Czed%3E", "application/json", b"{\"colour\": 1}".to_vec(), 400),
    ] {
        let (s, v) = http(&addr, method, path, ct, &body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    assert_eq!(json_req(&addr, "GET", "/v1/concepts", json!({})).await.1, before);

    let (s, v) =
        json_req(&addr, "POST", "/v1/retrieve", json!({"text": "and <c1>", "image": data_url(&q), "top_k": 2})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert!(v["prompt_block"].as_str().unwrap().starts_with("<image>1. Name: <c1>, Info: a red ball"), "{v}");
    // R2P over HTTP: the random model's reasoning cannot be read, so the retrieval ranking decides, and says so.
    // Its reasoning is a job of the continuous batch: the scheduler prefills its prompt and decodes its tokens.
    let prefilled = metric(&addr, "repic_prompt_tokens_total").await;
    let generated = metric(&addr, "repic_generated_tokens_total").await;
    let (s, v) = json_req(&addr, "POST", "/v1/recognize", json!({"image": data_url(&q), "max_new_tokens": 8})).await;
    assert_eq!(s, 200, "{v}");
    assert!(metric(&addr, "repic_prompt_tokens_total").await > prefilled, "R2P's prompt went through the batch");
    assert!(metric(&addr, "repic_generated_tokens_total").await > generated, "R2P's tokens were decoded there");
    assert_eq!(v["decided_by"], "retrieval");
    assert_eq!(v["key"], v["shortlist"][0]["key"]);
    let (s, v) = json_req(&addr, "POST", "/v1/recognize", json!({"image": data_url(&q), "shortlist": 9})).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("shortlist")));
    let (s, _) = json_req(&addr, "DELETE", "/v1/concepts/%3Czed%3E", json!({})).await;
    assert_eq!(s, 200);
    let (_, v) = json_req(&addr, "POST", "/v1/chat/completions", chat("Where is <zed>?", &q, json!({}))).await;
    assert_ne!(v["repic"]["references"][0]["key"], "<zed>", "a removed concept is gone for the next request");
}
