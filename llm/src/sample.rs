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
///
/// Sampling never sorts the whole vocabulary: with neither top-k nor top-p it draws straight from
/// the softmax in token order; top-k selects its k candidates in linear time and sorts only them;
/// top-p sorts the likeliest tokens a slice at a time until their mass reaches p. A 151,936-token
/// row sorted in full took ~5 ms, which at 8 sequences per step cost `llm serve` a third of its
/// batched throughput. The buffers are kept between calls, so a decoding step allocates nothing.
pub struct Sampler {
    settings: Sampling,
    rng: Rng,
    /// `exp((logit - max) / temperature)` per token id (without top-k); with top-k, the k
    /// candidates' logits.
    weights: Vec<f32>,
    /// Token ids in ranking order (likeliest first, lower id first on ties), when ranked.
    order: Vec<u32>,
}

/// The first slice of the ranking top-p sorts; each next one is 4x larger.
const TOP_P_FIRST: usize = 64;

impl Sampler {
    pub fn new(settings: Sampling) -> Sampler {
        Sampler { rng: Rng::new(settings.seed), settings, weights: Vec::new(), order: Vec::new() }
    }

    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.settings.temperature == 0.0 || logits.len() <= 1 {
            return argmax(logits);
        }
        let inv_t = (1.0 / self.settings.temperature) as f32;
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        if !max.is_finite() {
            return argmax(logits);
        }
        let top_k = self.settings.top_k.map(|k| k.max(1)).filter(|&k| k < logits.len());
        let rank = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
        self.order.clear();
        self.order.extend(0..logits.len() as u32);
        if let Some(k) = top_k {
            // The k candidates, selected in linear time and ranked; then the draw a GPU makes from
            // the same candidates (`pick_ranked`).
            self.order.select_nth_unstable_by(k - 1, rank);
            self.order.truncate(k);
            self.order.sort_unstable_by(rank);
            let ids = std::mem::take(&mut self.order);
            let mut values = std::mem::take(&mut self.weights);
            values.clear();
            values.extend(ids.iter().map(|&i| logits[i as usize]));
            let picked = self.pick_ranked(&values, &ids);
            (self.order, self.weights) = (ids, values);
            return picked;
        }
        // Every token's weight is needed (their total is the mass top-p measures against, and
        // the draw reads them): computed once, kept by token id. NaN logits weigh nothing (a
        // check upstream reports them); -inf ones weigh 0 too.
        self.weights.clear();
        self.weights.extend(logits.iter().map(|&l| {
            let w = ((l - max) * inv_t).exp();
            if w.is_nan() { 0.0 } else { w }
        }));
        let weights = &self.weights;
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        let Some(p) = self.settings.top_p else {
            let u = self.rng.uniform() * total;
            return draw(weights.iter().copied(), u).map_or_else(|| argmax(logits), |i| i as u32);
        };
        // How many of the ranked tokens to keep: top-p's nucleus.
        let keep = nucleus(&mut self.order, p * total, |i| weights[i as usize] as f64, rank);
        self.order.truncate(keep.max(1));
        let kept: f64 = self.order.iter().map(|&i| weights[i as usize] as f64).sum();
        let u = self.rng.uniform() * kept;
        draw(self.order.iter().map(|&i| weights[i as usize]), u).map_or(self.order[0], |i| self.order[i])
    }
}

impl Sampler {
    /// Picks a token given only the row's `k` likeliest logits and their ids, ranked (likeliest
    /// first, lower id first on ties: what `Tensor::topk` gives), where top-k is set and smaller
    /// than the row. [`Sampler::pick`] with top-k selects the candidates and ends here, so the
    /// draw is the same from the whole row or from its candidates, with the generator in the
    /// same state; a GPU can select them and send back k pairs instead of the vocabulary's row.
    pub fn pick_ranked(&mut self, values: &[f32], ids: &[u32]) -> u32 {
        debug_assert_eq!(values.len(), ids.len());
        if values.is_empty() {
            return 0;
        }
        if self.settings.temperature == 0.0 {
            return ids[0];
        }
        let inv_t = (1.0 / self.settings.temperature) as f32;
        let max = values.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        if !max.is_finite() {
            return ids[argmax(values) as usize];
        }
        let weight = |l: f32| {
            let w = ((l - max) * inv_t).exp();
            if w.is_nan() { 0.0 } else { w }
        };
        let total: f64 = values.iter().map(|&l| weight(l) as f64).sum();
        let keep = match self.settings.top_p {
            None => values.len(),
            Some(p) => {
                let mut acc = 0.0;
                values
                    .iter()
                    .position(|&l| {
                        acc += weight(l) as f64;
                        acc >= p * total
                    })
                    .map_or(values.len(), |i| i + 1)
            }
        };
        let kept: f64 = values[..keep].iter().map(|&l| weight(l) as f64).sum();
        let u = self.rng.uniform() * kept;
        draw(values[..keep].iter().map(|&l| weight(l)), u).map_or(ids[0], |i| ids[i])
    }
}

/// How many of the likeliest tokens top-p keeps: the shortest prefix of the ranking whose
/// weight reaches `target`. The ranking is made only as far as needed, a slice at a time (its
/// largest selected in linear time, then sorted), so a peaked distribution sorts a few dozen
/// tokens, not the vocabulary.
fn nucleus(
    order: &mut [u32],
    target: f64,
    weight: impl Fn(u32) -> f64,
    rank: impl Fn(&u32, &u32) -> std::cmp::Ordering + Copy,
) -> usize {
    let (mut acc, mut sorted, mut slice) = (0.0f64, 0, TOP_P_FIRST);
    for i in 0..order.len() {
        if i == sorted {
            let end = (sorted + slice).min(order.len());
            if end < order.len() {
                order[sorted..].select_nth_unstable_by(end - sorted - 1, rank);
            }
            order[sorted..end].sort_unstable_by(rank);
            (sorted, slice) = (end, slice * 4);
        }
        acc += weight(order[i]);
        if acc >= target {
            return i + 1;
        }
    }
    order.len()
}

/// The index where the running sum of `weights` first passes `u` (0 <= u < their sum), or the
/// last index with weight when rounding leaves u at the very end; None if every weight is 0.
fn draw(weights: impl IntoIterator<Item = f32>, u: f64) -> Option<usize> {
    let mut acc = 0.0f64;
    let mut last = None;
    for (i, w) in weights.into_iter().enumerate() {
        if w > 0.0 {
            acc += w as f64;
            last = Some(i);
            if u < acc {
                return last;
            }
        }
    }
    last
}

/// The index of the largest logit (the first on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    // Two passes on the CPU's vector path, the largest value (NaN skipped) and then the first
    // index holding it, instead of one scalar scan whose every step waits on the last compare:
    // over Qwen3's 151,936 logits that scan was ~2% of a q4_0 decoding step at the 0.6B shape.
    let max = tensor::cpu::vmath::max(tensor::cpu::isa::active(), logits);
    logits.iter().position(|&v| v == max).map_or_else(|| argmax_scan(logits), |i| i as u32)
}

/// [`argmax`] as one scan, for the case the fast path cannot answer: every logit NaN (the last
/// is picked, as a scan that replaces a NaN best with whatever follows does), or none at all.
fn argmax_scan(logits: &[f32]) -> u32 {
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
    fn argmax_agrees_with_the_scan_on_ties_nan_and_infinities() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        // A vocabulary-like row past the vector width: its maximum twice (the first must win),
        // NaNs around it and in the first slot.
        let mut long: Vec<f32> = (0..1000).map(|i| ((i * 7919 % 1000) as f32).sin()).collect();
        (long[0], long[500], long[777], long[900], long[999]) = (nan, nan, 3.0, 3.0, nan);
        let cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![nan],
            vec![nan, nan, nan],
            vec![nan, 1.0, 1.0],
            vec![-inf; 3],
            vec![nan, -inf, -inf],
            vec![-inf, nan],
            vec![1.0, inf, 2.0, inf],
            long,
        ];
        for case in cases {
            assert_eq!(argmax(&case), argmax_scan(&case), "{case:?}");
        }
        assert_eq!(argmax(&(0..1000).map(|i| if i == 777 || i == 900 { 3.0 } else { 0.0 }).collect::<Vec<_>>()), 777);
    }

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

    /// Each token's probability under `settings`, by the definition: every token ranked by a
    /// full sort (likeliest first, lower id first on ties), the first k kept, then the shortest
    /// prefix whose share of their mass reaches p.
    fn reference(logits: &[f32], settings: Sampling) -> Vec<f64> {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(settings.top_k.unwrap_or(order.len()));
        let max = logits[order[0]] as f64;
        let w: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - max) / settings.temperature).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut keep = w.len();
        if let Some(p) = settings.top_p {
            let mut acc = 0.0;
            keep = w
                .iter()
                .position(|x| {
                    acc += x / total;
                    acc >= p
                })
                .map_or(w.len(), |i| i + 1);
        }
        let kept: f64 = w[..keep].iter().sum();
        let mut probs = vec![0.0; logits.len()];
        for (&i, x) in order[..keep].iter().zip(&w) {
            probs[i] = x / kept;
        }
        probs
    }

    /// Draws many tokens with a fixed seed and checks every token's frequency against
    /// `reference`: never drawn where its probability is 0, and within five standard deviations
    /// of the binomial count (plus one draw) elsewhere. Seeded, so the outcome never changes.
    fn matches_reference(logits: &[f32], settings: Sampling) {
        const DRAWS: usize = 20_000;
        let probs = reference(logits, settings);
        let mut counts = vec![0usize; logits.len()];
        let mut sampler = Sampler::new(settings);
        for _ in 0..DRAWS {
            counts[sampler.pick(logits) as usize] += 1;
        }
        for (i, (&c, &p)) in counts.iter().zip(&probs).enumerate() {
            let expected = p * DRAWS as f64;
            let sd = (DRAWS as f64 * p * (1.0 - p)).sqrt();
            assert!(p > 0.0 || c == 0, "token {i} has probability 0 and was drawn {c} times ({settings:?})");
            assert!(
                (c as f64 - expected).abs() <= 5.0 * sd + 1.0,
                "token {i}: drawn {c} times, expected {expected:.1} ± {sd:.1} ({settings:?})"
            );
        }
    }

    #[test]
    fn draws_follow_the_distribution_the_settings_define() {
        let mut rng = Rng::new(7);
        // A peaked row (few likely tokens) and a flat one (a nucleus past the first slices).
        let peaked: Vec<f32> = (0..1000).map(|_| (rng.normal() * 3.0) as f32).collect();
        let flat: Vec<f32> = (0..3000).map(|_| (rng.normal() * 0.3) as f32).collect();
        let with = |top_k, top_p| Sampling { temperature: 0.7, top_k, top_p, seed: 11 };
        for logits in [&peaked, &flat] {
            matches_reference(logits, with(None, None));
            matches_reference(logits, with(Some(50), None));
            matches_reference(logits, with(None, Some(0.9)));
            matches_reference(logits, with(Some(300), Some(0.5)));
            matches_reference(logits, with(Some(5000), None));
        }
    }

    #[test]
    fn ties_are_ranked_lower_id_first_and_masked_tokens_never_drawn() {
        // Ten equal logits: p = 0.35 needs four tenths, and takes the four lowest ids.
        let equal = [1.0f32; 10];
        let settings = Sampling { temperature: 1.0, top_k: None, top_p: Some(0.35), seed: 5 };
        matches_reference(&equal, settings);
        let mut s = Sampler::new(settings);
        let mut seen = [false; 10];
        (0..400).for_each(|_| seen[s.pick(&equal) as usize] = true);
        assert_eq!(seen, [true, true, true, true, false, false, false, false, false, false]);
        // -inf (a masked token) weighs nothing, with or without the ranking.
        let masked = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.5];
        for top_k in [None, Some(3)] {
            let mut s = Sampler::new(Sampling { temperature: 1.0, top_k, top_p: None, seed: 2 });
            assert!((0..200).all(|_| matches!(s.pick(&masked), 1 | 3)));
        }
    }

    /// `pick_ranked` on the k likeliest (ranked as `Tensor::topk` ranks them) draws what `pick`
    /// draws from the whole row, draw for draw, from the same seed: with and without top-p, on
    /// peaked and flat rows, with ties, and with masked tokens inside the k.
    #[test]
    fn picking_from_the_ranked_top_k_replays_picking_from_the_row() {
        let mut rng = Rng::new(9);
        let peaked: Vec<f32> = (0..5000).map(|_| (rng.normal() * 3.0) as f32).collect();
        let flat: Vec<f32> = (0..5000).map(|_| (rng.normal() * 0.2) as f32).collect();
        let ties: Vec<f32> = (0..5000).map(|_| (rng.normal() * 2.0).round() as f32).collect();
        let mut masked = vec![f32::NEG_INFINITY; 5000];
        masked[17] = 1.0;
        masked[4000] = 0.5;
        for row in [&peaked, &flat, &ties, &masked] {
            let mut order: Vec<u32> = (0..row.len() as u32).collect();
            order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
            for (k, top_p) in [(1, None), (40, None), (40, Some(0.5)), (300, Some(0.95)), (4999, None)] {
                let settings = Sampling { temperature: 0.8, top_k: Some(k), top_p, seed: 21 };
                let ids = &order[..k];
                let values: Vec<f32> = ids.iter().map(|&i| row[i as usize]).collect();
                let (mut whole, mut ranked) = (Sampler::new(settings), Sampler::new(settings));
                for draw in 0..300 {
                    assert_eq!(whole.pick(row), ranked.pick_ranked(&values, ids), "draw {draw} of {settings:?}");
                }
            }
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(Sampling { temperature: -1.0, ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_k: Some(0), ..Sampling::greedy() }.validate().is_err());
        assert!(Sampling { top_p: Some(1.5), ..Sampling::greedy() }.validate().is_err());
    }
}
