//! Choosing the next token from logits: greedy (argmax), or sampled with temperature, top-k and
//! top-p (nucleus, Holtzman et al. 2019) from a seeded generator, so a seed replays a generation.

use tensor::Rng;

use crate::{Error, Result};

/// How to pick tokens. `temperature == 0` is greedy decoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f64,
    /// Keep only the `k` likeliest tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of likeliest tokens whose probability reaches `p`.
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Sampling {
        Sampling { temperature: 0.0, top_k: None, top_p: None, seed: 0 }
    }

    /// Checks the settings a user gave.
    pub fn validate(&self) -> Result<()> {
        if self.temperature.is_nan() || self.temperature < 0.0 || self.temperature.is_infinite() {
            return Err(Error::input(format!("--temperature must be a finite number >= 0, got {}", self.temperature)));
        }
        if self.top_k == Some(0) {
            return Err(Error::input("--top-k must be at least 1"));
        }
        if let Some(p) = self.top_p
            && (p.is_nan() || p <= 0.0 || p > 1.0)
        {
            return Err(Error::input(format!("--top-p must be in (0, 1], got {p}")));
        }
        Ok(())
    }
}

/// Picks a token from one row of logits.
pub struct Sampler {
    settings: Sampling,
    rng: Rng,
}

impl Sampler {
    pub fn new(settings: Sampling) -> Sampler {
        Sampler { rng: Rng::new(settings.seed), settings }
    }

    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.settings.temperature == 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        // Candidates in descending order of logit (ties: lower id first, like topk).
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if let Some(k) = self.settings.top_k {
            order.truncate(k.max(1));
        }
        let t = self.settings.temperature;
        let max = logits[order[0] as usize] as f64;
        let mut probs: Vec<f64> = order.iter().map(|&i| ((logits[i as usize] as f64 - max) / t).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = self.settings.top_p {
            let mut acc = 0.0;
            let keep = probs.iter().position(|p| {
                acc += p;
                acc >= top_p
            });
            let keep = keep.map_or(probs.len(), |i| i + 1);
            order.truncate(keep);
            probs.truncate(keep);
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut u = self.rng.uniform();
        for (i, p) in probs.iter().enumerate() {
            if u < *p {
                return order[i];
            }
            u -= p;
        }
        order[order.len() - 1]
    }
}

/// The index of the largest logit (the first on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert_eq!(Sampler::new(Sampling::greedy()).pick(&[0.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_replay() {
        let logits = [0.5, 0.1, 2.0, 1.9, -3.0];
        let mut s = Sampler::new(Sampling { temperature: 1.0, top_k: Some(1), top_p: None, seed: 3 });
        assert!((0..20).all(|_| s.pick(&logits) == 2));
        let settings = Sampling { temperature: 1.0, top_k: None, top_p: Some(0.9), seed: 42 };
        let (mut a, mut b) = (Sampler::new(settings), Sampler::new(settings));
        let run_a: Vec<u32> = (0..50).map(|_| a.pick(&logits)).collect();
        let run_b: Vec<u32> = (0..50).map(|_| b.pick(&logits)).collect();
        assert_eq!(run_a, run_b);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Probabilities ~ [0.0, 0.0, 0.5, 0.5]: p = 0.4 keeps only the first of the two.
        let logits = [-50.0, -50.0, 1.0, 1.0];
        let mut s = Sampler::new(Sampling { temperature: 1.0, top_k: None, top_p: Some(0.4), seed: 1 });
        assert!((0..50).all(|_| s.pick(&logits) == 2));
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(Sampling { temperature: -1.0, ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_k: Some(0), ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_p: Some(1.5), ..Sampling::greedy() }.validate().is_err());
    }
}
