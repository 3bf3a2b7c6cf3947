//! Batches for pre-training: a token stream cut into a training part and a held-out validation
//! part; training batches are windows at random offsets, validation batches are fixed windows so
//! every evaluation sees the same text.

use tensor::{Device, Rng, Tensor};

use crate::{Error, Result};

/// A token stream split into training and validation tokens.
#[derive(Clone, Debug)]
pub struct TokenData {
    pub train: Vec<u32>,
    pub validation: Vec<u32>,
}

impl TokenData {
    /// Holds out the last `validation_fraction` of `tokens` (the end of the text, so no window
    /// of it was seen in training).
    pub fn split(tokens: Vec<u32>, validation_fraction: f64) -> Result<TokenData> {
        if !(0.0..1.0).contains(&validation_fraction) {
            return Err(Error::input(format!("the validation fraction must be in [0, 1), got {validation_fraction}")));
        }
        let mut train = tokens;
        let held = (train.len() as f64 * validation_fraction).round() as usize;
        let validation = train.split_off(train.len() - held);
        Ok(TokenData { train, validation })
    }

    /// `batch` windows of `seq_len + 1` tokens at random offsets of the training part: ids
    /// [batch, seq_len + 1] on `device` (inputs are the first `seq_len`, targets the last).
    pub fn random_batch(&self, rng: &mut Rng, batch: usize, seq_len: usize, device: &Device) -> Result<Tensor> {
        let window = seq_len + 1;
        if self.train.len() < window || batch == 0 {
            return Err(Error::input(format!(
                "a batch of {batch} windows of {window} tokens needs more than the {} training tokens",
                self.train.len()
            )));
        }
        let mut ids = Vec::with_capacity(batch * window);
        for _ in 0..batch {
            let start = rng.below((self.train.len() - window + 1) as u64) as usize;
            ids.extend_from_slice(&self.train[start..start + window]);
        }
        Ok(Tensor::from_vec(ids, [batch, window], device)?)
    }

    /// Up to `max_batches` batches of consecutive, non-overlapping windows of the validation part.
    pub fn validation_batches(
        &self,
        batch: usize,
        seq_len: usize,
        max_batches: usize,
        device: &Device,
    ) -> Result<Vec<Tensor>> {
        let window = seq_len + 1;
        let windows: Vec<&[u32]> = self.validation.chunks_exact(window).take(batch * max_batches).collect();
        windows
            .chunks(batch)
            .map(|group| {
                let ids: Vec<u32> = group.iter().flat_map(|w| w.iter().copied()).collect();
                Ok(Tensor::from_vec(ids, [group.len(), window], device)?)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_batches() {
        let data = TokenData::split((0..1000).collect(), 0.1).unwrap();
        assert_eq!(data.train.len(), 900);
        assert_eq!(data.validation[0], 900);
        let cpu = Device::cpu();
        let b = data.random_batch(&mut Rng::new(1), 4, 16, &cpu).unwrap();
        assert_eq!(b.dims(), &[4, 17]);
        let ids = b.to_vec::<u32>().unwrap();
        for w in ids.chunks(17) {
            // Windows are consecutive tokens of the training part.
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1) && w[16] < 900);
        }
        let v = data.validation_batches(2, 9, 10, &cpu).unwrap();
        assert_eq!(v.len(), 5); // 100 tokens make 10 windows of 10, in batches of 2.
        assert_eq!(v[0].to_vec::<u32>().unwrap()[..3], [900, 901, 902]);
        assert!(data.random_batch(&mut Rng::new(1), 4, 900, &cpu).is_err());
        assert!(TokenData::split(vec![1, 2], 1.5).is_err());
    }
}
