//! The graph itself: recording only when needed, no-grad mode, freeing after backward, steady
//! memory over many steps, and errors for misuse.

use autograd::{NoGradGuard, Var, live_nodes, no_grad};
use tensor::testing::randn;
use tensor::{Device, Result, Tensor};

#[test]
fn constants_record_nothing() -> Result<()> {
    let c = Var::constant(randn([3], 1, &Device::cpu())?);
    let y = c.exp()?.sum_all()?;
    assert!(!y.requires_grad() && y.is_leaf());
    assert!(y.backward()?.is_empty());
    Ok(())
}

#[test]
fn no_grad_mode_records_nothing_and_restores() -> Result<()> {
    let p = Var::parameter(randn([3], 2, &Device::cpu())?);
    let y = no_grad(|| p.exp()?.sum_all())?;
    assert!(!y.requires_grad() && y.is_leaf());
    {
        let _guard = NoGradGuard::new();
        assert!(!autograd::is_grad_enabled());
    }
    assert!(autograd::is_grad_enabled());
    assert!(p.exp()?.requires_grad());
    Ok(())
}

#[test]
fn backward_frees_the_graph() -> Result<()> {
    let p = Var::parameter(randn([4, 4], 3, &Device::cpu())?);
    let loss = p.matmul(&p)?.tanh()?.mean_all()?;
    assert!(!loss.is_leaf());
    loss.backward()?;
    assert!(loss.is_leaf(), "the output's node (and the tensors its rule saved) is dropped");
    Ok(())
}

#[test]
fn thousands_of_steps_hold_steady_graph_memory() -> Result<()> {
    // Other tests run in parallel threads and record nodes too, so measure only a bound: a leak
    // of one node per step would add 2000 here.
    let cpu = Device::cpu();
    let w = Var::parameter(randn([8, 8], 4, &cpu)?);
    let x = Tensor::ones([2, 8], tensor::DType::F32, &cpu)?;
    let before = live_nodes();
    for _ in 0..2000 {
        let loss = Var::constant(x.clone()).linear(&w)?.tanh()?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        let g = grads.get(&w).expect("w has a gradient");
        w.set_value(w.value().sub(&g.mul_scalar(0.01)?)?)?;
    }
    assert!(live_nodes() < before + 100, "nodes alive went from {before} to {}", live_nodes());
    Ok(())
}

#[test]
fn gradient_of_non_scalar_needs_a_seed() -> Result<()> {
    let p = Var::parameter(randn([3], 5, &Device::cpu())?);
    let y = p.exp()?;
    let err = y.backward().unwrap_err();
    assert!(err.to_string().contains("backward"), "{err}");
    let grads = y.backward_with(Tensor::ones([3], tensor::DType::F32, &Device::cpu())?)?;
    assert_eq!(grads.get(&p).map(|g| g.dims().to_vec()), Some(vec![3]));
    Ok(())
}

#[test]
fn set_value_checks_shape_and_only_applies_to_leaves() -> Result<()> {
    let cpu = Device::cpu();
    let p = Var::parameter(randn([3], 6, &cpu)?);
    assert!(p.set_value(randn([4], 7, &cpu)?).is_err());
    let y = p.exp()?;
    assert!(y.set_value(randn([3], 8, &cpu)?).is_err());
    Ok(())
}

#[test]
fn unrecorded_results_are_values_of_their_own() -> Result<()> {
    // An op that records nothing (here under no_grad) returns an untracked Var: no shared
    // cell (no allocation per op in inference), a distinct id, no gradient, and a value that
    // cannot be replaced in place, which would have changed what its clones see.
    let cpu = Device::cpu();
    let p = Var::parameter(randn([3], 9, &cpu)?);
    let y = no_grad(|| p.exp())?;
    let z = Var::untracked(randn([3], 10, &cpu)?);
    assert!(!y.requires_grad() && y.is_leaf() && !z.requires_grad());
    assert!(y.id() != z.id() && y.id() != p.id());
    assert_eq!(y.value().to_vec::<f32>()?, p.value().exp()?.to_vec::<f32>()?);
    let err = y.set_value(randn([3], 11, &cpu)?).expect_err("an untracked value is not replaceable");
    assert!(err.to_string().contains("make a new Var"), "{err}");
    assert!(z.replace_value(randn([2], 12, &cpu)?).is_err());
    // It still enters recorded ops as an input that needs no gradient.
    let w = p.mul(&z)?.sum_all()?;
    assert!(w.requires_grad() && w.backward()?.get(&p).is_some());
    Ok(())
}
