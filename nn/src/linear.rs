//! `Linear`: `y = x W^T + b`, with W stored [out, in] as PyTorch and Hugging Face store it.

use autograd::{Var, is_grad_enabled};
use tensor::{Result, Tensor};

use crate::packed::{no_gradient, no_gradient_device, no_gradient_panels};
use crate::{Init, Module, PackedSlot, join};

pub struct Linear {
    /// [out_features, in_features]
    pub weight: Var,
    pub bias: Option<Var>,
    /// The weight kept block-quantized (from a GGUF file), or bf16 as panels (packed at
    /// load), used by `forward` when set; `weight` is then a placeholder without data.
    pub packed: PackedSlot,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, bias: bool, init: &mut Init) -> Result<Linear> {
        Ok(Linear {
            weight: init.normal([out_features, in_features])?,
            bias: if bias { Some(init.zeros([out_features])?) } else { None },
            packed: PackedSlot::for_linear(),
        })
    }

    /// Wraps existing parameters.
    pub fn from_weights(weight: Var, bias: Option<Var>) -> Linear {
        Linear { weight, bias, packed: PackedSlot::for_linear() }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The weight where `forward` is `x W^T` and nothing else: no bias, no packed weight (whose
    /// product runs on its blocks). What a fused op may multiply by in `forward`'s place
    /// (`GatedFeedForward`, [`Linear::forward_each`]).
    pub fn plain_weight(&self) -> Option<&Var> {
        let packed = self.packed.is_set();
        (self.bias.is_none() && !packed).then_some(&self.weight)
    }

    /// The weights of `layers` where a fused op may multiply `x` by them in their `forward`s'
    /// place: each a [`Linear::plain_weight`], all of one dtype, and no gradient recorded through
    /// them or `x` (inference; the fused ops have no derivative).
    pub fn fusable_weights<'a, const N: usize>(layers: [&'a Linear; N], x: &Var) -> Option<[&'a Var; N]> {
        let mut weights = [layers.first()?.plain_weight()?; N];
        for (w, l) in weights.iter_mut().zip(layers) {
            *w = l.plain_weight()?;
        }
        let one_dtype = weights.windows(2).all(|w| w[0].dtype() == w[1].dtype());
        let learns = x.requires_grad() || weights.iter().any(|w| w.requires_grad());
        (one_dtype && !(is_grad_enabled() && learns)).then_some(weights)
    }

    /// `layers`' forwards on one `x` (1 to 3 layers of its input size: an attention's q, k and v
    /// projections). Where their weights are fusable ([`Linear::fusable_weights`]) the products
    /// run as one op, `Tensor::matmul_each`: on a GPU decoding a token, one dispatch instead of
    /// one per layer, the results views of one buffer. Else each layer's `forward`.
    pub fn forward_each<const N: usize>(layers: [&Linear; N], x: &Var) -> Result<[Var; N]> {
        if let Some(weights) = Linear::fusable_weights(layers, x) {
            let values: [Tensor; N] = weights.map(|w| w.value());
            let products = x.value().matmul_each(std::array::from_fn(|i| &values[i]))?;
            return Ok(products.map(Var::untracked));
        }
        // An array, so a decoding step allocates no list here.
        tensor::try_array(|i| layers[i].forward(x))
    }

    /// `x [.., in] -> [.., out]`. Weights may be bf16/f16 with f32 activations (widened inside
    /// the matmul), or packed blocks (multiplied on the blocks, on the CPU or on the GPU that
    /// holds them, without a gradient).
    pub fn forward(&self, x: &Var) -> Result<Var> {
        let y = match (self.packed.get(), self.packed.device()) {
            (Some(q), _) if is_grad_enabled() => return Err(no_gradient(&q, "Linear::forward")),
            (Some(q), _) => Var::untracked(q.matmul(&x.value())?),
            (None, Some(q)) if is_grad_enabled() => return Err(no_gradient_device(&q, "Linear::forward")),
            (None, Some(q)) => Var::untracked(q.matmul(&x.value())?),
            (None, None) => match self.packed.panels() {
                Some(p) if is_grad_enabled() => return Err(no_gradient_panels(&p, "Linear::forward")),
                Some(p) => Var::untracked(p.matmul(&x.value())?),
                None => x.linear(&self.weight)?,
            },
        };
        match &self.bias {
            Some(b) => y.add(&b.to_dtype(y.dtype())?),
            None => Ok(y),
        }
    }
}

impl Module for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &PackedSlot)) {
        f(&join(prefix, "weight"), &self.packed);
    }
}
