//! Shared helpers for the test suites: a seeded generator, a global allocator that records the
//! largest single request, `catch_unwind` around each case (the robustness suites), a pair
//! of tests per checkpoint on the CPU and the GPU (the reference suites), the tiny fixtures and
//! a top-1 comparison of logits.
#![allow(dead_code, unused_macros)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use llm::models::{CausalLm, ForwardOutput};
use llm::weights::Checkpoint;
use tensor::testing::max_abs_diff;
use tensor::{DType, Device, Tensor};

/// Counts the largest single allocation since the last [`reset_peak`]. Each robustness test
/// binary holds one test function, so no other test's allocations land in its window.
pub struct PeakAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

pub fn reset_peak() {
    LARGEST.store(0, Ordering::Relaxed);
}

pub fn peak() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// xorshift64*: small, seeded, the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// Flips 1 to 8 random bits of `bytes` (not empty) in place: the corruption-anywhere case
    /// of the file fuzzers.
    pub fn flip_bits(&mut self, bytes: &mut [u8]) {
        for _ in 0..1 + self.below(8) {
            let i = self.below(bytes.len());
            bytes[i] ^= 1 << self.below(8);
        }
    }
}

/// Runs one case, turning a panic into an error string that names the case.
pub fn no_panic<T>(case: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("case {case} panicked: {msg}");
        }
    }
}

pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-robust-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A tiny HF-format model under `tests/data/hf-tiny`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

/// A fixture's reference `input_ids` and the GGUF file of `file_type` written from it into
/// `tmp`: what the suites comparing GGUF loads start from.
pub fn fixture_gguf(
    name: &str,
    file_type: llm::gguf::FileType,
    tmp: &std::path::Path,
) -> llm::Result<(Tensor, PathBuf)> {
    let dir = fixture(name);
    let ids =
        Checkpoint::open(&dir.join("reference.safetensors"))?.load("input_ids", Some(DType::U32), &Device::cpu())?;
    let source = llm::models::load(&dir, &llm::models::LoadOptions::cpu())?;
    let path = tmp.join(format!("{name}-{file_type:?}.gguf"));
    llm::gguf::write_gguf(&source.model, &source.config, None, name, file_type, &path)?;
    Ok((ids, path))
}

/// The model's forward pass over the reference's `input_ids` on `device` (with the hidden
/// states when asked), and the largest |difference| of its logits from the reference's: how
/// the fixture suites check a loaded model against transformers.
pub fn forward_against_reference(
    model: &CausalLm,
    reference: &Checkpoint,
    device: &Device,
    hidden_states: bool,
) -> llm::Result<(ForwardOutput, f64)> {
    let cpu = Device::cpu();
    let ids = reference.load("input_ids", Some(DType::U32), device)?;
    let out = autograd::no_grad(|| model.forward(&ids, 0, None, hidden_states))?;
    let want = reference.load("logits", None, &cpu)?;
    let diff = max_abs_diff(&out.logits.value().to(&cpu)?, &want)?;
    Ok((out, diff))
}

/// Fraction of positions whose arg-max agrees between two logits tensors [.., vocab]: how two
/// loadings or kernel paths of one model compare when their values may differ by rounding.
pub fn top1_agreement(a: &Tensor, b: &Tensor) -> f64 {
    let v = a.dims()[a.rank() - 1];
    let (a, b): (Vec<f32>, Vec<f32>) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    let argmax = |r: &[f32]| r.iter().enumerate().fold(0, |m, (i, x)| if *x > r[m] { i } else { m });
    let rows = a.len() / v;
    (0..rows).filter(|&r| argmax(&a[r * v..(r + 1) * v]) == argmax(&b[r * v..(r + 1) * v])).count() as f64 / rows as f64
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the other tests of a binary off while one measures its allocations.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a mutated file must end in.
pub enum Expect {
    /// Loading may succeed (the mutation kept the file valid) or fail naming the file.
    Either,
    /// Must fail, naming the file and this text (a tensor or field name, or a word of the cause).
    ErrNaming(String),
}

/// Writes `cases` mutated files into `dir` (named `case<i>.<ext>`), loads each with `exercise`
/// and checks what every loader of user files owes: no panic, no single allocation past
/// `bytes_per_byte` times the file plus 64 KiB (a reader that trusted a count or a length would
/// ask for gigabytes), and an error on one line naming the file (and what `Expect` names).
/// Returns how many cases loaded and how many were refused.
pub fn fuzz_files(
    dir: &std::path::Path,
    ext: &str,
    cases: usize,
    bytes_per_byte: usize,
    mut mutate: impl FnMut(&mut Rng) -> (String, Vec<u8>, Expect),
    exercise: impl Fn(&std::path::Path) -> llm::Result<usize>,
    rng: &mut Rng,
) -> (usize, usize) {
    let (mut loaded, mut failed) = (0usize, 0usize);
    for i in 0..cases {
        let (what, bytes, expect) = mutate(rng);
        let case = format!("#{i} ({what})");
        let file = format!("case{i}.{ext}");
        let path = dir.join(&file);
        std::fs::write(&path, &bytes).unwrap();
        reset_peak();
        let result = no_panic(&case, || exercise(&path));
        let bound = bytes_per_byte * bytes.len() + (64 << 10);
        assert!(peak() <= bound, "case {case}: allocated {} bytes for a {}-byte file", peak(), bytes.len());
        match (result, expect) {
            (Ok(_), Expect::Either) => loaded += 1,
            (Ok(n), Expect::ErrNaming(_)) => panic!("case {case}: loaded {n} tensors from a broken file"),
            (Err(e), expect) => {
                failed += 1;
                let msg = e.to_string();
                assert!(msg.contains(&file), "case {case}: error does not name the file: {msg}");
                assert!(!msg.contains('\n'), "case {case}: error is more than one line: {msg}");
                if let Expect::ErrNaming(needle) = expect {
                    assert!(msg.contains(&needle), "case {case}: error does not name {needle}: {msg}");
                }
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(loaded + failed, cases);
    (loaded, failed)
}

/// For each checkpoint name, a module of two tests running `check("name", device)`: `name::cpu`
/// on the CPU and `name::gpu` on the GPU `gpu::test_device` finds (passing without one, so a
/// machine with no adapter still runs the CPU half).
macro_rules! on_cpu_and_gpu {
    ($check:ident; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn cpu() -> llm::Result<()> {
                    super::$check(stringify!($name), &tensor::Device::cpu())
                }

                #[test]
                fn gpu() -> llm::Result<()> {
                    match gpu::test_device() {
                        Some(g) => super::$check(stringify!($name), &g),
                        None => Ok(()),
                    }
                }
            }
        )*
    };
}
