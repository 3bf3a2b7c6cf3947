//! CPU speed of the kernels the peers also run (`tools/bench_numpy.py`): f32 matmul at 256, 1024
//! and 2048 square (GFLOP/s), prefill-shaped products with f32 and bf16 weights, the
//! 1x4096 @ 4096x4096 matrix-vector product of batch-1 decoding (f32 and bf16 weights, both
//! weight orders) next to a streaming read of memory (the bandwidth roofline), softmax over the
//! last axis of [4096, 4096] and an elementwise add of 16M floats (GB/s). Compared with NumPy in
//! docs/BENCHMARKS.md.
//!
//! `cargo bench --bench cpu_ops`; `LLM_CPU_KERNELS=scalar|avx2|avx512` forces a kernel path,
//! `LLM_CPU_BF16_GEMM=0` turns the bf16 GEMM off.

use std::time::Duration;

use rayon::prelude::*;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tensor::{DType, Device, Rng, Tensor};

fn bench(c: &mut Criterion) {
    let cpu = Device::cpu();
    let mut rng = Rng::new(0);
    let mut random =
        |shape: &[usize], dtype: DType| Tensor::randn(0.0, 1.0, shape.to_vec(), dtype, &mut rng, &cpu).expect("tensor");

    let mut group = c.benchmark_group("cpu matmul f32");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for n in [256usize, 1024, 2048] {
        let (a, b) = (random(&[n, n], DType::F32), random(&[n, n], DType::F32));
        // Counted as 2n^3 FLOPs; criterion reports "elements" per second, read as FLOP/s.
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b).expect("matmul"))
        });
    }
    group.finish();

    // Prefill in the Linear layout (x @ W^T, W [out, in]), the Qwen3-0.6B MLP-up and attention
    // shapes at a 512-token prompt. bf16 weights take the vdpbf16ps GEMM where the CPU has
    // AVX512_BF16 ("bf16 weights"; on AMX tiles where the CPU has AMX-BF16, the "vdpbf16ps"
    // case forcing AMX off), else are widened to f32 panels for the f32 GEMM; the "widened"
    // case forces the latter (LLM_CPU_BF16_GEMM=0) to compare the two.
    for n in [3072usize, 1024] {
        let mut group = c.benchmark_group(format!("cpu prefill 512x1024 @ ({n}x1024)^T"));
        group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
        let x = random(&[512, 1024], DType::F32);
        group.throughput(Throughput::Elements(2 * 512 * 1024 * n as u64));
        for dtype in [DType::F32, DType::BF16] {
            let w = random(&[n, 1024], dtype);
            group.bench_function(format!("{dtype} weights"), |bench| {
                bench.iter(|| x.matmul(&w.t().expect("t")).expect("mm"))
            });
            if dtype == DType::BF16 && tensor::cpu::isa::amx() {
                tensor::cpu::isa::force_amx(Some(false));
                group.bench_function(format!("{dtype} weights, vdpbf16ps"), |bench| {
                    bench.iter(|| x.matmul(&w.t().expect("t")).expect("mm"))
                });
                tensor::cpu::isa::force_amx(None);
            }
            if dtype == DType::BF16 && tensor::cpu::isa::bf16_gemm() {
                tensor::cpu::isa::force_bf16_gemm(Some(false));
                group.bench_function(format!("{dtype} weights, widened"), |bench| {
                    bench.iter(|| x.matmul(&w.t().expect("t")).expect("mm"))
                });
                tensor::cpu::isa::force_bf16_gemm(None);
            }
        }
        group.finish();
    }

    // Decode: one token through a [4096, 4096] weight. "x @ W^T" is the Linear layout every
    // model uses (one dot product per output); "x @ W" is a row-major [K, N] weight.
    let mut group = c.benchmark_group("cpu matvec 1x4096 @ 4096x4096");
    group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let x = random(&[1, 4096], DType::F32);
    for dtype in [DType::F32, DType::BF16] {
        let w = random(&[4096, 4096], dtype);
        group.throughput(Throughput::Bytes((4096 * 4096 * dtype.size_in_bytes()) as u64));
        group.bench_function(format!("{dtype} weights, x @ W^T"), |bench| {
            bench.iter(|| x.matmul(&w.t().expect("t")).expect("matvec"))
        });
        group.bench_function(format!("{dtype} weights, x @ W"), |bench| bench.iter(|| x.matmul(&w).expect("matvec")));
    }
    group.finish();

    // The roofline of the matrix-vector products: every thread reads its own contiguous part of
    // a 256 MiB buffer (8x the 32 MiB L3 here) with the same SIMD loads.
    let mut group = c.benchmark_group("cpu streaming read");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let buffer = vec![1.0f32; 64 << 20];
    let isa = tensor::cpu::isa::active();
    let chunk = buffer.len().div_ceil(rayon::current_num_threads());
    group.throughput(Throughput::Bytes((buffer.len() * 4) as u64));
    group.bench_function("256 MiB, all threads", |bench| {
        bench.iter(|| buffer.par_chunks(chunk).map(|c| tensor::cpu::vmath::sum_squares(isa, c)).sum::<f32>())
    });
    group.finish();

    let mut group = c.benchmark_group("cpu memory-bound");
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    let logits = random(&[4096, 4096], DType::F32);
    group.throughput(Throughput::Bytes(2 * 4096 * 4096 * 4));
    group.bench_function("softmax [4096, 4096] last axis", |bench| bench.iter(|| logits.softmax(-1).expect("softmax")));
    let (p, q) = (random(&[1 << 24], DType::F32), random(&[1 << 24], DType::F32));
    group.throughput(Throughput::Bytes(3 * 4 * (1 << 24)));
    group.bench_function("add 16M f32", |bench| bench.iter(|| p.add(&q).expect("add")));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
