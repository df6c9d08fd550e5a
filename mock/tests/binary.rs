//! The `meridian-mock` executable: announcement line, signals, stdin EOF.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn spawn(args: &[&str]) -> (Child, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian-mock"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meridian-mock");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("announcement is not JSON ({e}): {line:?}"));
    (child, v)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("meridian-mock did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn health(url: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /_mock/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn announces_and_exits_on_stdin_eof() {
    let (mut child, v) = spawn(&[
        "--exit-on-stdin-eof",
        "--regions",
        r#"{"control_port":0,"regions":{"us-east":{"port":0,"ttft_ms":1},"eu-west":{"port":0,"header_delay_ms":40}}}"#,
    ]);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{v}");
    let control = v["control"].as_str().unwrap().to_string();
    assert!(control.starts_with("http://127.0.0.1:"));
    let regions = v["regions"].as_object().unwrap();
    assert_eq!(regions.len(), 2);
    assert!(regions["us-east"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(regions["eu-west"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let h = health(&control);
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok"), "{h}");

    drop(child.stdin.take());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn default_config_and_sigterm() {
    let (mut child, v) = spawn(&[]);
    let regions = v["regions"].as_object().unwrap();
    assert_eq!(regions.keys().collect::<Vec<_>>(), vec!["default"]);
    // Without --exit-on-stdin-eof, closing stdin does not stop it.
    drop(child.stdin.take());
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none());
    let h = health(v["control"].as_str().unwrap());
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_file_and_bad_config() {
    let dir = std::env::temp_dir().join(format!("meridian-mock-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mock.json");
    std::fs::write(&file, r#"{"regions":{"solo":{"reply_words":1}}}"#).unwrap();
    let (mut child, v) = spawn(&["--exit-on-stdin-eof", "--config", file.to_str().unwrap()]);
    assert!(v["regions"]["solo"].is_string());
    drop(child.stdin.take());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(&dir);

    let out = Command::new(env!("CARGO_BIN_EXE_meridian-mock"))
        .args(["--regions", r#"{"host":"0.0.0.0"}"#])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only binds to 127.0.0.1"), "{err}");
}
