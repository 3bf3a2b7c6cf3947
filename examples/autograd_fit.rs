//! # Fitting a curve with reverse-mode differentiation
//!
//! Run it: `cargo run --release --example autograd_fit`
//!
//! We fit a tiny two-layer network `y = W2 tanh(W1 x + b1) + b2` to samples of `sin(x)` by
//! gradient descent, and watch the loss fall. Every number printed comes from the library's own
//! tensors and autograd; nothing here is hidden.
//!
//! How reverse-mode differentiation works, in four steps you can see below:
//! 1. **Leaves.** The weights are `Var::parameter`s: values we want gradients for.
//! 2. **Recording.** Each op on a `Var` computes its value *and* records a node: its inputs and
//!    its backward rule (e.g. for `tanh`, `dx = g * (1 - y^2)`).
//! 3. **Backward.** `loss.backward()` walks the recorded nodes from the loss back to the leaves
//!    in reverse topological order, turning each node's output gradient into its inputs'
//!    gradients (the chain rule), adding them up where a value was used twice.
//! 4. **Update.** Each weight moves a little against its gradient: `w <- w - lr * dL/dw`.
//!    The graph was freed by `backward`; the next step records a fresh one.

use autograd::Var;
use tensor::{DType, Device, Result, Rng, Tensor};

/// Trains for `steps` steps and returns the loss at the first and last step.
pub fn fit(steps: usize, log_every: usize) -> Result<(f32, f32)> {
    let cpu = Device::cpu();
    let mut rng = Rng::new(0);

    // Training data: 64 points of sin(x) on [-3, 3], as a column [64, 1].
    let x = Tensor::arange_step(-3.0, 3.0, 6.0 / 64.0, DType::F32, &cpu)?.reshape([64, 1])?;
    let y = x.sin()?;
    println!("data: x {:?} -> y = sin(x) {:?}", x.dims(), y.dims());

    // 1. Leaves: a hidden layer of 16 tanh units.
    let hidden = 16;
    let w1 = Var::parameter(Tensor::randn(0.0, 1.0, [hidden, 1], DType::F32, &mut rng, &cpu)?);
    let b1 = Var::parameter(Tensor::zeros([hidden], DType::F32, &cpu)?);
    let w2 = Var::parameter(Tensor::randn(0.0, 0.25, [1, hidden], DType::F32, &mut rng, &cpu)?);
    let b2 = Var::parameter(Tensor::zeros([1], DType::F32, &cpu)?);
    let params = [&w1, &b1, &w2, &b2];

    let lr = 0.1;
    let (mut first, mut last) = (f32::NAN, f32::NAN);
    for step in 0..steps {
        // 2. Recording: the forward pass builds the graph as it computes.
        let input = Var::constant(x.clone());
        let h = input.linear(&w1)?.add(&b1)?.tanh()?; // [64, 16]
        let prediction = h.linear(&w2)?.add(&b2)?; // [64, 1]
        let loss = prediction.sub(&Var::constant(y.clone()))?.sqr()?.mean_all()?; // mean squared error

        // 3. Backward: one call gives every parameter its gradient.
        let grads = loss.backward()?;

        // 4. Update: plain gradient descent.
        for p in params {
            if let Some(g) = grads.get(p) {
                p.set_value(p.value().sub(&g.mul_scalar(lr)?)?)?;
            }
        }

        let value = loss.value().to_scalar::<f32>()?;
        if step == 0 {
            first = value;
        }
        last = value;
        if log_every > 0 && (step % log_every == 0 || step + 1 == steps) {
            println!("step {step:4}  loss {value:.5}");
        }
    }
    println!("loss fell from {first:.4} to {last:.4}");
    Ok((first, last))
}

fn main() -> Result<()> {
    fit(2000, 200)?;
    Ok(())
}

#[test]
fn loss_falls() -> Result<()> {
    let (first, last) = fit(300, 0)?;
    assert!(last < first * 0.5, "loss went from {first} to {last}");
    Ok(())
}
