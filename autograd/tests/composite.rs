//! Whole small models checked end to end against finite differences: a two-layer MLP with a
//! softmax cross-entropy head, and a causal self-attention block with its projections.

use autograd::Var;
use autograd::gradcheck::{GradCheck, check};
use tensor::testing::randn;
use tensor::{AttentionMask, AttentionSpec, Device, Result, Tensor};

/// Mean cross-entropy of logits [N, C] against integer labels [N], from log-softmax and gather.
fn cross_entropy(logits: &Var, labels: &Tensor) -> Result<Var> {
    let n = labels.dims()[0];
    let picked = logits.log_softmax(-1)?.gather(&labels.reshape([n, 1])?, 1)?;
    picked.mean_all()?.neg()
}

#[test]
fn two_layer_mlp_with_cross_entropy() -> Result<()> {
    let cpu = Device::cpu();
    let x = randn([6, 4], 1, &cpu)?.to_dtype(tensor::DType::F64)?;
    let labels = Tensor::from_vec(vec![0u32, 2, 1, 2, 0, 1], [6], &cpu)?;
    let params = [randn([5, 4], 2, &cpu)?, randn([5], 3, &cpu)?, randn([3, 5], 4, &cpu)?, randn([3], 5, &cpu)?];
    let model = |p: &[Var]| -> Result<Var> {
        let x = Var::constant(x.clone());
        let h = x.linear(&p[0])?.add(&p[1])?.gelu()?;
        let logits = h.linear(&p[2])?.add(&p[3])?;
        cross_entropy(&logits, &labels)
    };
    check(model, &params, GradCheck::default())?;
    Ok(())
}

#[test]
fn causal_self_attention_block() -> Result<()> {
    let cpu = Device::cpu();
    let (b, t, d, heads) = (2, 5, 8, 2);
    let hd = d / heads;
    let x = randn([b, t, d], 10, &cpu)?.to_dtype(tensor::DType::F64)?;
    let weights =
        [randn([d, d], 11, &cpu)?, randn([d, d], 12, &cpu)?, randn([d, d], 13, &cpu)?, randn([d, d], 14, &cpu)?];
    let spec = AttentionSpec { scale: 1.0 / (hd as f64).sqrt(), mask: AttentionMask::causal(0), softcap: None };
    let block = |p: &[Var]| -> Result<Var> {
        let x = Var::constant(x.clone());
        // (B, T, D) -> (B, H, T, hd)
        let heads_of = |y: Var| y.reshape([b, t, heads, hd])?.transpose(1, 2);
        let q = heads_of(x.linear(&p[0])?)?;
        let k = heads_of(x.linear(&p[1])?)?;
        let v = heads_of(x.linear(&p[2])?)?;
        let o = Var::attention(&q, &k, &v, &spec)?.transpose(1, 2)?.reshape([b, t, d])?;
        o.linear(&p[3])?.add(&x)?.sqr()?.mean_all()
    };
    check(block, &weights, GradCheck::default())?;
    Ok(())
}

#[test]
fn tied_weight_used_as_embedding_and_head() -> Result<()> {
    // One parameter read twice (embedding lookup and output projection): the two gradients add.
    let cpu = Device::cpu();
    let ids = Tensor::from_vec(vec![3u32, 1, 4, 1], [4], &cpu)?;
    let labels = Tensor::from_vec(vec![1u32, 4, 1, 0], [4], &cpu)?;
    let tied = |p: &[Var]| -> Result<Var> {
        let h = p[0].embedding(&ids)?.tanh()?;
        cross_entropy(&h.linear(&p[0])?, &labels)
    };
    check(tied, &[randn([5, 3], 20, &cpu)?], GradCheck::default())?;
    Ok(())
}

#[test]
fn padding_row_of_an_embedding_gets_no_gradient() -> Result<()> {
    // PyTorch's `nn.Embedding(padding_idx=p)`: the lookup is unchanged, the gradient of row p
    // is zero, every other row's is the plain lookup's.
    let cpu = Device::cpu();
    let ids = Tensor::from_vec(vec![2u32, 0, 2, 4, 0, 1], [2, 3], &cpu)?;
    let table = Var::parameter(randn([5, 3], 30, &cpu)?);
    let weights = Var::constant(randn([2, 3, 3], 31, &cpu)?);
    let loss = |rows: Var| -> Result<Var> { rows.mul(&weights)?.sum_all() };
    let plain_rows = table.embedding(&ids)?;
    let padded_rows = table.embedding_with_padding(&ids, 2)?;
    assert_eq!(plain_rows.value().to_vec::<f32>()?, padded_rows.value().to_vec::<f32>()?);
    let plain = loss(plain_rows)?.backward()?.get(&table).unwrap().to_vec::<f32>()?;
    let padded = loss(padded_rows)?.backward()?.get(&table).unwrap().to_vec::<f32>()?;
    for row in 0..5 {
        let (p, q) = (&plain[row * 3..row * 3 + 3], &padded[row * 3..row * 3 + 3]);
        if row == 2 {
            assert!(p.iter().any(|&v| v != 0.0));
            assert_eq!(q, [0.0; 3], "the padding row");
        } else {
            assert_eq!(p, q, "row {row}");
        }
    }
    Ok(())
}
