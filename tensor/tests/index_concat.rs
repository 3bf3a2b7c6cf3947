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

/// Parts that are contiguous views at an offset into their storage (rows narrowed off a larger
/// tensor) are copied in whole runs; mixed with strided parts, on every axis of a 3-D tensor,
/// the result is the value-by-value one.
#[test]
fn cat_of_contiguous_views_at_offsets_and_strided_parts() -> Result<()> {
    let big = Tensor::from_vec((0..48).map(|i| i as f32).collect::<Vec<_>>(), [4, 3, 4], &cpu())?;
    let tail = big.narrow(0usize, 2, 2)?; // [2, 3, 4], contiguous from offset 24
    let strided = big.narrow(0usize, 0, 2)?.permute(&[0, 2, 1])?.contiguous()?.permute(&[0, 2, 1])?;
    assert!(tail.layout().is_contiguous() && tail.layout().offset() == 24);
    assert!(!strided.layout().is_contiguous());
    let value = |t: &Tensor, i: [usize; 3]| -> f32 {
        let v = t.contiguous().unwrap().to_vec::<f32>().unwrap();
        let d = t.dims();
        v[(i[0] * d[1] + i[1]) * d[2] + i[2]]
    };
    for axis in 0..3 {
        let out = Tensor::cat(&[&tail, &strided, &tail], axis)?;
        let mut want = Vec::new();
        let d = out.dims().to_vec();
        for i in 0..d[0] {
            for j in 0..d[1] {
                for k in 0..d[2] {
                    let mut at = [i, j, k];
                    let part = at[axis] / tail.dims()[axis];
                    at[axis] %= tail.dims()[axis];
                    want.push(value(if part == 1 { &strided } else { &tail }, at));
                }
            }
        }
        assert_eq!(out.to_vec::<f32>()?, want, "axis {axis}");
    }
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
