//! Creating tensors (arange, full, seeded random), converting between every pair of dtypes,
//! raw bytes in and out, and printing.

use tensor::{DType, Device, HostData, Result, Rng, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

#[test]
fn arange_full_and_seeded_random() -> Result<()> {
    assert_eq!(Tensor::arange(4, DType::F32, &cpu())?.to_vec::<f32>()?, [0., 1., 2., 3.]);
    assert_eq!(Tensor::arange_step(1.0, 2.0, 0.25, DType::F64, &cpu())?.to_vec::<f64>()?, [1.0, 1.25, 1.5, 1.75]);
    assert!(Tensor::arange_step(0.0, 1.0, 0.0, DType::F32, &cpu()).is_err());
    assert_eq!(Tensor::full(7.0, [2, 2], DType::U32, &cpu())?.to_vec::<u32>()?, [7; 4]);
    let draw =
        |seed| Tensor::randn(0.0, 1.0, [1000], DType::F32, &mut Rng::new(seed), &cpu()).and_then(|t| t.to_vec::<f32>());
    assert_eq!(draw(3)?, draw(3)?, "a seed replays");
    assert_ne!(draw(3)?, draw(4)?);
    let x = Tensor::randn(2.0, 3.0, [20_000], DType::F64, &mut Rng::new(1), &cpu())?.to_vec::<f64>()?;
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    assert!((mean - 2.0).abs() < 0.1 && (std - 3.0).abs() < 0.1, "mean {mean} std {std}");
    let u = Tensor::rand(-1.0, 1.0, [5000], DType::F32, &mut Rng::new(2), &cpu())?.to_vec::<f32>()?;
    assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
    Ok(())
}

#[test]
fn every_dtype_pair_converts() -> Result<()> {
    let x = Tensor::from_vec(vec![0.0f32, 1.5, 2.0, 255.0], [4], &cpu())?;
    for from in DType::ALL {
        for to in DType::ALL {
            let y = x.to_dtype(from)?.to_dtype(to)?;
            assert_eq!(y.dtype(), to);
            let want: Vec<f64> =
                if from.is_int() || to.is_int() { vec![0.0, 1.0, 2.0, 255.0] } else { vec![0.0, 1.5, 2.0, 255.0] };
            assert_eq!(y.to_vec::<f64>()?, want, "{from} -> {to}");
        }
    }
    Ok(())
}

#[test]
fn bytes_round_trip_and_bad_lengths_are_errors() -> Result<()> {
    for dtype in DType::ALL {
        let data = HostData::filled(dtype, 3, 5.0);
        assert_eq!(HostData::from_bytes(dtype, data.as_bytes())?, data);
    }
    assert!(HostData::from_bytes(DType::F32, &[0u8; 7]).is_err());
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 3], &cpu()).is_err());
    Ok(())
}

#[test]
fn printing_elides_long_dims() -> Result<()> {
    let t = Tensor::arange(100, DType::F32, &cpu())?;
    let text = t.to_string();
    assert!(text.contains("...") && text.contains("shape=[100]") && text.contains("99.0000"), "{text}");
    Ok(())
}
