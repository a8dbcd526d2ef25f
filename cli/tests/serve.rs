//! `repic serve` as a process: it prints the address it bound (`--port 0`: a free one), answers, refuses a
//! request without the key, and on SIGTERM finishes the request in flight, then exits cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn get(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string()))
}

#[test]
fn serve_binds_answers_and_shuts_down_on_sigterm() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/qwen2_vl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_repic"))
        .args(["serve", "--model", &model.to_string_lossy(), "--port", "0", "--api-key", "k"])
        .env_remove("REPIC_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().trim_end_matches("/v1").to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let (status, body) = get(&addr, "/v1/models", Some("k"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"qwen2_vl\""), "{body}");
    assert_eq!(get(&addr, "/v1/models", None).0, 401);
    #[cfg(unix)]
    {
        // A streamed answer in flight when SIGTERM comes is finished before the server exits.
        let body = r#"{"messages": [{"role": "user", "content": "Say a lot."}], "max_tokens": 400, "ignore_eos": true,
            "stream": true}"#;
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        while !head.contains("data: ") {
            let mut l = String::new();
            assert!(reader.read_line(&mut l).unwrap() > 0, "the stream ended early: {head}");
            head.push_str(&l);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert!(rest.contains("data: [DONE]"), "the stream was cut: {rest}");
        assert!(rest.contains("\"finish_reason\":\"length\""), "{rest}");
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
    #[cfg(not(unix))]
    child.kill().unwrap();
}
