//! The wgpu side of `tools/gpu-bench.sh` (a timing tool kept with the gpu crate, not a
//! notebook): matmul GFLOP/s with f32, bf16 and f16 weights, the batch-1 matrix-vector product
//! (with the subgroup reduction and with its fallback), and the streaming bandwidth of an elementwise add, one JSON
//! object per line on stdout, the adapter first.
//!
//! `cargo run --release --example gpu_bench -- [--smoke] [--sizes 1024,2048,4096] [--allow-cpu-adapter]`
//!
//! Exits with status 2 and one line on stderr when no GPU adapter is found, and with status 3 when
//! the only adapter runs on the CPU (Mesa's lavapipe) unless `--allow-cpu-adapter` (implied by
//! `--smoke`, whose tiny shapes test the plumbing, not the speed). Each timed burst ends with
//! `synchronize`, since GPU work is asynchronous; the median burst is reported per call.

use std::time::Instant;

use tensor::{DType, Device, Rng, Tensor};

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> tensor::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let allow_cpu = smoke || args.iter().any(|a| a == "--allow-cpu-adapter");
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--sizes") {
        Some(i) => {
            args.get(i + 1).map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect()).unwrap_or_default()
        }
        None if smoke => vec![64, 128],
        None => vec![1024, 2048, 4096],
    };
    let device = match gpu::device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu_bench: no GPU adapter: {e}");
            std::process::exit(2);
        }
    };
    let cpu_adapter = gpu::backend().map(|b| b.context().is_cpu_adapter()).unwrap_or(true);
    println!("{}", serde_json::json!({ "case": "adapter", "name": device.name(), "cpu_adapter": cpu_adapter }));
    if cpu_adapter && !allow_cpu {
        eprintln!(
            "gpu_bench: the only adapter, {}, runs on the CPU; install the GPU's Vulkan driver (and the loader, libvulkan1) or pass --smoke",
            device.name()
        );
        std::process::exit(3);
    }
    let mut rng = Rng::new(0);
    let mut random = |shape: &[usize], dtype: DType| {
        Tensor::randn(0.0, 1.0, shape.to_vec(), dtype, &mut rng, &Device::cpu()).and_then(|t| t.to(&device))
    };
    let budget = if smoke { 0.02 } else { 0.25 }; // seconds of timed bursts per case
    let time = |f: &mut dyn FnMut() -> tensor::Result<Tensor>| -> tensor::Result<f64> {
        // One untimed call compiles the kernel and warms the pool; then bursts of `inner` calls.
        f()?;
        device.synchronize()?;
        let t0 = Instant::now();
        f()?;
        device.synchronize()?;
        let one = t0.elapsed().as_secs_f64().max(1e-6);
        let inner = ((0.01 / one) as usize).clamp(1, 200);
        let mut per_call = Vec::new();
        let start = Instant::now();
        while per_call.len() < 3 || (start.elapsed().as_secs_f64() < budget && per_call.len() < 15) {
            let t0 = Instant::now();
            for _ in 0..inner {
                f()?;
            }
            device.synchronize()?;
            per_call.push(t0.elapsed().as_secs_f64() / inner as f64);
        }
        per_call.sort_by(f64::total_cmp);
        Ok(per_call[per_call.len() / 2])
    };

    // x [n, n] f32 @ W^T with W [n, n] stored [out, in] as a Linear layer keeps it.
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for &n in &sizes {
            let (x, w) = (random(&[n, n], DType::F32)?, random(&[n, n], dtype)?);
            let wt = w.t()?;
            let s = time(&mut || x.matmul(&wt))?;
            let flops = 2.0 * (n as f64).powi(3);
            println!(
                "{}",
                serde_json::json!({ "case": format!("matmul_{n}"), "weights": dtype.name(), "ms": s * 1e3, "gflops": flops / s / 1e9 })
            );
        }
    }
    let n = if smoke { 256 } else { 4096 };
    let x = random(&[1, n], DType::F32)?;
    // The matrix-vector product with each reduction the adapter can run: subgroupAdd where it
    // has subgroups, and the workgroup-memory tree every adapter runs.
    let has_subgroups = gpu::backend().map(|b| b.context().features.subgroups).unwrap_or(false);
    let reductions: &[&str] = if has_subgroups { &["subgroup", "tree"] } else { &["tree"] };
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let w = random(&[n, n], dtype)?;
        let wt = w.t()?;
        for &reduction in reductions {
            gpu::features::force_subgroups((reduction == "tree").then_some(false));
            let s = time(&mut || x.matmul(&wt))?;
            let bytes = (n * n * dtype.size_in_bytes()) as f64;
            println!(
                "{}",
                serde_json::json!({ "case": format!("matvec_{n}"), "weights": dtype.name(), "reduction": reduction, "ms": s * 1e3, "weight_gbps": bytes / s / 1e9 })
            );
        }
        gpu::features::force_subgroups(None);
    }
    let n = if smoke { 1 << 16 } else { 1 << 26 };
    let (a, b) = (random(&[n], DType::F32)?, random(&[n], DType::F32)?);
    let s = time(&mut || a.add(&b))?;
    println!(
        "{}",
        serde_json::json!({ "case": "add", "elements": n, "ms": s * 1e3, "gbps": (3 * 4 * n) as f64 / s / 1e9 })
    );
    Ok(())
}
