//! The gradient checker: analytic gradients from `backward` against central finite differences
//! in f64 on the CPU. Every crate's tests use it to prove their backward rules.
//!
//! A non-scalar output `y` is reduced to `L = sum(y * w)` with fixed random weights `w`, so every
//! output element contributes to the check with a distinct weight.

use tensor::{DType, Device, Error, Result, Rng, Shape, Tensor};

use crate::{Var, no_grad};

/// Tolerances of a check. Central differences have truncation error O(eps^2) and rounding error
/// O(1e-16 / eps); eps = 1e-6 balances them near 1e-10 relative in f64, so the defaults leave
/// a wide margin while still catching any wrong rule (those are off by O(1)).
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { eps: 1e-6, atol: 1e-6, rtol: 1e-5 }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug, Default)]
pub struct GradReport {
    /// Largest |analytic - numeric| over every checked element.
    pub max_abs_error: f64,
    /// Number of input elements checked.
    pub elements: usize,
}

impl GradReport {
    /// Checks every element of one tensor (`what`: its kind, index and value): the gradient
    /// backward gave it (`None`: the output does not depend on it, so zeros) against the central
    /// difference of `loss_at`, the loss with the tensor's elements replaced by the values given.
    fn check_elements(
        &mut self,
        opts: &GradCheck,
        (kind, i, tensor): (&str, usize, &Tensor),
        grad: Option<&Tensor>,
        mut loss_at: impl FnMut(Vec<f64>) -> Result<f64>,
    ) -> Result<()> {
        let analytic = match grad {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; tensor.elem_count()],
        };
        let base = tensor.to_vec::<f64>()?;
        for j in 0..base.len() {
            let mut eval = |delta: f64| -> Result<f64> {
                let mut values = base.clone();
                values[j] += delta;
                loss_at(values)
            };
            let numeric = (eval(opts.eps)? - eval(-opts.eps)?) / (2.0 * opts.eps);
            self.compare(opts, (kind, i, tensor.shape()), j, analytic[j], numeric)?;
        }
        Ok(())
    }

    /// Counts element `j` of a checked tensor (`what`: its kind, index and shape, named in the
    /// error) and fails when its analytic and numeric gradients differ beyond the tolerances;
    /// shared by [`check`] and [`check_params`], so both judge and report alike.
    fn compare(
        &mut self,
        opts: &GradCheck,
        (kind, i, shape): (&str, usize, &Shape),
        j: usize,
        analytic: f64,
        numeric: f64,
    ) -> Result<()> {
        let err = (analytic - numeric).abs();
        self.max_abs_error = self.max_abs_error.max(err);
        self.elements += 1;
        let within = err <= opts.atol + opts.rtol * numeric.abs();
        if !within {
            return Err(Error::shape(
                "gradcheck",
                format!(
                    "{kind} {i} {shape:?}, element {j}: analytic {analytic:.10e} vs numeric {numeric:.10e} (|diff| {err:.3e})"
                ),
            ));
        }
        Ok(())
    }
}

/// Checks the gradients of `f` with respect to each of `inputs` (float tensors, converted to
/// f64 on the CPU). Fails naming the input, the element and both values.
pub fn check(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor], opts: GradCheck) -> Result<GradReport> {
    let cpu = Device::cpu();
    let inputs = inputs.iter().map(|t| t.to(&cpu)?.to_dtype(DType::F64)?.contiguous()).collect::<Result<Vec<_>>>()?;
    let vars: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let y = f(&vars)?;
    let weights = Tensor::rand(0.5, 1.5, y.shape(), DType::F64, &mut Rng::new(1234), &cpu)?;
    let loss = |y: &Var| y.value().to_dtype(DType::F64).and_then(|v| v.mul(&weights)?.sum_all()?.to_scalar::<f64>());
    let weighted = y.mul(&Var::constant(weights.clone()))?.sum_all()?;
    let grads = weighted.backward()?;

    let mut report = GradReport::default();
    for (i, input) in inputs.iter().enumerate() {
        let loss_at = |values: Vec<f64>| -> Result<f64> {
            let perturbed = Tensor::from_vec(values, input.shape(), &cpu)?;
            let args: Vec<Var> = vars
                .iter()
                .enumerate()
                .map(|(k, v)| if k == i { Var::constant(perturbed.clone()) } else { Var::constant(v.value()) })
                .collect();
            no_grad(|| loss(&f(&args)?))
        };
        report.check_elements(&opts, ("input", i, input), grads.get(&vars[i]), loss_at)?;
    }
    Ok(report)
}

/// Checks the gradients of `f` with respect to `params`, leaves that `f` reads directly (a
/// module's own parameters). Their values must be f64 on the CPU. Each element is perturbed in
/// place and restored.
pub fn check_params(params: &[Var], f: impl Fn() -> Result<Var>, opts: GradCheck) -> Result<GradReport> {
    let cpu = Device::cpu();
    for (i, p) in params.iter().enumerate() {
        if p.dtype() != DType::F64 || !p.device().is_cpu() || !p.is_leaf() {
            return Err(Error::dtype(
                "gradcheck",
                format!("parameter {i} must be an f64 CPU leaf, got {} on {}", p.dtype(), p.device()),
            ));
        }
    }
    let y = f()?;
    let weights = Tensor::rand(0.5, 1.5, y.shape(), DType::F64, &mut Rng::new(1234), &cpu)?;
    let grads = y.mul(&Var::constant(weights.clone()))?.sum_all()?.backward()?;
    let loss = || -> Result<f64> {
        no_grad(|| f()?.value().to_dtype(DType::F64)?.mul(&weights)?.sum_all()?.to_scalar::<f64>())
    };

    let mut report = GradReport::default();
    for (i, p) in params.iter().enumerate() {
        let original = p.value();
        // The loss with the parameter perturbed in place, then restored.
        let loss_at = |values: Vec<f64>| -> Result<f64> {
            p.set_value(Tensor::from_vec(values, original.shape(), &cpu)?)?;
            let loss = loss();
            p.set_value(original.clone())?;
            loss
        };
        report.check_elements(&opts, ("parameter", i, &original), grads.get(p), loss_at)?;
    }
    Ok(report)
}
