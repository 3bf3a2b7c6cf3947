//! The learning-rate schedule of most LLM pre-training runs: a linear warm-up from zero (Adam's
//! second-moment estimates are poor in the first steps, and large early updates can push a fresh
//! model into a bad region), then a cosine decay to a floor (Loshchilov and Hutter, "SGDR", 2017).

/// Linear warm-up over `warmup` steps to `peak`, then cosine decay to `peak * floor` at `total`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    /// The final learning rate as a fraction of the peak (0.1 is common).
    pub floor: f64,
}

impl WarmupCosine {
    /// The learning rate for update `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.peak * (self.floor + (1.0 - self.floor) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::WarmupCosine;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = WarmupCosine { peak: 1e-3, warmup: 10, total: 110, floor: 0.1 };
        assert!((s.at(0) - 1e-4).abs() < 1e-12);
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!((s.at(10) - 1e-3).abs() < 1e-12);
        // Halfway through the decay the cosine term is 1/2.
        assert!((s.at(60) - 1e-3 * (0.1 + 0.9 * 0.5)).abs() < 1e-12);
        assert!((s.at(110) - 1e-4).abs() < 1e-12);
        assert!((s.at(500) - 1e-4).abs() < 1e-12);
        assert!((1..110).all(|k| s.at(k) <= s.at(k - 1) || k <= 10));
    }
}
