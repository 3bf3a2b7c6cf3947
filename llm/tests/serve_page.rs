//! The chat page at `/` in a real headless Chromium: the page is opened with `?q=...` (it sends
//! that message as if typed), and the test watches the page through the Chrome DevTools
//! Protocol until the streamed answer is complete, then checks it is the answer the API gives
//! for the same conversation at temperature 0. Skips, saying why, where Chromium is not
//! installed (`.ci/run` installs the Debian package `chromium`).
//!
//! The protocol runs over `--remote-debugging-pipe`: Chromium reads commands on fd 3 and writes
//! replies on fd 4, each a JSON message ended by a NUL byte. A shell maps the child's stdin and
//! stdout pipes onto those descriptors.

mod serve_common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_common::Server;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().map(str::to_string).find(|name| {
        Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
    })
}

struct Cdp {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut msg = json!({ "id": self.next, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.input.write_all(msg.to_string().as_bytes()).unwrap();
        self.input.write_all(&[0]).unwrap();
        self.input.flush().unwrap();
        loop {
            let mut buf = Vec::new();
            let n = self.output.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium closed the protocol pipe");
            buf.pop();
            let reply: Value = serde_json::from_slice(&buf).unwrap();
            if reply["id"] == self.next {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_chat_page_streams_an_answer_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let server = Server::start(&[]);
    let question = "Who is Mr Darcy?";
    let expected = server
        .post_json(
            "/v1/chat/completions",
            &json!({ "messages": [{ "role": "user", "content": question }], "temperature": 0, "max_tokens": 24 }),
        )
        .json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    let profile = std::env::temp_dir().join(format!("llm-serve-chromium-{}", std::process::id()));
    let flags = "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
                 --disable-sync --no-first-run --remote-debugging-pipe about:blank";
    let script = format!(
        "exec {browser} {flags} --user-data-dir={} 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null",
        profile.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let input = child.stdin.take().unwrap();
    let output = BufReader::new(child.stdout.take().unwrap());
    let mut cdp = Cdp { child, input, output, next: 0 };

    let url = format!(
        "http://{}/?q={}&temperature=0&max_tokens=24",
        server.addr,
        question.replace(' ', "%20").replace('?', "%3F")
    );
    let target = cdp.call(None, "Target.createTarget", json!({ "url": url }));
    let attached = cdp.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }));
    let session = attached["sessionId"].as_str().unwrap().to_string();
    let probe = "JSON.stringify({ state: document.body && document.body.dataset.state || '', \
                 answer: (document.getElementById('answer-0') || {}).textContent || '', \
                 user: (document.querySelector('.turn.user') || {}).textContent || '' })";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_partial = false;
    let page = loop {
        let r = cdp.call(Some(&session), "Runtime.evaluate", json!({ "expression": probe, "returnByValue": true }));
        let page: Value = serde_json::from_str(r["result"]["value"].as_str().unwrap_or("{}")).unwrap_or(json!({}));
        if page["state"] == "streaming" && !page["answer"].as_str().unwrap_or("").is_empty() {
            seen_partial = true;
        }
        if page["state"] == "done" || page["state"] == "error" {
            break page;
        }
        assert!(Instant::now() < deadline, "the page did not finish its answer: {page}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert_eq!(page["state"], "done", "{page}");
    assert_eq!(page["user"], question);
    assert_eq!(page["answer"], expected.as_str());
    eprintln!("answer seen while still streaming: {seen_partial}");
}
