//! Indexing ops by hand (with repeated ids and the adjoint pairs), out-of-range ids as errors,
//! and cat/stack on every axis.

use tensor::{Device, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

fn table() -> Tensor {
    Tensor::from_vec((0..12).map(|i| i as f32).collect::<Vec<_>>(), [4, 3], &cpu()).expect("table")
}

#[test]
fn index_select_and_embedding() -> Result<()> {
    let ids = Tensor::from_vec(vec![2u32, 0, 2], [3], &cpu())?;
    assert_eq!(table().index_select(&ids, 0usize)?.to_vec::<f32>()?, [6., 7., 8., 0., 1., 2., 6., 7., 8.]);
    let cols = Tensor::from_vec(vec![1i64], [1], &cpu())?;
    assert_eq!(table().index_select(&cols, 1usize)?.to_vec::<f32>()?, [1., 4., 7., 10.]);
    let tokens = Tensor::from_vec(vec![3u32, 1, 0, 0], [2, 2], &cpu())?;
    let e = table().embedding(&tokens)?;
    assert_eq!(e.dims(), &[2, 2, 3]);
    assert_eq!(e.to_vec::<f32>()?[..6], [9., 10., 11., 3., 4., 5.]);
    let bad = Tensor::from_vec(vec![4u32], [1], &cpu())?;
    let err = table().index_select(&bad, 0usize).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("index_select") && err.contains('4'), "{err}");
    let negative = Tensor::from_vec(vec![-1i64], [1], &cpu())?;
    assert!(table().index_select(&negative, 0usize).is_err());
    Ok(())
}

#[test]
fn index_add_accumulates_repeated_ids() -> Result<()> {
    let zeros = Tensor::zeros([3, 2], tensor::DType::F32, &cpu())?;
    let ids = Tensor::from_vec(vec![1u32, 1, 2], [3], &cpu())?;
    let src = Tensor::from_vec(vec![1.0f32, 2.0, 10.0, 20.0, 5.0, 5.0], [3, 2], &cpu())?;
    assert_eq!(zeros.index_add(&ids, &src, 0usize)?.to_vec::<f32>()?, [0., 0., 11., 22., 5., 5.]);
    Ok(())
}

#[test]
fn gather_and_scatter_add_are_adjoint() -> Result<()> {
    let index = Tensor::from_vec(vec![2u32, 0, 1, 1], [2, 2], &cpu())?;
    let t = table().narrow(0, 0, 2)?; // [[0,1,2],[3,4,5]]
    assert_eq!(t.gather(&index, 1usize)?.to_vec::<f32>()?, [2., 0., 4., 4.]);
    let src = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &cpu())?;
    let out = t.zeros_like()?.scatter_add(&index, &src, 1usize)?;
    assert_eq!(out.to_vec::<f32>()?, [2., 0., 1., 0., 7., 0.]);
    // <gather(t), s> == <t, scatter_add(0, s)>: the adjoint identity.
    let lhs = t.gather(&index, 1usize)?.mul(&src)?.sum_all()?.to_scalar::<f32>()?;
    let rhs = t.mul(&out)?.sum_all()?.to_scalar::<f32>()?;
    assert_eq!(lhs, rhs);
    Ok(())
}

#[test]
fn cat_and_stack_on_every_axis() -> Result<()> {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &cpu())?;
    let b = Tensor::from_vec(vec![5.0f32, 6.0], [1, 2], &cpu())?;
    assert_eq!(Tensor::cat(&[&a, &b], 0usize)?.to_vec::<f32>()?, [1., 2., 3., 4., 5., 6.]);
    assert_eq!(
        Tensor::cat(&[&a, &b.t()?.broadcast_to([2, 2])?], 1usize)?.to_vec::<f32>()?,
        [1., 2., 5., 5., 3., 4., 6., 6.]
    );
    let s = Tensor::stack(&[&a, &a.t()?], 0usize)?;
    assert_eq!((s.dims(), s.to_vec::<f32>()?), (&[2usize, 2, 2][..], vec![1., 2., 3., 4., 1., 3., 2., 4.]));
    assert_eq!(Tensor::stack(&[&a, &a], -1)?.dims(), &[2, 2, 2]);
    let err = Tensor::cat(&[&a, &b], 1usize).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("cat"), "{err}");
    Ok(())
}
