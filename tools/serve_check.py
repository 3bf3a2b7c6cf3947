#!/usr/bin/env python3
"""Exercises `llm serve` with the official `openai` Python client and with curl, and measures
continuous batching: aggregate tokens/s of 1 against 8 concurrent streams.

    pip install openai
    python tools/serve_check.py [--llm target/release/llm] [--model llm/assets/tiny] [--bench]

It starts its own server on a free port and stops it with SIGTERM at the end. Checks (each
prints `ok ...` or raises):
  - /v1/models through the client; chat and text completions, streamed and not, where at
    temperature 0 the streamed text equals the non-streamed one; usage and finish_reason;
  - curl: the SSE stream ends with `data: [DONE]`; a malformed body gets a 400 JSON error;
  - a negative temperature is a BadRequestError in the client;
  - 64 concurrent short requests are all answered;
  - with --requests N (default 200; the issue's target is 1000): N requests in a row, then the
    server's resident memory compared with its value after the first 20.
With --bench: 1 stream, then 8 concurrent streams, of --bench-tokens tokens each, aggregate
tokens/s of each printed (for docs/BENCHMARKS.md). Not a test: the Rust tests never need Python.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time


def start(llm, model, extra):
    proc = subprocess.Popen(
        [llm, "serve", "--model", model, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        sys.exit(f"llm serve did not start: {line!r}")
    return proc, line.strip().rsplit(" ", 1)[-1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default="target/release/llm")
    ap.add_argument("--model", default="llm/assets/tiny")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-tokens", type=int, default=128)
    ap.add_argument("--extra", default="", help="more flags for llm serve, e.g. '--max-batch 8'")
    args = ap.parse_args()

    import openai

    proc, url = start(args.llm, args.model, args.extra.split())
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none")
        models = client.models.list()
        name = models.data[0].id
        print(f"ok models: {name}")

        messages = [{"role": "user", "content": "Who is Mr Darcy?"}]
        full = client.chat.completions.create(model=name, messages=messages, temperature=0, max_tokens=32)
        text = full.choices[0].message.content
        assert full.usage.completion_tokens >= 1 and full.choices[0].finish_reason in ("stop", "length")
        pieces = []
        for chunk in client.chat.completions.create(
            model=name, messages=messages, temperature=0, max_tokens=32, stream=True
        ):
            for c in chunk.choices:
                pieces.append(c.delta.content or "")
        assert "".join(pieces) == text, ("".join(pieces), text)
        print(f"ok chat: streamed == non-streamed at temperature 0: {text!r}")

        comp = client.completions.create(model=name, prompt="It is a truth", temperature=0, max_tokens=16)
        streamed = "".join(
            c.choices[0].text
            for c in client.completions.create(model=name, prompt="It is a truth", temperature=0, max_tokens=16, stream=True)
            if c.choices
        )
        assert streamed == comp.choices[0].text
        print(f"ok completions: {comp.choices[0].text!r}")

        try:
            client.chat.completions.create(model=name, messages=messages, temperature=-1)
            raise AssertionError("a negative temperature was accepted")
        except openai.BadRequestError as e:
            print(f"ok BadRequestError: {e.message[:80]}")

        body = json.dumps({"messages": messages, "max_tokens": 8, "temperature": 0, "stream": True})
        out = subprocess.run(
            ["curl", "-sN", url + "/v1/chat/completions", "-H", "Content-Type: application/json", "-d", body],
            capture_output=True, text=True, check=True,
        ).stdout
        assert out.strip().endswith("data: [DONE]"), out
        bad = subprocess.run(
            ["curl", "-s", "-w", "%{http_code}", url + "/v1/chat/completions", "-d", "{not json"],
            capture_output=True, text=True, check=True,
        ).stdout
        assert bad.endswith("400") and '"error"' in bad, bad
        print("ok curl: SSE ends with [DONE]; malformed JSON is a 400 with an error body")

        def short(i):
            r = client.completions.create(model=name, prompt=[0, 10 + i], max_tokens=8, temperature=0.8, seed=i)
            return r.usage.completion_tokens

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            counts = list(pool.map(short, range(64)))
        assert len(counts) == 64 and all(c >= 1 for c in counts)
        print("ok 64 concurrent requests answered")

        base = None
        for i in range(args.requests):
            client.completions.create(model=name, prompt=[0, 10 + i % 50], max_tokens=4, temperature=0)
            if i == 19:
                base = rss_kib(proc.pid)
        end = rss_kib(proc.pid)
        print(f"ok {args.requests} requests in a row: resident memory {base} KiB after 20, {end} KiB after all")

        if args.bench:
            def stream(i):
                n = 0
                for c in client.completions.create(
                    model=name, prompt=[0, 100 + i], max_tokens=args.bench_tokens, temperature=0.8, seed=i,
                    stream=True, stream_options={"include_usage": True},
                ):
                    if c.usage:
                        n = c.usage.completion_tokens
                return n

            for streams in (1, 8):
                t = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(streams) as pool:
                    total = sum(pool.map(stream, range(streams)))
                dt = time.perf_counter() - t
                print(f"bench: {streams} stream(s), {total} tokens: {total / dt:.1f} tokens/s aggregate ({dt:.2f} s)")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        print(f"server stopped on SIGTERM with exit code {code}")


if __name__ == "__main__":
    main()
