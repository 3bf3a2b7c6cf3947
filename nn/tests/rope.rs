//! RoPE schedules against hand-computed values, and the two pair layouts against each other.

use nn::rope::{Rope, RopeScaling, yarn_get_mscale};
use tensor::testing::randn;
use tensor::{DType, Device, Result};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-30)
}

/// DeepSeek-V3's YaRN settings (factor 40 over a 4096-position original context), which the
/// YaRN tests share.
fn deepseek_v3_yarn() -> RopeScaling {
    RopeScaling::Yarn {
        factor: 40.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        mscale: 1.0,
        mscale_all_dim: 1.0,
        original_max_position_embeddings: 4096.0,
        truncate: true,
    }
}

#[test]
fn default_frequencies_are_theta_powers() {
    let rope = Rope::new(8, 10_000.0, &RopeScaling::None, false);
    let want = [1.0, 0.1, 0.01, 0.001]; // 10000^(-2i/8)
    for (got, want) in rope.inv_freq.iter().zip(want) {
        assert!(close(*got, want, 1e-12), "{got} vs {want}");
    }
    assert_eq!(rope.attention_factor, 1.0);
}

#[test]
fn linear_scaling_divides_every_frequency() {
    let plain = Rope::new(16, 1e6, &RopeScaling::None, false);
    let linear = Rope::new(16, 1e6, &RopeScaling::Linear { factor: 8.0 }, false);
    for (p, l) in plain.inv_freq.iter().zip(&linear.inv_freq) {
        assert!(close(*l, p / 8.0, 1e-12));
    }
}

#[test]
fn llama3_scaling_keeps_high_divides_low_and_blends_between() {
    // Llama 4 Scout's settings shrunk: factor 16, low 1, high 4, original context 64.
    let (factor, old) = (16.0, 64.0);
    let scaling = RopeScaling::Llama3 {
        factor,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: old,
    };
    let base = Rope::new(32, 500_000.0, &RopeScaling::None, true);
    let scaled = Rope::new(32, 500_000.0, &scaling, true);
    for (&b, &s) in base.inv_freq.iter().zip(&scaled.inv_freq) {
        let wavelen = 2.0 * std::f64::consts::PI / b;
        if wavelen < old / 4.0 {
            assert!(close(s, b, 1e-12), "high frequency kept");
        } else if wavelen > old {
            assert!(close(s, b / factor, 1e-12), "low frequency divided");
        } else {
            assert!(s < b && s > b / factor, "medium band blended");
        }
    }
}

#[test]
fn deepseek_v3_yarn_scale_matches_published_numbers() {
    // ARCHITECTURES.md 3.4: mscale = 0.1 ln 40 + 1 = 1.368888, softmax scale 192^-0.5 * mscale^2.
    let m = yarn_get_mscale(40.0, 1.0);
    assert!(close(m, 1.368888, 1e-6));
    assert!(close(192f64.powf(-0.5) * m * m, 0.135234, 1e-5));
    let kimi = yarn_get_mscale(32.0, 1.0);
    assert!(close(kimi * kimi, 1.813260, 1e-6));
}

#[test]
fn yarn_ramp_interpolates_low_frequencies_and_keeps_high_ones() {
    let scaling = deepseek_v3_yarn();
    let base = Rope::new(64, 10_000.0, &RopeScaling::None, true);
    let yarn = Rope::new(64, 10_000.0, &scaling, true);
    // mscale == mscale_all_dim: cos and sin are not scaled (the mscale^2 lives in the softmax scale).
    assert_eq!(yarn.attention_factor, 1.0);
    assert!(close(yarn.inv_freq[0], base.inv_freq[0], 1e-12), "fastest dim kept");
    assert!(close(yarn.inv_freq[31], base.inv_freq[31] / 40.0, 1e-12), "slowest dim interpolated");
    for i in 1..32 {
        assert!(yarn.inv_freq[i] <= base.inv_freq[i] * (1.0 + 1e-12));
    }
}

#[test]
fn interleaved_layout_is_halves_layout_under_a_fixed_permutation() -> Result<()> {
    // Rotating (2i, 2i+1) pairs equals rotating (i, i + d/2) pairs after permuting dims
    // evens-then-odds (what HF does for DeepSeek's rope dims), and the q.k dot products agree.
    let cpu = Device::cpu();
    let (t, d) = (5, 8);
    let x = randn([1, 1, t, d], 1, &cpu)?;
    let inter = Rope::new(d, 10_000.0, &RopeScaling::None, true);
    let perm: Vec<u32> = (0..d as u32).step_by(2).chain((1..d as u32).step_by(2)).collect();
    let perm = tensor::Tensor::from_vec(perm, [d], &cpu)?;
    let (cos, sin) = inter.tables(3, t, DType::F32, &cpu)?;
    let a = x.rope(&cos, &sin, true)?.index_select(&perm, 3usize)?;
    let b = x.index_select(&perm, 3usize)?.rope(&cos, &sin, false)?;
    tensor::testing::assert_close(&a, &b, 1e-6, 1e-6)?;
    Ok(())
}

#[test]
fn resident_tables_are_the_computed_tables_bit_for_bit_and_grow() -> Result<()> {
    // Rows of the resident tables (built once, grown past 1024 positions here) must equal the
    // tables computed for exactly those positions: same f64 angles, same rounding to the dtype.
    let mut devices = vec![Device::cpu()];
    devices.extend(gpu::test_device());
    let scaling = deepseek_v3_yarn();
    let rope = Rope::new(16, 10_000.0, &scaling, true);
    let twin = Rope::new(16, 10_000.0, &scaling, false); // same frequencies: shares the tables
    for device in &devices {
        for dtype in [DType::F32, DType::BF16] {
            for (start, len) in [(0, 7), (3, 1), (1020, 9), (1500, 1), (4100, 3)] {
                let (c, s) = rope.tables(start, len, dtype, device)?;
                let (rc, rs) = rope.resident_tables(start, len, dtype, device)?;
                let (tc, ts) = twin.resident_tables(start, len, dtype, device)?;
                for (a, b) in [(&c, &rc), (&s, &rs), (&c, &tc), (&s, &ts)] {
                    assert_eq!(b.dims(), [len, 8]);
                    let (a, b) = (a.to_dtype(DType::F32)?.to_vec::<f32>()?, b.to_dtype(DType::F32)?.to_vec::<f32>()?);
                    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{device} {dtype} at {start}");
                }
            }
        }
    }
    Ok(())
}
