//! View ops change the layout and never the storage: shapes, strides and offsets by hand, and
//! the elements read through each view.

use tensor::{Device, Result, Tensor};

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape.to_vec(), &Device::cpu()).expect("tensor")
}

fn v(t: &Tensor) -> Vec<f32> {
    t.to_vec().expect("values")
}

fn arange(n: usize, shape: &[usize]) -> Tensor {
    t(&(0..n).map(|i| i as f32).collect::<Vec<_>>(), shape)
}

#[test]
fn transpose_swaps_strides_without_copying() -> Result<()> {
    let a = arange(6, &[2, 3]);
    let at = a.t()?;
    assert_eq!((at.dims(), at.layout().strides()), (&[3usize, 2][..], &[1usize, 3][..]));
    assert!(at.shares_buffer_with(&a) && !at.is_contiguous());
    assert_eq!(v(&at), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    let back = at.contiguous()?;
    assert!(back.is_contiguous() && !back.shares_buffer_with(&a));
    Ok(())
}

#[test]
fn permute_narrow_select_and_offsets() -> Result<()> {
    let a = arange(24, &[2, 3, 4]);
    let p = a.permute(&[2, 0, 1])?;
    assert_eq!(p.dims(), &[4, 2, 3]);
    assert_eq!(p.layout().strides(), &[1, 12, 4]);
    let n = a.narrow(1, 1, 2)?; // rows 1 and 2 of each batch
    assert_eq!(n.layout().offset(), 4);
    assert_eq!(v(&n), [4., 5., 6., 7., 8., 9., 10., 11., 16., 17., 18., 19., 20., 21., 22., 23.]);
    assert_eq!(v(&a.select(2, 3)?), [3., 7., 11., 15., 19., 23.]);
    assert_eq!(v(&a.select(-1, 0)?), [0., 4., 8., 12., 16., 20.]);
    // A zero-length narrow is a valid empty view.
    assert_eq!(a.narrow(0, 2, 0)?.elem_count(), 0);
    assert!(a.narrow(1, 2, 2).is_err());
    Ok(())
}

#[test]
fn broadcast_repeats_with_stride_zero() -> Result<()> {
    let row = t(&[1.0, 2.0, 3.0], &[3]);
    let b = row.broadcast_to([2, 3])?;
    assert_eq!(b.layout().strides(), &[0, 1]);
    assert_eq!(v(&b), [1., 2., 3., 1., 2., 3.]);
    let col = t(&[1.0, 2.0], &[2, 1]).broadcast_to([2, 3])?;
    assert_eq!(v(&col), [1., 1., 1., 2., 2., 2.]);
    assert!(row.broadcast_to([2, 4]).is_err());
    Ok(())
}

#[test]
fn reshape_squeeze_unsqueeze_flatten() -> Result<()> {
    let a = arange(12, &[3, 4]);
    let r = a.reshape([2, 2, 3])?;
    assert!(r.shares_buffer_with(&a), "contiguous reshape is a view");
    assert_eq!(r.layout().strides(), &[6, 3, 1]);
    // Reshaping a non-contiguous view must copy (as PyTorch's reshape does).
    let rt = a.t()?.reshape([12])?;
    assert!(!rt.shares_buffer_with(&a));
    assert_eq!(v(&rt), [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]);
    let u = a.unsqueeze(1)?;
    assert_eq!(u.dims(), &[3, 1, 4]);
    assert_eq!(a.unsqueeze(-1)?.dims(), &[3, 4, 1]);
    assert_eq!(u.squeeze(1)?.dims(), &[3, 4]);
    assert!(a.squeeze(0).is_err());
    assert_eq!(arange(24, &[2, 3, 4]).flatten(1, 2)?.dims(), &[2, 12]);
    assert!(a.reshape([5, 2]).is_err());
    Ok(())
}

#[test]
fn split_and_chunk_are_views_that_cover_the_axis() -> Result<()> {
    let a = arange(10, &[2, 5]);
    let parts = a.split(&[2, 3], 1)?;
    assert_eq!(v(&parts[0]), [0., 1., 5., 6.]);
    assert_eq!(v(&parts[1]), [2., 3., 4., 7., 8., 9.]);
    assert!(parts.iter().all(|p| p.shares_buffer_with(&a)));
    assert!(a.split(&[2, 2], 1).is_err());
    let c = arange(6, &[6]).chunk(3, 0)?;
    assert_eq!(c.iter().map(v).collect::<Vec<_>>(), [vec![0., 1.], vec![2., 3.], vec![4., 5.]]);
    assert!(arange(5, &[5]).chunk(2, 0).is_err());
    Ok(())
}

#[test]
fn zero_size_and_scalar_tensors() -> Result<()> {
    let empty = Tensor::zeros([0, 3], tensor::DType::F32, &Device::cpu())?;
    assert_eq!(empty.elem_count(), 0);
    assert_eq!(empty.t()?.dims(), &[3, 0]);
    assert_eq!(empty.exp()?.dims(), &[0, 3]);
    let s = Tensor::scalar(2.5f32, &Device::cpu())?;
    assert_eq!((s.rank(), s.to_scalar::<f32>()?), (0, 2.5));
    assert_eq!(s.unsqueeze(0)?.dims(), &[1]);
    Ok(())
}
