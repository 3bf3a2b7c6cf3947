//! A training run's loss curve: training loss per update, validation loss every so often, written
//! as CSV (for any plotting tool) and drawn as a PNG.

use std::fmt::Write as _;
use std::path::Path;

use crate::plot::{LineChart, Series};
use crate::{Error, Result};

/// Losses (mean next-token cross-entropy, in nats) by update step.
#[derive(Clone, Debug, Default)]
pub struct LossCurve {
    /// (step, loss on that step's batch, before the update).
    pub train: Vec<(usize, f32)>,
    /// (step, mean loss on the held-out windows, before update `step`).
    pub validation: Vec<(usize, f32)>,
    /// (step, learning rate used for the update).
    pub learning_rate: Vec<(usize, f64)>,
    /// (step, global L2 norm of the step's gradients, before any clipping).
    pub grad_norm: Vec<(usize, f64)>,
    /// (step, largest scaled attention logit over every head and layer in the step's forward
    /// pass), when the run watched them (`PretrainOptions::watch_attention_logits`, MuonClip).
    pub max_attention_logit: Vec<(usize, f64)>,
    /// Wall-clock seconds of the whole run, evaluations included.
    pub seconds: f64,
    /// Training tokens processed (inputs, all batches).
    pub tokens: usize,
}

impl LossCurve {
    /// The training loss averaged over a trailing window of `window` steps: one batch is noisy,
    /// the trend is what a reader wants to see.
    pub fn smoothed_train(&self, window: usize) -> Vec<(f64, f64)> {
        let window = window.max(1);
        (0..self.train.len())
            .map(|i| {
                let from = (i + 1).saturating_sub(window);
                let slice = &self.train[from..=i];
                let mean = slice.iter().map(|&(_, l)| l as f64).sum::<f64>() / slice.len() as f64;
                (self.train[i].0 as f64, mean)
            })
            .collect()
    }

    /// The validation points as (step, loss).
    pub fn validation_points(&self) -> Vec<(f64, f64)> {
        self.validation.iter().map(|&(s, l)| (s as f64, l as f64)).collect()
    }

    /// The last validation loss, if any.
    pub fn final_validation(&self) -> Option<f32> {
        self.validation.last().map(|&(_, l)| l)
    }

    /// One row per step: `step,train_loss,validation_loss,learning_rate` (empty where not measured).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("step,train_loss,validation_loss,learning_rate\n");
        let last = self.train.iter().map(|p| p.0).chain(self.validation.iter().map(|p| p.0)).max().unwrap_or(0);
        let find = |points: &[(usize, f32)], step: usize| {
            points.iter().find(|p| p.0 == step).map(|p| p.1.to_string()).unwrap_or_default()
        };
        for step in 0..=last {
            let lr = self.learning_rate.iter().find(|p| p.0 == step).map(|p| p.1.to_string()).unwrap_or_default();
            let _ = writeln!(out, "{step},{},{},{lr}", find(&self.train, step), find(&self.validation, step));
        }
        out
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_csv()).map_err(|e| Error::io(path, e))
    }

    /// Training (smoothed over 10 steps) and validation loss against the step.
    pub fn chart(&self, title: &str) -> LineChart {
        LineChart::new(title, "update step", "cross-entropy (nats per token)")
            .with(Series::new("training batches (mean of 10 steps)", self.smoothed_train(10)))
            .with(Series::new("held-out text", self.validation_points()))
    }

    pub fn save_png(&self, path: &Path, title: &str) -> Result<()> {
        self.chart(title).save_png(path).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::LossCurve;

    #[test]
    fn csv_and_smoothing() {
        let curve = LossCurve {
            train: vec![(0, 4.0), (1, 2.0), (2, 3.0)],
            validation: vec![(0, 5.0), (3, 2.5)],
            learning_rate: vec![(0, 0.1), (1, 0.2), (2, 0.3)],
            ..LossCurve::default()
        };
        assert_eq!(curve.smoothed_train(2), vec![(0.0, 4.0), (1.0, 3.0), (2.0, 2.5)]);
        let csv = curve.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "step,train_loss,validation_loss,learning_rate");
        assert_eq!(lines[1], "0,4,5,0.1");
        assert_eq!(lines[4], "3,,2.5,");
        assert_eq!(curve.final_validation(), Some(2.5));
    }
}
