//! # Tensors at work
//!
//! Run it: `cargo run --release --example tensors`
//!
//! A tour of the tensor crate in the order you meet its ideas: a tensor is a *layout* (shape,
//! strides, offset) over shared *storage*; views change the layout only; ops broadcast like
//! NumPy; and everything runs on a `Device` (the CPU here; the GPU crate provides another).

use tensor::{DType, Device, Rng, Tensor};

fn main() -> tensor::Result<()> {
    let cpu = Device::cpu();

    // 1. A tensor from data: 2 rows of 3.
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu)?;
    println!("a = {a}");
    println!("a's layout: {:?}", a.layout());

    // 2. Views: the transpose swaps strides; no element moves.
    let at = a.t()?;
    println!("\na^T = {at}");
    println!("a^T's layout: {:?} (same storage: {})", at.layout(), at.shares_buffer_with(&a));
    let row = a.narrow(0, 1, 1)?;
    println!("row 1 of a, a view at offset {}: {row}", row.layout().offset());

    // 3. Broadcasting: a [2, 3] plus a bias [3] adds the bias to every row.
    let bias = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3], &cpu)?;
    println!("\na + bias = {}", a.add(&bias)?);

    // 4. Matmul: [2, 3] @ [3, 2] -> [2, 2]; the transposed view is multiplied without a copy.
    println!("\na @ a^T = {}", a.matmul(&at)?);

    // 5. Softmax turns each row into probabilities that sum to 1.
    let p = a.softmax(-1)?;
    println!("\nsoftmax(a) = {p}");
    println!("row sums = {}", p.sum(-1, false)?);

    // 6. Reductions and arg-reductions over any axis.
    println!("\nmax over rows = {}, argmax = {}", a.max(0usize, false)?, a.argmax(-1, false)?);

    // 7. Seeded random tensors and dtypes: bf16 halves memory, arithmetic runs in f32.
    let mut rng = Rng::new(42);
    let w = Tensor::randn(0.0, 1.0, [4, 4], DType::F32, &mut rng, &cpu)?;
    let w16 = w.to_dtype(DType::BF16)?;
    let back = w16.to_dtype(DType::F32)?;
    let err = w.sub(&back)?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!(
        "\nbf16 round trip of a random 4x4: largest error {err:.2e} (bf16 stores 7 mantissa bits, 8 with the implicit leading 1)"
    );

    // 8. Errors name the op and the shapes instead of panicking.
    match a.matmul(&a) {
        Ok(_) => println!("unexpected"),
        Err(e) => println!("\na @ a fails as it should: {e}"),
    }
    Ok(())
}

#[test]
fn runs() -> tensor::Result<()> {
    main()
}
