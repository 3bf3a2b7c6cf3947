//! Property tests where they pay: identities that must hold for any shapes and values.

use proptest::prelude::*;
use tensor::testing::{assert_close, randn};
use tensor::{Device, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matmul_transposes((m, k, n) in (1usize..20, 1usize..20, 1usize..20), seed in 0u64..1000) {
        // (A B)^T == B^T A^T
        let a = randn([m, k], seed, &cpu()).unwrap();
        let b = randn([k, n], seed + 1, &cpu()).unwrap();
        let lhs = a.matmul(&b).unwrap().t().unwrap().contiguous().unwrap();
        let rhs = b.t().unwrap().matmul(&a.t().unwrap()).unwrap();
        prop_assert!(assert_close(&lhs, &rhs, 1e-4, 1e-5).is_ok());
    }

    #[test]
    fn softmax_rows_sum_to_one(rows in 1usize..6, cols in 1usize..40, scale in 0.1f64..1e4, seed in 0u64..1000) {
        let x = randn([rows, cols], seed, &cpu()).unwrap().mul_scalar(scale).unwrap();
        let sums = x.softmax(-1).unwrap().sum(-1, false).unwrap();
        prop_assert!(assert_close(&sums, &sums.ones_like().unwrap(), 1e-5, 0.0).is_ok());
        prop_assert!(x.log_softmax(-1).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn broadcasting_commutes(a in 1usize..5, b in 1usize..5, c in 1usize..5, seed in 0u64..1000) {
        let x = randn([a, 1, c], seed, &cpu()).unwrap();
        let y = randn([b, 1], seed + 7, &cpu()).unwrap();
        prop_assert_eq!(x.add(&y).unwrap().to_vec::<f32>().unwrap(), y.add(&x).unwrap().to_vec::<f32>().unwrap());
        prop_assert_eq!(x.mul(&y).unwrap().to_vec::<f32>().unwrap(), y.mul(&x).unwrap().to_vec::<f32>().unwrap());
    }

    #[test]
    fn cat_then_split_is_the_identity(sizes in proptest::collection::vec(0usize..5, 1..5), axis in 0usize..2, seed in 0u64..1000) {
        let parts: Vec<Tensor> = sizes.iter().enumerate().map(|(i, &s)| {
            let shape = if axis == 0 { [s, 3] } else { [3, s] };
            randn(shape, seed + i as u64, &cpu()).unwrap()
        }).collect();
        let joined = Tensor::cat(&parts.iter().collect::<Vec<_>>(), axis).unwrap();
        let back = joined.split(&sizes, axis).unwrap();
        for (p, q) in parts.iter().zip(&back) {
            prop_assert_eq!(p.to_vec::<f32>().unwrap(), q.to_vec::<f32>().unwrap());
        }
    }

    #[test]
    fn reshape_and_permute_round_trip(d0 in 1usize..5, d1 in 1usize..5, d2 in 1usize..5, seed in 0u64..1000) {
        let x = randn([d0, d1, d2], seed, &cpu()).unwrap();
        let p = x.permute(&[2, 0, 1]).unwrap().permute(&[1, 2, 0]).unwrap();
        prop_assert_eq!(p.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        let r = x.reshape([d0 * d1 * d2]).unwrap().reshape([d0, d1, d2]).unwrap();
        prop_assert_eq!(r.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    }
}
