//! The decode-shaped product on block-quantized weights: one activation row times a 4096x4096
//! weight matrix held packed (`QMatrix`) in Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4 and FP8_E4M3, on the
//! block-dot path the CPU picks (`LLM_CPU_KERNELS=scalar|avx2|avx512` forces one). Throughput is counted in
//! weight bytes read, so it reads against the memory bandwidth of `cpu_ops`' streaming read.
//!
//! A second group is the prefill shape, 128 activation rows times a 3072x1024 matrix, on both
//! paths a product can take: integer dots on the blocks (`blocks`) and panels of weights widened
//! for the float GEMM (`panels`); `GEMM_MIN_ROWS` picks between them, and this is where to check
//! the choice.
//!
//! `cargo bench --bench quant_matvec`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tensor::quant::qmatmul::QKernel;
use tensor::quant::{GgmlType, QMatrix};

fn bench(c: &mut Criterion) {
    let (n, k) = (4096usize, 4096usize);
    let mut s = 1u64;
    let values: Vec<f32> = (0..n * k)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let x: Vec<f32> = values[..k].iter().map(|v| v * 3.0).collect();
    let kernel = QKernel::for_isa(tensor::cpu::isa::active());
    let mut group = c.benchmark_group(format!("quant matvec 1x{k} @ ({n}x{k})^T, {kernel:?}"));
    group.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let types = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::MXFP4];
    for ty in types.into_iter().chain([GgmlType::FP8_E4M3]) {
        let w = QMatrix::quantize(ty, n, k, &values).expect("quantize");
        group.throughput(Throughput::Bytes(w.data().len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(ty), &ty, |bench, _| {
            bench.iter(|| w.matmul_blocks(&x, 1, kernel))
        });
    }
    group.finish();

    let (m, n, k) = (128usize, 3072usize, 1024usize);
    let mut group = c.benchmark_group(format!("quant matmul {m}x{k} @ ({n}x{k})^T, {kernel:?}"));
    group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements((2 * m * n * k) as u64));
    let x: Vec<f32> = values[..m * k].iter().map(|v| v * 3.0).collect();
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::MXFP4, GgmlType::FP8_E4M3] {
        let w = QMatrix::quantize(ty, n, k, &values[..n * k]).expect("quantize");
        group.bench_with_input(BenchmarkId::new("blocks", ty), &ty, |bench, _| {
            bench.iter(|| w.matmul_blocks(&x, m, kernel))
        });
        group.bench_with_input(BenchmarkId::new("panels", ty), &ty, |bench, _| {
            bench.iter(|| w.matmul_panels(&x, m).expect("panels"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
