//! CPU speed of the kernels the peers also run (`tools/bench_numpy.py`): f32 matmul at 256, 1024
//! and 2048 square (GFLOP/s), the 1x4096 @ 4096x4096 matrix-vector product of batch-1 decoding
//! (f32 and bf16 weights), softmax over the last axis of [4096, 4096] and an elementwise add of
//! 16M floats (GB/s). Compared with NumPy in docs/BENCHMARKS.md.
//!
//! `cargo bench --bench cpu_ops`.

use std::time::Duration;

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

    let mut group = c.benchmark_group("cpu matvec 1x4096 @ 4096x4096");
    group.sample_size(20).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    let x = random(&[1, 4096], DType::F32);
    for dtype in [DType::F32, DType::BF16] {
        let w = random(&[4096, 4096], dtype);
        group.throughput(Throughput::Bytes((4096 * 4096 * dtype.size_in_bytes()) as u64));
        group.bench_function(format!("{dtype} weights"), |bench| bench.iter(|| x.matmul(&w).expect("matvec")));
    }
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
