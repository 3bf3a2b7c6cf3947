//! Optimizers against hand-computed updates, Muon's orthogonalisation, and QK-Clip bounding the
//! attention logits.

use autograd::Var;
use nn::attention::{AttentionConfig, GroupedQueryAttention, MaskKind, QkNorm};
use nn::optim::{AdamW, Muon, MuonClip, MuonScaling, Optimizer, Sgd, newton_schulz};
use nn::rope::{Rope, RopeScaling};
use nn::{Init, Module, ModuleExt};
use tensor::testing::randn;
use tensor::{DType, Device, Result, Tensor};

fn param(values: &[f64]) -> Var {
    Var::parameter(Tensor::from_vec(values.to_vec(), [values.len()], &Device::cpu()).unwrap())
}

/// Gradients of `sum(p * g)` are `g`: a constant gradient each step.
fn grads_of(p: &Var, g: &[f64]) -> Result<autograd::Gradients> {
    p.mul(&Var::constant(Tensor::from_vec(g.to_vec(), [g.len()], &Device::cpu())?))?.sum_all()?.backward()
}

#[test]
fn adamw_matches_the_pytorch_update_computed_by_hand() -> Result<()> {
    let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.01);
    let p = param(&[1.0, -2.0]);
    let g = [0.5, 0.1];
    let mut opt = AdamW::with(vec![("p".into(), p.clone())], lr, (b1, b2), eps, wd);
    // The same update written out with scalars.
    let (mut want, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
    for t in 1..=4 {
        opt.step(&grads_of(&p, &g)?)?;
        for i in 0..2 {
            want[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = v[i] / (1.0 - b2.powi(t));
            want[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        let got = p.value().to_vec::<f64>()?;
        for i in 0..2 {
            assert!((got[i] - want[i]).abs() < 1e-9, "step {t}: {got:?} vs {want:?}");
        }
    }
    Ok(())
}

#[test]
fn sgd_with_momentum_matches_by_hand() -> Result<()> {
    let p = param(&[1.0]);
    let mut opt = Sgd::new(vec![("p".into(), p.clone())], 0.1, 0.9);
    // b1 = g = 2, p = 1 - 0.2 = 0.8; b2 = 0.9 * 2 + 2 = 3.8, p = 0.8 - 0.38 = 0.42.
    opt.step(&grads_of(&p, &[2.0])?)?;
    opt.step(&grads_of(&p, &[2.0])?)?;
    assert!((p.value().to_vec::<f64>()?[0] - 0.42).abs() < 1e-12);
    Ok(())
}

/// Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations.
fn symmetric_eigenvalues(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let n = a.len();
    for _ in 0..100 {
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-14 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (row_p, row_q) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in row_p.into_iter().zip(row_q).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i][i]).collect()
}

#[test]
fn newton_schulz_gives_singular_values_near_one() -> Result<()> {
    // The quintic iteration converges to singular values in a band around 1, roughly [0.7, 1.2]
    // after 5 steps, not to 1 exactly: check every singular value lies in [0.6, 1.25].
    let cpu = Device::cpu();
    for (i, (rows, cols)) in [(8, 8), (6, 10), (12, 5)].into_iter().enumerate() {
        let g = randn([rows, cols], 10 + i as u64, &cpu)?.to_dtype(DType::F64)?;
        let x = newton_schulz(&g, 5)?;
        assert_eq!(x.dims(), &[rows, cols]);
        let small = x.matmul(&x.t()?)?;
        let small = if rows <= cols { small } else { x.t()?.matmul(&x)? };
        let singular: Vec<f64> = symmetric_eigenvalues(small.to_vec2::<f64>()?).into_iter().map(f64::sqrt).collect();
        assert!(singular.iter().all(|&s| (0.6..=1.25).contains(&s)), "{rows}x{cols}: {singular:?}");
    }
    Ok(())
}

fn attention(scale_weights: f64, init: &mut Init) -> Result<GroupedQueryAttention> {
    let attn = GroupedQueryAttention::new(
        AttentionConfig {
            hidden_size: 16,
            num_heads: 4,
            num_kv_heads: 4,
            head_dim: 4,
            bias: false,
            qk_norm: QkNorm::None,
            rope: Some(Rope::new(4, 10_000.0, &RopeScaling::None, false)),
            mask: MaskKind::Causal,
            scale: 0.5,
            softcap: None,
            temperature_tuning: None,
        },
        init,
    )?;
    for w in [&attn.q_proj.weight, &attn.k_proj.weight] {
        w.set_value(w.value().mul_scalar(scale_weights)?)?;
    }
    Ok(attn)
}

#[test]
fn muon_routes_matrices_and_the_rest_to_adamw() -> Result<()> {
    let cpu = Device::cpu();
    let mut init = Init::new(3, &cpu);
    let attn = attention(1.0, &mut init)?;
    let embed = ("model.embed_tokens.weight".to_string(), init.normal([10, 16])?);
    let mut named = attn.named_parameters();
    named.push(embed);
    named.push(("model.norm.weight".to_string(), init.ones([16])?));
    let muon = Muon::new(named, 0.01, 0.0, MuonScaling::Original);
    assert_eq!(muon.matrix_names(), ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]);
    Ok(())
}

#[test]
fn muon_clip_brings_attention_logits_back_under_tau() -> Result<()> {
    let cpu = Device::cpu();
    let mut init = Init::new(4, &cpu);
    init.std = 1.0;
    let attn = attention(3.0, &mut init)?;
    let x = Var::constant(randn([2, 6, 16], 5, &cpu)?);
    attn.record_attention_logits(true);
    let before = {
        let out = attn.forward(&x, 0, None)?;
        let _ = out.sum_all()?.backward()?; // a step needs gradients
        attn.max_logits().expect("recorded in training mode")
    };
    let tau = before.iter().cloned().fold(f64::INFINITY, f64::min) * 1.01; // at least one head is clipped
    let mut opt = MuonClip::new(attn.named_parameters(), 0.0, 0.0); // lr 0: only the clipping acts
    opt.tau = tau;
    let grads = attn.forward(&x, 0, None)?.sum_all()?.backward()?;
    opt.step(&grads)?;
    opt.after_step(&attn)?;
    attn.forward(&x, 0, None)?;
    let after = attn.max_logits().expect("recorded");
    for (h, (&b, &a)) in before.iter().zip(&after).enumerate() {
        if b > tau {
            assert!(a <= tau * (1.0 + 1e-4), "head {h}: {b} -> {a}, tau {tau}");
        } else {
            assert!((a - b).abs() <= 1e-4 * b.abs(), "head {h} under tau changed: {b} -> {a}");
        }
    }
    Ok(())
}
