//! Choosing the device a command runs on. `--device cpu` and `--device gpu` are taken
//! literally (a missing GPU is an error, never a silent fallback); without the flag the best
//! device found is used and named. A software adapter (Mesa's lavapipe, which runs the WGSL
//! kernels on the CPU) is a GPU only when asked for by name: left to choose, the CPU backend is
//! faster than a GPU emulated on the same cores.

use tensor::Device;

use crate::{Error, Result};

/// The device a `--device` value asks for, and a line saying which was taken.
pub fn pick(requested: Option<&str>) -> Result<(Device, String)> {
    match requested.map(|s| s.to_ascii_lowercase()) {
        Some(name) if name == "cpu" => Ok((Device::cpu(), "device: cpu".to_string())),
        Some(name) if name == "gpu" => {
            let device = gpu_device()?;
            let line = format!("device: {}", device.name());
            Ok((device, line))
        }
        Some(other) => Err(Error::input(format!("--device must be cpu or gpu, got {other:?}"))),
        None => match gpu_device() {
            Ok(device) if software_adapter() => Ok((
                Device::cpu(),
                format!("device: cpu (the only GPU adapter, {}, runs on the CPU; --device gpu uses it)", device.name()),
            )),
            Ok(device) => {
                let line = format!("device: {} (best found)", device.name());
                Ok((device, line))
            }
            Err(e) => Ok((Device::cpu(), format!("device: cpu (no GPU: {e})"))),
        },
    }
}

fn gpu_device() -> Result<Device> {
    gpu::device().map_err(|e| Error::input(format!("--device gpu: {e}")))
}

fn software_adapter() -> bool {
    gpu::backend().map(|b| b.context().is_cpu_adapter()).unwrap_or(false)
}

/// Runs `f` on a worker thread of the CPU kernels' pool and waits for it.
///
/// Why: a parallel kernel called from a thread outside the pool queues its pieces and puts the
/// caller to sleep until the workers are done, then wakes it: two thread hand-offs per product,
/// and a decoded token runs some 200 products (a Qwen3-0.6B-shaped model decoded ~6% faster
/// on 2 threads run this way, docs/BENCHMARKS.md). Called from a worker, the caller computes a
/// share itself while the others take the rest.
pub fn on_cpu_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Runs `f`, one forward pass on `device`, with the CPU kernels' other workers kept awake until
/// it returns: each polls the pool for work (`rayon::yield_now`) instead of going to sleep
/// between two parallel kernels.
///
/// Why: a decoded token runs some 200 parallel kernels with a little serial work between them.
/// A rayon worker that finds no work sleeps after a few dozen tries, and the next kernel must
/// wake it. On a machine that has idled (a server between requests, a token after the user
/// typed, a benchmark that runs another program in between) those wake-ups are slow: on the
/// 2-core virtual machines of docs/BENCHMARKS.md, whose idle CPUs halt, a Llama-3.2-1B-shaped
/// q4_0 model decoding with 50 ms of idle before each token ran at 27-29 tok/s, against ~40
/// back to back; with the workers kept awake, 38. OpenMP runtimes (llama.cpp's, PyTorch's) do
/// the same by spinning at their barriers. The polling stops when `f` returns, so an idle
/// process uses no CPU. Called outside the pool, with one thread, or for a GPU (whose passes
/// wait on the device, not on these workers), `f` just runs.
pub fn with_workers_awake<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    let others = rayon::current_num_threads().saturating_sub(1);
    let caller = match rayon::current_thread_index() {
        Some(caller) if others > 0 && device.is_cpu() => caller,
        _ => return f(),
    };
    /// Ends the polling however `f` ends: a panic in it must not leave the pollers spinning
    /// (the scope waits for them before it passes the panic on).
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        for _ in 0..others {
            s.spawn(|_| {
                // The caller, waiting inside `f` for a piece another worker took, may pick up
                // one of these from its own queue: polling there would never let `f` go on.
                if rayon::current_thread_index() == Some(caller) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let _done = Done(&done);
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Runs `f` on a fresh pool of `threads` workers and fails, rather than hangs, when it has
    /// not finished within a minute (a poller that never stops would hold the pool forever).
    fn on_pool<R: Send + 'static>(threads: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
            let _ = send.send(pool.install(f));
        });
        receive.recv_timeout(Duration::from_secs(60)).expect("the pass finished and the pollers stopped")
    }

    #[test]
    fn a_pass_with_the_workers_awake_computes_as_without() {
        for threads in [1, 2, 3] {
            let sum = on_pool(threads, || {
                with_workers_awake(&Device::cpu(), || (0..100_000u64).into_par_iter().map(|i| i * i).sum::<u64>())
            });
            assert_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>(), "{threads} threads");
        }
        // Outside any pool it just runs.
        assert_eq!(with_workers_awake(&Device::cpu(), || 7), 7);
    }

    #[test]
    fn the_caller_never_polls_for_its_own_pass() {
        // The other worker is kept busy, so the poller stays in the caller's queue, and the
        // pass asks the pool for work: it gets that poller, which must return at once.
        let ran = on_pool(2, || {
            let busy = AtomicBool::new(false);
            rayon::scope(|s| {
                s.spawn(|_| {
                    busy.store(true, Ordering::Release);
                    std::thread::sleep(Duration::from_millis(300));
                });
                while !busy.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                with_workers_awake(&Device::cpu(), rayon::yield_now)
            })
        });
        assert_eq!(ran, Some(rayon::Yield::Executed), "the pass picked up the poller");
    }

    #[test]
    fn a_panic_in_the_pass_stops_the_pollers() {
        let caught = on_pool(3, || {
            std::panic::catch_unwind(|| with_workers_awake(&Device::cpu(), || -> u32 { panic!("inside the pass") }))
                .is_err()
        });
        assert!(caught);
    }
}
