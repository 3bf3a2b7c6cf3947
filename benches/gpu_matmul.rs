//! GPU speed: f32 matmul at 1024, 2048 and 4096 square, the 1x4096 @ 4096x4096 matrix-vector
//! product of batch-1 decoding (f32 and bf16 weights), and an elementwise add, as GFLOP/s or
//! GB/s on whatever adapter `gpu::device()` finds, whose name is printed. Each timed iteration
//! ends with `synchronize`, since GPU work is asynchronous.
//!
//! `cargo bench --bench gpu_matmul`. On a CPU adapter (lavapipe) 4096 is skipped unless
//! `LLM_BENCH_GPU_LARGE=1`; lavapipe figures check that the path works, they claim no speed.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tensor::{DType, Device, Rng, Tensor};

fn bench(c: &mut Criterion) {
    let device = match gpu::device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu_matmul: skipped, {e}");
            return;
        }
    };
    let cpu_adapter = gpu::backend().map(|b| b.context().is_cpu_adapter()).unwrap_or(true);
    println!("adapter: {}", device.name());
    let mut rng = Rng::new(0);
    let mut random = |shape: &[usize], dtype: DType| {
        Tensor::randn(0.0, 1.0, shape.to_vec(), dtype, &mut rng, &Device::cpu())
            .and_then(|t| t.to(&device))
            .expect("tensor")
    };

    let mut group = c.benchmark_group("gpu matmul f32");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    let large = std::env::var_os("LLM_BENCH_GPU_LARGE").is_some();
    for n in [1024usize, 2048, 4096] {
        if n == 4096 && cpu_adapter && !large {
            println!("skipping 4096 on a CPU adapter (set LLM_BENCH_GPU_LARGE=1 to run it)");
            continue;
        }
        let (a, b) = (random(&[n, n], DType::F32), random(&[n, n], DType::F32));
        group.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bencher, _| {
            bencher.iter(|| {
                let y = a.matmul(&b).expect("matmul");
                device.synchronize().expect("sync");
                y
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("gpu matvec 1x4096 @ 4096x4096");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let x = random(&[1, 4096], DType::F32);
    for dtype in [DType::F32, DType::BF16] {
        let w = random(&[4096, 4096], dtype); // [out, in], used as x @ W^T
        group.throughput(Throughput::Bytes((4096 * 4096 * dtype.size_in_bytes()) as u64)); // weight bytes read
        group.bench_function(dtype.name(), |bencher| {
            bencher.iter(|| {
                let y = x.matmul(&w.t().expect("t")).expect("matvec");
                device.synchronize().expect("sync");
                y
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("gpu elementwise add");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let n = 1 << 24;
    let (a, b) = (random(&[n], DType::F32), random(&[n], DType::F32));
    group.throughput(Throughput::Bytes((3 * 4 * n) as u64)); // two reads and a write
    group.bench_function("16M f32", |bencher| {
        bencher.iter(|| {
            let y = a.add(&b).expect("add");
            device.synchronize().expect("sync");
            y
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
