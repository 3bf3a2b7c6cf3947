//! Property test of the safetensors reader: a seeded loop mutates valid files (truncation, header
//! lengths past the end, overlapping and out-of-range offsets, shapes whose element count
//! overflows, dtypes that disagree with the byte counts, garbage and non-UTF-8 headers, JSON of the
//! wrong types) and checks that each one either loads or ends in an error naming the file (and,
//! where one tensor is at fault, the tensor), never a panic and never an allocation the file's
//! size does not justify.

mod common;

use std::path::Path;

use common::{Expect, PeakAlloc, Rng, no_panic, tempdir};
use llm::weights::Checkpoint;
use serde_json::{Value, json};
use tensor::{DType, Device};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// One tensor of a hand-built file.
struct Entry {
    name: &'static str,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: usize,
}

fn base_entries() -> Vec<Entry> {
    vec![
        Entry { name: "model.embed_tokens.weight", dtype: "F32", shape: vec![4, 3], bytes: 48 },
        Entry { name: "model.norm.weight", dtype: "BF16", shape: vec![3], bytes: 6 },
        Entry { name: "lm_head.weight", dtype: "F16", shape: vec![2, 3], bytes: 12 },
        Entry { name: "ids", dtype: "I32", shape: vec![2], bytes: 8 },
        Entry { name: "scalar", dtype: "F64", shape: vec![], bytes: 8 },
        Entry { name: "empty", dtype: "F32", shape: vec![0, 5], bytes: 0 },
    ]
}

/// The header object of `entries`, laid out contiguously.
fn header(entries: &[Entry]) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    let mut offset = 0;
    for e in entries {
        map.insert(
            e.name.to_string(),
            json!({"dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.bytes]}),
        );
        offset += e.bytes;
    }
    map.insert("__metadata__".into(), json!({"format": "pt"}));
    map
}

fn assemble(header: &[u8], data: &[u8]) -> Vec<u8> {
    [(header.len() as u64).to_le_bytes().as_slice(), header, data].concat()
}

fn data(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Mutates a valid file into a case.
fn mutate(rng: &mut Rng, valid: &[u8], entries: &[Entry]) -> (String, Vec<u8>, Expect) {
    let data_len: usize = entries.iter().map(|e| e.bytes).sum();
    let body = data(rng, data_len);
    let good = header(entries);
    let with = |map: &serde_json::Map<String, Value>, data: &[u8]| assemble(&serde_json::to_vec(map).unwrap(), data);
    let target = rng.pick(entries).name;
    match rng.below(12) {
        0 => {
            let cut = rng.below(valid.len());
            (format!("truncated at {cut}"), valid[..cut].to_vec(), Expect::ErrNaming(String::new()))
        }
        1 => {
            let mut bytes = valid.to_vec();
            rng.flip_bits(&mut bytes);
            ("bit flips".into(), bytes, Expect::Either)
        }
        2 => {
            let lens = [
                valid.len() as u64,
                valid.len() as u64 - 7,
                u64::MAX,
                u64::MAX - 7,
                1 << 40,
                100_000_001,
                rng.next(),
                0,
            ];
            let n = *rng.pick(&lens);
            let mut bytes = valid.to_vec();
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            (format!("header length {n}"), bytes, Expect::ErrNaming(String::new()))
        }
        3 => {
            // Offsets: past the end, overlapping the previous tensor, reversed, or huge.
            let mut map = good.clone();
            let offs = map[target]["data_offsets"].clone();
            let (s, e) = (offs[0].as_u64().unwrap(), offs[1].as_u64().unwrap());
            let new = match rng.below(5) {
                0 => json!([s, e + 1 + rng.below(100) as u64]),
                1 => json!([s.saturating_sub(1 + rng.below(4) as u64), e]),
                2 => json!([e + 1, s]),
                3 => json!([u64::MAX - 1, u64::MAX]),
                _ => json!([s + data_len as u64 + 1, e + data_len as u64 + 1]),
            };
            if new == offs {
                return ("offsets unchanged".into(), with(&map, &body), Expect::Either);
            }
            map[target]["data_offsets"] = new.clone();
            (format!("{target} data_offsets {new}"), with(&map, &body), Expect::ErrNaming(String::new()))
        }
        4 => {
            // A shape whose element count overflows usize, or just disagrees with the bytes.
            let mut map = good.clone();
            let shapes = [
                json!([1u64 << 40, 1u64 << 40, 1u64 << 40]),
                json!([u64::MAX, 2]),
                json!([usize::MAX]),
                json!([1u64 << 62, 4]),
                json!([7, 11]),
                json!([3, 0, 1u64 << 63]),
            ];
            let shape = rng.pick(&shapes).clone();
            map[target]["shape"] = shape.clone();
            // [3, 0, 2^63] has zero elements: valid only for a tensor with no bytes.
            let expect = if entries.iter().any(|e| e.name == target && e.bytes == 0) && shape[1] == 0 {
                Expect::Either
            } else {
                Expect::ErrNaming(target.to_string())
            };
            (format!("{target} shape {shape}"), with(&map, &body), expect)
        }
        5 => {
            let mut map = good.clone();
            let dtypes = ["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "Q4_K", "f32", "", "I32"];
            let d = *rng.pick(&dtypes);
            map[target]["dtype"] = json!(d);
            (format!("{target} dtype {d:?}"), with(&map, &body), Expect::Either)
        }
        6 => {
            // Garbage header of the declared length: random bytes, often not UTF-8.
            let len = 1 + rng.below(200);
            let garbage = data(rng, len);
            (format!("{len} garbage header bytes"), assemble(&garbage, &body), Expect::ErrNaming(String::new()))
        }
        7 => {
            // JSON of the wrong types.
            let mut map = good.clone();
            let field = *rng.pick(&["dtype", "shape", "data_offsets"]);
            let wrong =
                [json!("x"), json!(-1), json!(1.5), json!([-1]), json!({"a": 1}), json!(null), json!([1, 2, 3, 4, 5])];
            let v = rng.pick(&wrong).clone();
            map[target][field] = v.clone();
            (format!("{target} {field} = {v}"), with(&map, &body), Expect::ErrNaming(String::new()))
        }
        8 => {
            let tops = [json!([1, 2]), json!("s"), json!(3), json!({"t": 5}), json!({"t": {"dtype": "F32"}})];
            let top = rng.pick(&tops).clone();
            (
                format!("header {top}"),
                assemble(&serde_json::to_vec(&top).unwrap(), &body),
                Expect::ErrNaming(String::new()),
            )
        }
        9 => {
            // Extra or missing bytes after the data.
            let mut bytes = valid.to_vec();
            if rng.below(2) == 0 {
                let extra = 1 + rng.below(64);
                bytes.extend(data(rng, extra));
                ("trailing bytes".into(), bytes, Expect::ErrNaming(String::new()))
            } else {
                bytes.truncate(bytes.len() - 1);
                ("one byte short".into(), bytes, Expect::ErrNaming(String::new()))
            }
        }
        10 => {
            // Two tensors claiming the same bytes.
            let mut map = good.clone();
            let other = rng.pick(entries).name;
            let offs = map[other]["data_offsets"].clone();
            map[target]["data_offsets"] = offs;
            let expect = if other == target { Expect::Either } else { Expect::ErrNaming(String::new()) };
            (format!("{target} shares {other}'s bytes"), with(&map, &body), expect)
        }
        _ => {
            // Header padded with spaces (valid), or cut inside the JSON.
            let mut text = serde_json::to_vec(&good).unwrap();
            if rng.below(2) == 0 {
                text.extend(std::iter::repeat_n(b' ', rng.below(16)));
                ("padded header".into(), assemble(&text, &body), Expect::Either)
            } else {
                let cut = rng.below(text.len());
                text.truncate(cut);
                (format!("header cut at {cut}"), assemble(&text, &body), Expect::ErrNaming(String::new()))
            }
        }
    }
}

/// Opens a file and loads every tensor it lists, as stored and as f32.
fn exercise(path: &Path) -> llm::Result<usize> {
    let ckpt = Checkpoint::open(path)?;
    let cpu = Device::cpu();
    let mut n = 0;
    for name in ckpt.names() {
        let _ = ckpt.meta(&name);
        ckpt.load(&name, None, &cpu)?;
        ckpt.load(&name, Some(DType::F32), &cpu)?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn mutated_safetensors_files_end_in_errors_naming_them() {
    let _serial = common::serial();
    let dir = tempdir("safetensors");
    let entries = base_entries();
    let mut rng = Rng::new(20_261_202);
    let data_len: usize = entries.iter().map(|e| e.bytes).sum();
    let body = data(&mut rng, data_len);
    let valid = assemble(&serde_json::to_vec(&header(&entries)).unwrap(), &body);
    let path = dir.join("valid.safetensors");
    std::fs::write(&path, &valid).unwrap();
    assert_eq!(exercise(&path).expect("the unmutated file loads"), entries.len());

    const CASES: usize = 10_000;
    // Tensors are at most the file's bytes, converted to f32 (x2 from 16-bit); the rest is
    // the parsed header and small bookkeeping. 4x the file plus 64 KiB bounds all of it; a
    // reader that trusted a header length or a shape would ask for gigabytes.
    let (loaded, failed) =
        common::fuzz_files(&dir, "safetensors", CASES, 4, |rng| mutate(rng, &valid, &entries), exercise, &mut rng);
    println!("safetensors mutation cases: {CASES} ({loaded} still valid and loaded, {failed} rejected with an error)");
    assert!(failed >= 1000, "only {failed} cases were rejected");
}

/// Mutations of real checkpoints: every fixture, truncated and bit-flipped in its header.
#[test]
fn mutated_fixture_checkpoints_end_in_errors_naming_them() {
    let _serial = common::serial();
    let dir = tempdir("fixtures");
    let mut rng = Rng::new(7);
    let mut cases = 0;
    for family in [
        "qwen3",
        "gemma3",
        "deepseek_v3",
        "llama4",
        "olmo2",
        "smollm3",
        "mistral_small",
        "qwen3_moe",
        "kimi_k2",
        "gpt_oss",
    ] {
        let valid = std::fs::read(common::fixture(family).join("model.safetensors")).unwrap();
        let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
        for i in 0..40 {
            let mut bytes = valid.clone();
            let what = if i % 2 == 0 {
                let cut = 8 + rng.below(header_len + 8);
                bytes.truncate(cut);
                format!("truncated at {cut}")
            } else {
                let at = 8 + rng.below(header_len);
                bytes[at] = rng.next() as u8;
                format!("header byte {at} replaced")
            };
            let file = format!("{family}-{i}.safetensors");
            let path = dir.join(&file);
            std::fs::write(&path, &bytes).unwrap();
            let case = format!("{family} #{i} ({what})");
            // Only the header is read here: loading every tensor of each case would be slow.
            if let Err(e) = no_panic(&case, || Checkpoint::open(&path)) {
                let msg = e.to_string();
                assert!(msg.contains(&file), "case {case}: {msg}");
            }
            std::fs::remove_file(&path).unwrap();
            cases += 1;
        }
    }
    println!("fixture checkpoint mutation cases: {cases}");
    assert_eq!(cases, 400);
}

/// Broken sharded indexes: wrong types, paths leaving the directory, missing shards.
#[test]
fn broken_shard_indexes_end_in_errors_naming_them() {
    let _serial = common::serial();
    let dir = tempdir("index");
    let cases = [
        (json!([1]), "weight_map"),
        (json!({"weight_map": 3}), "weight_map"),
        (json!({"weight_map": {}}), "empty"),
        (json!({"weight_map": {"a": 5}}), "a"),
        (json!({"weight_map": {"a": "../x.safetensors"}}), "../x.safetensors"),
        (json!({"weight_map": {"a": "/etc/passwd"}}), "/etc/passwd"),
        (json!({"weight_map": {"a": "missing.safetensors"}}), "missing.safetensors"),
    ];
    for (i, (index, needle)) in cases.iter().enumerate() {
        let d = dir.join(format!("c{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.safetensors.index.json"), serde_json::to_vec(index).unwrap()).unwrap();
        let msg = no_panic(&format!("index {index}"), || Checkpoint::open(&d)).err().map(|e| e.to_string()).unwrap();
        assert!(msg.contains(needle), "index {index}: {msg}");
    }
    let d = dir.join("garbage");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.safetensors.index.json"), [0xff, 0xfe, 0x00]).unwrap();
    let msg = Checkpoint::open(&d).err().map(|e| e.to_string()).unwrap();
    assert!(msg.contains("model.safetensors.index.json"), "{msg}");
    println!("shard index cases: {}", cases.len() + 1);
}
