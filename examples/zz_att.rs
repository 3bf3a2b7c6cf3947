use std::time::Instant;
use tensor::{AttentionMask, AttentionSpec, DType, Device, Tensor};
fn main() -> tensor::Result<()> {
    let threads: usize = std::env::var("T").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| -> tensor::Result<()> {
        let cpu = Device::cpu();
        let cap = 600;
        let mk = |n: usize, seed: usize| {
            (0..n).map(|i| (((i + seed) * 7919 % 1000) as f32 - 500.0) * 1e-3).collect::<Vec<f32>>()
        };
        // Several layers' caches, so each call reads from memory, not from L2.
        let layers = 28;
        let caches: Vec<(Tensor, Tensor)> = (0..layers)
            .map(|l| -> tensor::Result<_> {
                let k = Tensor::from_vec(mk(8 * cap * 128, l), [1, 8, cap, 128], &cpu)?.to_dtype(DType::F16)?;
                let v = Tensor::from_vec(mk(8 * cap * 128, l + 7), [1, 8, cap, 128], &cpu)?.to_dtype(DType::F16)?;
                Ok((k, v))
            })
            .collect::<tensor::Result<_>>()?;
        let q = Tensor::from_vec(mk(16 * 128, 3), [1, 16, 1, 128], &cpu)?;
        for tk in [50usize, 528] {
            let spec = AttentionSpec { scale: 0.088, mask: AttentionMask::causal(tk - 1), softcap: None };
            let views: Vec<(Tensor, Tensor)> = caches
                .iter()
                .map(|(k, v)| Ok((k.narrow(2, 0, tk)?, v.narrow(2, 0, tk)?)))
                .collect::<tensor::Result<_>>()?;
            let mut best = f64::MAX;
            for _ in 0..20 {
                let t = Instant::now();
                for (k, v) in &views {
                    std::hint::black_box(Tensor::attention(&q, k, v, &spec)?);
                }
                best = best.min(t.elapsed().as_secs_f64() / layers as f64);
            }
            let bytes = 2.0 * 8.0 * tk as f64 * 128.0 * 2.0;
            println!("tk {tk} {threads} thr: {:.1} us per layer, {:.1} GB/s", best * 1e6, bytes / best / 1e9);
        }
        Ok(())
    })
}
