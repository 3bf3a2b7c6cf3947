//! Property test of the GGUF reader: a seeded loop mutates a valid file (truncation, bit flips,
//! counts and string or array lengths past the end, unknown value and tensor types, too many
//! dimensions, dimensions whose product overflows, rows that are not whole blocks, misaligned,
//! out-of-range and overlapping data offsets, duplicate keys and tensors, bad alignments, invalid
//! UTF-8) and checks that each one either loads or ends in a one-line error naming the file (and
//! the key or tensor at fault where one is), never a panic and never an allocation the file's
//! size does not justify.

mod common;

use std::path::Path;

use common::{Expect, PeakAlloc, Rng, tempdir};
use llm::gguf::GgufFile;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// One metadata pair as raw parts, so mutations can break any of them.
#[derive(Clone)]
struct Kv {
    key: Vec<u8>,
    ty: u32,
    value: Vec<u8>,
}

#[derive(Clone)]
struct Info {
    name: Vec<u8>,
    dims: Vec<u64>,
    ty: u32,
    offset: u64,
}

/// A GGUF file as parts.
#[derive(Clone)]
struct Spec {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kvs: Vec<Kv>,
    infos: Vec<Info>,
    data: Vec<u8>,
}

fn string(s: &[u8]) -> Vec<u8> {
    [(s.len() as u64).to_le_bytes().as_slice(), s].concat()
}

fn kv(key: &str, ty: u32, value: Vec<u8>) -> Kv {
    Kv { key: key.as_bytes().to_vec(), ty, value }
}

fn array(elem: u32, n: u64, body: &[u8]) -> Vec<u8> {
    [elem.to_le_bytes().as_slice(), &n.to_le_bytes(), body].concat()
}

impl Spec {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.unwrap_or(self.infos.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.n_kv.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            out.extend(string(&kv.key));
            out.extend_from_slice(&kv.ty.to_le_bytes());
            out.extend_from_slice(&kv.value);
        }
        for t in &self.infos {
            out.extend(string(&t.name));
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend_from_slice(&self.data);
        out
    }
}

/// (name, ggml dims, ggml type id, bytes): F32, F16, Q8_0, Q4_K, Q6_K, and a Q2_K tensor this
/// project lists but does not decode.
const TENSORS: [(&str, &[u64], u32, usize); 6] = [
    ("token_embd.weight", &[8, 3], 0, 96),
    ("output_norm.weight", &[8], 1, 16),
    ("blk.0.attn_q.weight", &[64, 2], 8, 136),
    ("blk.0.ffn_down.weight", &[256], 12, 144),
    ("blk.0.ffn_up.weight", &[256, 1], 14, 210),
    ("blk.0.ffn_gate.weight", &[256], 10, 84),
];

fn valid(rng: &mut Rng) -> Spec {
    let kvs = vec![
        kv("general.architecture", 8, string(b"qwen3")),
        kv("general.alignment", 4, 32u32.to_le_bytes().to_vec()),
        kv("qwen3.block_count", 4, 1u32.to_le_bytes().to_vec()),
        kv("qwen3.rope.freq_base", 6, 1e6f32.to_le_bytes().to_vec()),
        kv("flag", 7, vec![1]),
        kv("i64", 11, (-5i64).to_le_bytes().to_vec()),
        kv("tokenizer.ggml.tokens", 9, array(8, 3, &[string(b"a"), string(b"bc"), string(b"")].concat())),
        kv("tokenizer.ggml.scores", 9, array(6, 2, &[0.5f32.to_le_bytes(), 1.5f32.to_le_bytes()].concat())),
        kv("nested", 9, array(9, 1, &array(0, 2, &[1, 2]))),
    ];
    let mut infos = Vec::new();
    let mut data = Vec::new();
    for (name, dims, ty, bytes) in TENSORS {
        infos.push(Info { name: name.as_bytes().to_vec(), dims: dims.to_vec(), ty, offset: data.len() as u64 });
        let mut body: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
        // Finite f16 scales where the blocks keep them, so decoding gives numbers.
        match ty {
            1 => body.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&[0x00, 0x3c])),
            8 => body.chunks_exact_mut(34).for_each(|c| c[..2].copy_from_slice(&[0x00, 0x30])),
            12 => body[..4].copy_from_slice(&[0x00, 0x30, 0x00, 0x30]),
            14 => body[208..210].copy_from_slice(&[0x00, 0x30]),
            _ => {}
        }
        data.extend(body);
        data.resize(data.len().div_ceil(32) * 32, 0);
    }
    Spec { magic: *b"GGUF", version: 3, n_tensors: None, n_kv: None, kvs, infos, data }
}

fn err(s: impl Into<String>) -> Expect {
    Expect::ErrNaming(s.into())
}

fn mutate(rng: &mut Rng, good: &Spec) -> (String, Vec<u8>, Expect) {
    let mut s = good.clone();
    let k = rng.below(s.kvs.len());
    let key = String::from_utf8(s.kvs[k].key.clone()).unwrap();
    let t = rng.below(s.infos.len());
    let tname = String::from_utf8(s.infos[t].name.clone()).unwrap();
    match rng.below(20) {
        0 => {
            let valid = good.bytes();
            let last_end = TENSORS.iter().zip(&good.infos).map(|(x, i)| i.offset as usize + x.3).max().unwrap();
            let data_start = valid.len() - good.data.len();
            let cut = rng.below(valid.len());
            let expect = if cut >= data_start + last_end { Expect::Either } else { err("") };
            (format!("truncated at {cut}"), valid[..cut].to_vec(), expect)
        }
        1 => {
            let mut bytes = good.bytes();
            rng.flip_bits(&mut bytes);
            ("bit flips".into(), bytes, Expect::Either)
        }
        2 => {
            let (v, needle) = *rng.pick(&[
                (1u32, "version 1"),
                (0, "version"),
                (4, "version"),
                (3u32.swap_bytes(), "big-endian"),
                (u32::MAX, "version"),
            ]);
            s.version = v;
            (format!("version {v}"), s.bytes(), err(needle))
        }
        3 => {
            s.magic = *rng.pick(&[*b"GGML", *b"ggu\0", [0; 4], *b"FUGG"]);
            ("magic".into(), s.bytes(), err("magic"))
        }
        4 => {
            let small = 7 + rng.below(100) as u64;
            let n = *rng.pick(&[u64::MAX, 1 << 40, 1 << 62, 100_000, small]);
            // The true count leaves the file as it was.
            if rng.below(2) == 0 {
                s.n_tensors = Some(n);
                let expect = if n == good.infos.len() as u64 { Expect::Either } else { err("") };
                (format!("tensor count {n}"), s.bytes(), expect)
            } else {
                s.n_kv = Some(n);
                let expect = if n == good.kvs.len() as u64 { Expect::Either } else { err("") };
                (format!("key count {n}"), s.bytes(), expect)
            }
        }
        5 => {
            // A key's length field past the end: write the raw bytes by hand.
            let mut bytes = s.bytes();
            let at = 24 + s.kvs[..k].iter().map(|kv| 8 + kv.key.len() + 4 + kv.value.len()).sum::<usize>();
            let n = *rng.pick(&[u64::MAX, 1 << 40, bytes.len() as u64]);
            bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
            (format!("key {k} length {n}"), bytes, err(format!("metadata key {k}")))
        }
        6 => {
            let ty = *rng.pick(&[13u32, 99, u32::MAX]);
            s.kvs[k].ty = ty;
            (format!("{key} type {ty}"), s.bytes(), err(key))
        }
        7 => {
            let elem = *rng.pick(&[0u32, 6, 8, 9, 12]);
            let n = *rng.pick(&[u64::MAX, 1 << 61, 1 << 40, 1_000_000]);
            s.kvs[k] = Kv { key: s.kvs[k].key.clone(), ty: 9, value: array(elem, n, &[0; 16]) };
            (format!("{key} array of {n}"), s.bytes(), err(key))
        }
        8 => {
            let mut v = array(0, 0, &[]);
            for _ in 0..10 {
                v = array(9, 1, &v);
            }
            s.kvs[k] = Kv { key: s.kvs[k].key.clone(), ty: 9, value: v };
            (format!("{key} nested 11 deep"), s.bytes(), err(key))
        }
        9 => {
            s.kvs[k] = Kv { key: s.kvs[k].key.clone(), ty: 7, value: vec![2 + rng.below(250) as u8] };
            (format!("{key} bool"), s.bytes(), err(key))
        }
        10 => {
            if rng.below(2) == 0 {
                s.kvs[k].key = vec![b'k', 0xff, 0xfe];
                ("key not UTF-8".into(), s.bytes(), err("UTF-8"))
            } else {
                s.kvs[k] = Kv { key: s.kvs[k].key.clone(), ty: 8, value: string(&[0xc3, 0x28]) };
                (format!("{key} value not UTF-8"), s.bytes(), err(key))
            }
        }
        11 => {
            let other = s.kvs[(k + 1) % s.kvs.len()].key.clone();
            let name = String::from_utf8(other.clone()).unwrap();
            s.kvs[k].key = other;
            (format!("duplicate key {name}"), s.bytes(), err(name))
        }
        12 => {
            let n = 5 + rng.below(100);
            s.infos[t].dims = vec![1; n];
            (format!("{tname} with {n} dims"), s.bytes(), err(tname))
        }
        13 => {
            let dims = rng.pick(&[vec![1u64 << 40, 1 << 40], vec![u64::MAX, 2], vec![1 << 62, 4]]).clone();
            s.infos[t].dims = dims.clone();
            (format!("{tname} dims {dims:?}"), s.bytes(), err(tname))
        }
        14 => {
            // Rows that are not whole blocks, or a different block count than the bytes.
            // Plain element types stay whole rows, and may still fit their slot.
            let d0 = s.infos[t].dims[0];
            s.infos[t].dims[0] = d0 + 1 + rng.below(31) as u64;
            let expect = if TENSORS[t].2 <= 1 { Expect::Either } else { err(tname.clone()) };
            (format!("{tname} row {}", s.infos[t].dims[0]), s.bytes(), expect)
        }
        15 => {
            let ty = *rng.pick(&[4u32, 5, 31, 32, 33, 36, 42, 1000, u32::MAX]);
            s.infos[t].ty = ty;
            (format!("{tname} type {ty}"), s.bytes(), err(tname))
        }
        16 => {
            let off = s.infos[t].offset;
            let misaligned = off + 1 + rng.below(31) as u64;
            let new = *rng.pick(&[misaligned, u64::MAX, u64::MAX - 31, (off + 1) << 20]);
            s.infos[t].offset = new;
            (format!("{tname} offset {new}"), s.bytes(), err(tname))
        }
        17 => {
            let other = (t + 1 + rng.below(s.infos.len() - 1)) % s.infos.len();
            s.infos[t].offset = s.infos[other].offset;
            (format!("{tname} overlaps"), s.bytes(), err(tname))
        }
        18 => {
            let other = (t + 1) % s.infos.len();
            let name = s.infos[other].name.clone();
            s.infos[t].name = name.clone();
            let name = String::from_utf8(name).unwrap();
            (format!("duplicate tensor {name}"), s.bytes(), err(name))
        }
        _ => {
            let (ty, v): (u32, Vec<u8>) = rng
                .pick(&[
                    (4, 0u32.to_le_bytes().to_vec()),
                    (4, 3u32.to_le_bytes().to_vec()),
                    (10, 32u64.to_le_bytes().to_vec()),
                    (8, string(b"32")),
                ])
                .clone();
            s.kvs[1] = Kv { key: b"general.alignment".to_vec(), ty, value: v };
            ("bad alignment".into(), s.bytes(), err("general.alignment"))
        }
    }
}

/// Opens a file and decodes every tensor of a type the project decodes.
fn exercise(path: &Path) -> llm::Result<usize> {
    let file = GgufFile::open(path)?;
    let mut n = 0;
    for t in file.tensors.clone() {
        if t.ty.can_dequantize() {
            let (values, shape) = file.dequantize(&t.name)?;
            assert_eq!(values.len(), shape.iter().product::<usize>());
            n += 1;
        }
    }
    for (_, v) in &file.metadata {
        let _ = v.summary();
    }
    Ok(n)
}

#[test]
fn mutated_gguf_files_end_in_errors_naming_them() {
    let _serial = common::serial();
    let dir = tempdir("gguf");
    let mut rng = Rng::new(20_261_204);
    let good = valid(&mut rng);
    let path = dir.join("valid.gguf");
    std::fs::write(&path, good.bytes()).unwrap();
    assert_eq!(exercise(&path).expect("the unmutated file loads"), 5);

    const CASES: usize = 10_000;
    // The largest allocation is a decoded tensor: Q4_K gives 7.1 f32 bytes per stored byte,
    // and parsed metadata takes at most about 5x its bytes. 8x the file plus 64 KiB bounds
    // both; a reader that trusted a count would ask for gigabytes.
    let (loaded, failed) = common::fuzz_files(&dir, "gguf", CASES, 8, |rng| mutate(rng, &good), exercise, &mut rng);
    println!("GGUF mutation cases: {CASES} ({loaded} still valid and loaded, {failed} rejected with an error)");
    assert!(failed >= 8000, "only {failed} cases were rejected");
}
