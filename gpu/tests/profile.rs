//! The per-kernel profile from timestamp queries: with it on, every dispatch is timed under its
//! kernel's name and results are unchanged; off, nothing more is recorded. In a file of its own:
//! the profile is per device.

mod common;

use common::{cpu, gpu};
use tensor::Result;
use tensor::testing::randn;

#[test]
fn a_profile_names_each_kernel_with_its_dispatches_and_time() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let backend = gpu::backend()?;
    if !backend.context().features.timestamps {
        println!("note: this adapter has no timestamp queries; the profile was not exercised");
        return Ok(());
    }
    let (x, w) = (randn([3, 40], 1, &cpu())?, randn([40, 24], 2, &cpu())?);
    let want = x.matmul(&w)?.tanh()?;
    let (xg, wg) = (x.to(&g)?, w.to(&g)?);
    backend.stats.profile.set(true);
    let mut got = None;
    for _ in 0..3 {
        got = Some(xg.matmul(&wg)?.tanh()?.to(&cpu())?);
    }
    backend.stats.profile.set(false);
    tensor::testing::assert_close(&got.unwrap(), &want, 1e-5, 1e-5)?;
    let slowest = backend.stats.profile.slowest(10);
    let find = |prefix: &str| slowest.iter().find(|k| k.name.starts_with(prefix)).cloned();
    let matmul = find("matmul/").expect("the matmul kernel was timed");
    let tanh = find("unary/").unwrap_or_else(|| panic!("the tanh kernel was timed: {slowest:?}"));
    assert_eq!((matmul.dispatches, tanh.dispatches), (3, 3), "{slowest:?}");
    assert!(matmul.seconds > 0.0 && matmul.seconds < 10.0, "{slowest:?}");
    assert!(slowest.windows(2).all(|p| p[0].seconds >= p[1].seconds), "slowest first: {slowest:?}");
    // Off: nothing more is counted.
    xg.matmul(&wg)?.to(&cpu())?;
    assert_eq!(backend.stats.profile.slowest(10).iter().find(|k| k.name == matmul.name).unwrap().dispatches, 3);
    backend.stats.profile.reset();
    assert!(backend.stats.profile.slowest(10).is_empty());
    Ok(())
}
