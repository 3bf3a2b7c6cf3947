//! Llama 3-style RoPE scaling (`rope_type: llama3`) as GGUF holds it: not as metadata but as the
//! tensor `rope_freqs.weight`, one divisor per rotated frequency, which llama.cpp's converter
//! computes (`LlamaModel.generate_extra_tensors`) and llama.cpp's RoPE divides each frequency by.
//! The reader recovers a `llama3` schedule that gives the same divisors.

use std::f64::consts::PI;

/// A `llama3` schedule: (`factor`, `low_freq_factor`, `high_freq_factor`,
/// `original_max_position_embeddings`).
pub type Llama3 = (f64, f64, f64, f64);

/// The wavelength of each of the `dim / 2` frequencies of base `theta`, as the converter computes
/// them.
fn wavelengths(theta: f64, dim: usize) -> Vec<f64> {
    (0..dim / 2).map(|i| 2.0 * PI * theta.powf((2 * i) as f64 / dim as f64)).collect()
}

/// The converter's divisors for the schedule: 1 for wavelengths under
/// `original / high_freq_factor`, `factor` above `original / low_freq_factor`, blended between.
pub fn factors(theta: f64, dim: usize, (factor, low, high, original): Llama3) -> Vec<f32> {
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    wavelengths(theta, dim)
        .into_iter()
        .map(|w| {
            if w < high_wavelen {
                1.0
            } else if w > low_wavelen {
                factor as f32
            } else {
                let smooth = (original / w - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

/// A `llama3` schedule whose [`factors`] are `divisors` (within f32 rounding), or None when they
/// are not of that shape. Scaling `original`, `low` and `high` together gives the same divisors,
/// so `low_freq_factor` is taken as 1 (and `high_freq_factor` as 4 where one blended frequency
/// leaves it open); `None` also for all divisors 1 (no scaling).
pub fn fit(theta: f64, dim: usize, divisors: &[f32]) -> Option<Llama3> {
    let wl = wavelengths(theta, dim);
    if divisors.len() != wl.len() || divisors.iter().any(|d| !d.is_finite() || *d < 1.0 - 1e-6) {
        return None;
    }
    let factor = divisors.iter().copied().fold(1.0f32, f32::max) as f64;
    if factor <= 1.0 + 1e-6 {
        return None;
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
    // s = (original / w - low) / (high - low), from each blended divisor d: 1/d = (1 - s)/F + s.
    let ramp: Vec<(f64, f64)> = wl
        .iter()
        .zip(divisors)
        .filter(|(_, d)| !close(**d as f64, 1.0) && !close(**d as f64, factor))
        .map(|(w, d)| (1.0 / w, (1.0 / *d as f64 - 1.0 / factor) / (1.0 - 1.0 / factor)))
        .collect();
    let low = 1.0;
    let (high, original) = match ramp.as_slice() {
        [] => {
            // The last unscaled and first fully scaled wavelengths bound the (empty) blend.
            let last_one = wl.iter().zip(divisors).rfind(|(_, d)| close(**d as f64, 1.0)).map(|(w, _)| *w);
            let first_full = wl.iter().zip(divisors).find(|(_, d)| close(**d as f64, factor)).map(|(w, _)| *w)?;
            let original = match last_one {
                Some(a) => (a + first_full) / 2.0,
                None => first_full * 0.5,
            };
            let high = last_one.map_or(2.0, |a| (1.0 + original / a) / 2.0);
            (high, original)
        }
        [(x, s)] => {
            let high = 4.0;
            (high, (low + s * (high - low)) / x)
        }
        [(x0, s0), .., (x1, s1)] => {
            // s = a x + b with a = original / (high - low), b = -low / (high - low).
            let a = (s1 - s0) / (x1 - x0);
            let b = s0 - a * x0;
            if b >= 0.0 || a <= 0.0 {
                return None;
            }
            (low - low / b, -a / b)
        }
    };
    let schedule = (factor, low, high, original);
    let again = factors(theta, dim, schedule);
    again.iter().zip(divisors).all(|(a, d)| close(*a as f64, *d as f64)).then_some(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_give_back_a_schedule_with_the_same_divisors() {
        for (theta, dim, schedule) in [
            (500_000.0, 128, (8.0, 1.0, 4.0, 8192.0)),
            (500_000.0, 16, (8.0, 1.0, 4.0, 64.0)),
            (10_000.0, 64, (32.0, 1.0, 4.0, 8192.0)),
            (10_000.0, 64, (2.0, 2.0, 2.0, 256.0)),
        ] {
            let divisors = factors(theta, dim, schedule);
            let fitted = fit(theta, dim, &divisors).expect("a llama3 schedule");
            let again = factors(theta, dim, fitted);
            assert!(again.iter().zip(&divisors).all(|(a, d)| (a - d).abs() <= 1e-5 * d), "{schedule:?} -> {fitted:?}");
        }
        assert_eq!(fit(10_000.0, 8, &[1.0; 4]), None);
        assert_eq!(fit(10_000.0, 8, &[1.0, 3.0, 2.0, 1.0]), None);
    }
}
