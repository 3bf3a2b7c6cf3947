//! With `LLM_CPU_PROFILE=1`: where a forward pass on the CPU spends its time, step by step.
//!
//! The blocks mark the end of each step of a layer ([`mark`]: the q, k, v product, attention,
//! the norms, ...), and each mark adds the wall time since the thread's previous mark to its
//! step. `llm generate --stats` reports the decoding steps' totals per token
//! (`crate::cpu::profile::take`), the CPU's counterpart of `LLM_GPU_PROFILE`'s slowest kernels.
//! The calling thread's clock is what counts: a step's parallel kernels are timed from their
//! start to the last worker's end, and a step on a GPU would be timed as the host queues it,
//! so the marks are read on the CPU only.
//!
//! Off (the default) a mark is one relaxed load. On, it reads the clock (~25 ns); a Qwen3-0.6B
//! token makes ~300 marks.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Instant;

/// One step's time over the marks since the last [`take`].
#[derive(Clone, Debug, PartialEq)]
pub struct StepTime {
    pub step: &'static str,
    pub seconds: f64,
    /// How many times the step ended (once per layer per forward pass, for a layer's steps).
    pub count: u64,
}

/// Whether `LLM_CPU_PROFILE` asks for the marks (`1`, `on`, `true`, `yes`), read once.
pub fn on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| super::isa::switch_or_warn("LLM_CPU_PROFILE").unwrap_or(false))
}

thread_local! {
    /// The last mark's time (None before the first, or after [`start`]), and the steps' totals
    /// in the order they were first marked.
    static TIMELINE: RefCell<(Option<Instant>, Vec<StepTime>)> = const { RefCell::new((None, Vec::new())) };
}

/// Ends `step` on this thread: the time since the previous mark (or [`start`]) is added to it.
/// A mark with no time before it (the thread's first) only starts the clock.
#[inline]
pub fn mark(step: &'static str) {
    if on() {
        record(step, Instant::now());
    }
}

fn record(step: &'static str, now: Instant) {
    TIMELINE.with(|t| {
        let mut t = t.borrow_mut();
        if let Some(last) = t.0 {
            let seconds = (now - last).as_secs_f64();
            match t.1.iter_mut().find(|s| s.step == step) {
                Some(s) => {
                    s.seconds += seconds;
                    s.count += 1;
                }
                None => t.1.push(StepTime { step, seconds, count: 1 }),
            }
        }
        t.0 = Some(now);
    });
}

/// Starts this thread's clock: the next mark counts from now (the start of a forward pass,
/// so that the time between passes goes to no step).
pub fn start() {
    if on() {
        TIMELINE.with(|t| t.borrow_mut().0 = Some(Instant::now()));
    }
}

/// This thread's step totals since the last `take` (in the order the steps were first marked),
/// which starts them again from zero.
pub fn take() -> Vec<StepTime> {
    TIMELINE.with(|t| std::mem::take(&mut t.borrow_mut().1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_add_the_time_since_the_previous_mark_in_first_seen_order() {
        let t0 = Instant::now();
        take();
        TIMELINE.with(|t| t.borrow_mut().0 = None);
        record("first mark only starts the clock", t0);
        for layer in 0..3u32 {
            let base = t0 + Duration::from_millis(10 * u64::from(layer) + 1);
            record("a", base + Duration::from_millis(1));
            record("b", base + Duration::from_millis(4));
        }
        let steps = take();
        let names: Vec<&str> = steps.iter().map(|s| s.step).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(steps.iter().map(|s| s.count).collect::<Vec<_>>(), [3, 3]);
        // "a": 2 ms after the start, then 7 ms after each earlier "b" (layers 10 ms apart, "a"
        // at +2 ms and "b" at +5 ms in each); "b": 3 ms after each "a".
        assert!((steps[0].seconds - 0.016).abs() < 1e-6, "{steps:?}");
        assert!((steps[1].seconds - 0.009).abs() < 1e-6, "{steps:?}");
        assert!(take().is_empty(), "take starts again from zero");
    }
}
