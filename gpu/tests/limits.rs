//! Tensors larger than any buffer of the adapter: a clear error naming the limits, before
//! anything is allocated. (Tensors over the storage binding limit that one buffer can hold are
//! split across bindings: `tests/split.rs`.) Skipped with a note where there is no adapter.

mod common;

use common::gpu;
use tensor::{DType, Tensor};

#[test]
fn a_tensor_over_the_buffer_limit_is_a_clear_error() -> tensor::Result<()> {
    let Some(g) = gpu() else {
        println!("note: no GPU adapter; the buffer-limit check was not exercised");
        return Ok(());
    };
    // 2^34 f32 elements = 64 GiB: above every adapter's largest buffer (lavapipe's is 2 GiB),
    // so the check must refuse it without trying to allocate.
    let n = 1usize << 34;
    let err = Tensor::zeros([n], DType::F32, &g).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("largest buffer") && err.contains(&n.to_string()), "{err}");
    assert!(err.contains("storage binding limit"), "{err}");
    // The same through an op's output: a broadcast scalar (no storage of its own) made dense.
    let scalar = Tensor::zeros((), DType::F32, &g)?;
    let big = scalar.broadcast_to([1usize << 17, 1usize << 17])?;
    let err = big.add(&big).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("largest buffer"), "{err}");
    // The device still works afterwards.
    let small = Tensor::zeros([4], DType::F32, &g)?.to(&tensor::Device::cpu())?;
    assert_eq!(small.to_vec::<f32>()?, vec![0.0; 4]);
    Ok(())
}
