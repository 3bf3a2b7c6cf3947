//! A running `llm serve` on the shipped tiny model, and a plain HTTP/1.1 client over a TCP
//! socket (requests with `Connection: close`, chunked bodies joined), for the server tests; and
//! the tiny model loaded in process, with jobs and answers, for the tests that drive the engine.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use llm::generate::{StopAt, generate};
use llm::models::{LoadOptions, Loaded, load};
use llm::sample::Sampling;
use llm::serve::engine::{EngineConfig, Event, Job};
use llm::tokenizer::Tokenizer;
use serde_json::Value;
use tensor::{DType, Device};
use tokio::sync::mpsc::UnboundedReceiver;

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/tiny")
}

pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Server {
    /// Starts `llm serve` on a free port with `extra` flags and waits for its URL line.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_model(&tiny_dir(), extra)
    }

    /// `llm serve` on another model (a folder or a GGUF file).
    pub fn start_model(model: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--device", "cpu"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("llm serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("a line on stdout").expect("readable stdout");
        let addr = line.rsplit("http://").next().expect("the URL").trim().to_string();
        assert!(line.starts_with("llm serve: listening on http://"), "{line}");
        Server { child, addr }
    }

    pub fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        request(&self.addr, "POST", path, Some(body))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, &body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    pub fn events(&self) -> Vec<String> {
        self.body.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.trim_start().to_string()).collect()
    }
}

pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s
}

pub fn request_head(method: &str, path: &str, len: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

pub fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut s = connect(addr);
    let body = body.unwrap_or("");
    s.write_all(request_head(method, path, body.len()).as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    read_reply(&mut s)
}

pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the reply");
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let rest = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Reply { status, headers: head, body: String::from_utf8(body).expect("a UTF-8 body") }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol]).expect("a chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        let after = &rest[eol + 2..];
        out.extend_from_slice(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// The shipped tiny model in f32 on the CPU, and its tokenizer.
pub fn tiny() -> (Loaded, Tokenizer) {
    let dir = tiny_dir();
    let loaded = load(&dir, &LoadOptions { device: Device::cpu(), weight_dtype: Some(DType::F32) }).unwrap();
    (loaded, Tokenizer::from_file(dir.join("tokenizer.json")).unwrap())
}

/// An engine for `loaded` with a pool of `kv_blocks` blocks of 16 positions.
pub fn engine_config(loaded: &Loaded, max_batch: usize, chunk: usize, kv_blocks: usize) -> EngineConfig {
    EngineConfig {
        max_batch,
        prefill_chunk: chunk,
        eos: loaded.config.eos_token_ids.clone(),
        kv_blocks,
        block_size: 16,
    }
}

/// A greedy request for the engine, and the receiver of its events.
pub fn job(prompt: Vec<u32>, max_tokens: usize) -> (Job, UnboundedReceiver<Event>) {
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    (Job { prompt, max_tokens, sampling: Sampling::greedy(), stop: vec![], events }, rx)
}

/// The tokens `llm::generate` gives `prompt` alone (greedy, on a contiguous cache): what the
/// engine must answer whatever else it batches with it.
pub fn generate_alone(loaded: &Loaded, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let stop = StopAt { eos: loaded.config.eos_token_ids.clone() };
    let ids =
        generate(&loaded.model, prompt, max_tokens, Sampling::greedy(), &stop, &Device::cpu(), |_| Ok(())).unwrap();
    ids[prompt.len()..].to_vec()
}

/// The tokens a finished engine streamed to one request (`who`, named in the failures): it
/// must have ended with `Done`, counting as many tokens as arrived, and never failed.
pub fn answered_tokens(rx: &mut UnboundedReceiver<Event>, who: &str) -> Vec<u32> {
    let mut tokens = Vec::new();
    let mut done = false;
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Token(t) => tokens.push(t),
            Event::Done { completion_tokens, .. } => {
                assert_eq!(completion_tokens, tokens.len());
                done = true;
            }
            Event::Failed(m) => panic!("{who}: {m}"),
            Event::Text(_) => {}
        }
    }
    assert!(done, "{who} was answered");
    tokens
}
