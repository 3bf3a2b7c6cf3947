//! Muon (Jordan et al. 2024) and MuonClip (Kimi K2, 2025).
//!
//! Muon replaces Adam's per-element scaling for 2-D weights by orthogonalising the momentum:
//! the update is the matrix with the same singular vectors and all singular values near 1,
//! found by five steps of a quintic Newton-Schulz iteration
//! `A = X X^T; B = b A + c A^2; X = a X + B X` with `(a, b, c) = (3.4445, -4.7750, 2.0315)` on
//! `X = G / ||G||_F`. Embeddings, the output head, norms and biases keep AdamW.
//!
//! Two scalings of the orthogonalised update:
//! - `Original` (Jordan): momentum `m = lerp(m, g, 1 - mu)`, Nesterov `u = lerp(g, m, mu)`,
//!   update `NS(u) * max(1, rows/cols)^0.5`;
//! - `MatchAdamRms` (Moonlight, Kimi): `m = mu m + g`, Nesterov `u = g + mu m`, learning rate
//!   `lr * 0.2 * sqrt(max(rows, cols))` so the update's RMS matches AdamW's and AdamW's
//!   hyper-parameters carry over.
//!
//! Weight decay is decoupled, `p *= 1 - lr wd` with the unadjusted lr.
//!
//! MuonClip adds QK-Clip after each step: attention heads whose largest logit in the step's
//! forward pass exceeded `tau` (100 for K2) get their query and key weights scaled back (see
//! `Module::clip_qk`), which bounds attention logits without touching the update rule.
//! The reference iteration runs in bf16; here it runs in f32.

use autograd::{Gradients, Var};
use tensor::{Result, Tensor};

use super::{AdamW, Optimizer, trainable};
use crate::Module;

const NS_COEFFICIENTS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// The orthogonalisation: `steps` quintic Newton-Schulz iterations on each matrix of `g`
/// ([.., rows, cols]), giving a matrix with the same singular vectors and singular values in
/// roughly [0.7, 1.2] (the quintic trades exactness for speed).
pub fn newton_schulz(g: &Tensor, steps: usize) -> Result<Tensor> {
    let r = g.rank();
    let (rows, cols) = (g.dims()[r - 2], g.dims()[r - 1]);
    let transposed = rows > cols;
    let mut x = if transposed { g.t()? } else { g.clone() };
    // Frobenius norm per matrix.
    let norm = x.sqr()?.sum(-1, true)?.sum(-2, true)?.sqrt()?.add_scalar(1e-7)?;
    x = x.div(&norm)?;
    let (a, b, c) = NS_COEFFICIENTS;
    for _ in 0..steps {
        let gram = x.matmul(&x.t()?)?;
        let poly = gram.mul_scalar(b)?.add(&gram.matmul(&gram)?.mul_scalar(c)?)?;
        x = x.mul_scalar(a)?.add(&poly.matmul(&x)?)?;
    }
    if transposed { x.t()?.contiguous() } else { Ok(x) }
}

/// How the orthogonalised update is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuonScaling {
    Original,
    MatchAdamRms,
}

pub struct Muon {
    matrices: Vec<(String, Var)>,
    momentum_buffers: Vec<Option<Tensor>>,
    /// Every other parameter.
    pub adamw: AdamW,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub ns_steps: usize,
    pub scaling: MuonScaling,
}

/// Whether Muon updates this parameter: hidden weights of two or more dims (stacked experts are
/// one matrix per expert), not the embedding or the output head.
fn takes_muon(name: &str, var: &Var) -> bool {
    var.rank() >= 2 && !name.contains("embed_tokens") && !name.contains("lm_head")
}

impl Muon {
    /// Muon for the hidden matrices, AdamW (betas 0.9/0.95, eps 1e-8) for the rest, sharing `lr`
    /// and `weight_decay`.
    pub fn new(named: Vec<(String, Var)>, lr: f64, weight_decay: f64, scaling: MuonScaling) -> Muon {
        let (matrices, others): (Vec<_>, Vec<_>) = trainable(named).into_iter().partition(|(n, v)| takes_muon(n, v));
        let momentum_buffers = vec![None; matrices.len()];
        Muon {
            matrices,
            momentum_buffers,
            adamw: AdamW::with(others, lr, (0.9, 0.95), 1e-8, weight_decay),
            lr,
            momentum: 0.95,
            nesterov: true,
            weight_decay,
            ns_steps: 5,
            scaling,
        }
    }

    /// Names of the parameters Muon (not AdamW) updates.
    pub fn matrix_names(&self) -> Vec<String> {
        self.matrices.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl Optimizer for Muon {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        let mu = self.momentum;
        for ((_, p), buffer) in self.matrices.iter().zip(&mut self.momentum_buffers) {
            let Some(g) = grads.get(p) else { continue };
            let value = p.value();
            let g = g.to_dtype(value.dtype())?;
            let r = value.rank();
            let (rows, cols) = (value.dims()[r - 2] as f64, value.dims()[r - 1] as f64);
            let m = buffer.take().map_or_else(|| value.zeros_like(), Ok)?;
            let (m, u, lr) = match self.scaling {
                MuonScaling::Original => {
                    let m = m.add(&g.sub(&m)?.mul_scalar(1.0 - mu)?)?;
                    let u = if self.nesterov { g.add(&m.sub(&g)?.mul_scalar(mu)?)? } else { m.clone() };
                    (m, newton_schulz(&u, self.ns_steps)?.mul_scalar((rows / cols).max(1.0).sqrt())?, self.lr)
                }
                MuonScaling::MatchAdamRms => {
                    let m = m.mul_scalar(mu)?.add(&g)?;
                    let u = if self.nesterov { g.add(&m.mul_scalar(mu)?)? } else { m.clone() };
                    (m, newton_schulz(&u, self.ns_steps)?, self.lr * 0.2 * rows.max(cols).sqrt())
                }
            };
            let decayed =
                if self.weight_decay != 0.0 { value.mul_scalar(1.0 - self.lr * self.weight_decay)? } else { value };
            p.set_value(decayed.sub(&u.mul_scalar(lr)?)?)?;
            *buffer = Some(m);
        }
        self.adamw.step(grads)
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
        self.adamw.set_learning_rate(lr);
    }
}

/// Muon with RMS matching and weight decay, followed by QK-Clip at `tau`.
pub struct MuonClip {
    pub muon: Muon,
    pub tau: f64,
}

impl MuonClip {
    /// Kimi K2's settings: τ = 100.
    pub fn new(named: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> MuonClip {
        MuonClip { muon: Muon::new(named, lr, weight_decay, MuonScaling::MatchAdamRms), tau: 100.0 }
    }
}

impl Optimizer for MuonClip {
    fn step(&mut self, grads: &Gradients) -> Result<()> {
        self.muon.step(grads)
    }
    fn learning_rate(&self) -> f64 {
        self.muon.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.muon.set_learning_rate(lr);
    }
    fn after_step(&mut self, model: &dyn Module) -> Result<()> {
        model.clip_qk(self.tau)
    }
    fn needs_attention_logits(&self) -> bool {
        true
    }
}
