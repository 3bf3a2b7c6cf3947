//! `autograd`: reverse-mode automatic differentiation over the tensor ops.
//!
//! - A [`Var`] wraps a `Tensor` and, when it came from an op on values that need gradients,
//!   records that op: its inputs and its backward rule.
//! - [`Var::backward`] walks the recorded graph from a scalar in reverse topological order,
//!   giving each leaf its gradient ([`Gradients`]), summed over every use, and frees the graph.
//! - Each op's forward and derivative sit together in `rules/<family>.rs`, named like the tensor
//!   op families. Rules are tensor ops, so they run on the device the values live on.
//! - [`no_grad`] turns recording off for inference.
//! - [`gradcheck`] compares analytic gradients with finite differences in f64.
//!
//! ```
//! use autograd::Var;
//! use tensor::{Device, Tensor};
//! let x = Var::parameter(Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], &Device::cpu())?);
//! let y = x.sqr()?.sum_all()?; // y = sum x^2
//! let grads = y.backward()?;
//! assert_eq!(grads.get(&x).unwrap().to_vec::<f32>()?, vec![2.0, 4.0, 6.0]); // dy/dx = 2x
//! # Ok::<(), tensor::Error>(())
//! ```

pub mod gradcheck;
mod graph;
mod no_grad;
pub mod rules;
mod var;

pub use graph::{Backward, Gradients, live_nodes};
pub use no_grad::{NoGradGuard, is_grad_enabled, no_grad};
pub use var::Var;
