//! The chart writers produce PNG files (looked at by eye when they were written; here checked for
//! the PNG signature, a plausible size and a clear error for charts with nothing to draw).

use llm::plot::{BarChart, Heatmaps, LineChart, Series};

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert!(bytes.len() > 2_000, "{} is suspiciously small ({} bytes)", path.display(), bytes.len());
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-plot-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn line_charts_linear_and_log() {
    let dir = out_dir("lines");
    let curve: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 5.0 * (-(i as f64) / 30.0).exp() + 1.0)).collect();
    let linear = LineChart::new("loss", "step", "loss").with(Series::new("train", curve.clone()));
    assert_png(&linear.save_png(dir.join("linear.png")).unwrap());
    let contexts: Vec<f64> = (10..=17).map(|p| (1u64 << p) as f64).collect();
    let log = LineChart::new("KV cache", "context", "bytes")
        .log_x()
        .log_y()
        .with(Series::new("MHA", contexts.iter().map(|&c| (c, c * 1e5)).collect()))
        .with(Series::new("window", contexts.iter().map(|&c| (c, c.min(4096.0) * 1e5)).collect()));
    assert_png(&log.save_png(dir.join("nested/log.png")).unwrap());
}

#[test]
fn heatmaps_and_bars() {
    let dir = out_dir("grids");
    let causal: Vec<Vec<f64>> = (0..16).map(|q| (0..16).map(|k| if k <= q { 1.0 } else { 0.0 }).collect()).collect();
    let maps = Heatmaps::new("masks", "key", "query").with("causal", causal.clone()).with("again", causal);
    assert_png(&maps.save_png(dir.join("masks.png")).unwrap());
    let bars = BarChart::new("loads", "expert", "share")
        .with("a", vec![0.1, 0.3, 0.6])
        .with("b", vec![0.3; 3])
        .reference(1.0 / 3.0);
    assert_png(&bars.save_png(dir.join("bars.png")).unwrap());
}

#[test]
fn empty_charts_are_errors_not_panics() {
    let dir = out_dir("empty");
    let err = LineChart::new("nothing", "x", "y").save_png(dir.join("a.png")).unwrap_err();
    assert!(err.to_string().contains("nothing"), "{err}");
    let nan = LineChart::new("nan", "x", "y").log_y().with(Series::new("s", vec![(1.0, f64::NAN), (2.0, -1.0)]));
    assert!(nan.save_png(dir.join("b.png")).is_err());
    assert!(Heatmaps::new("h", "x", "y").save_png(dir.join("c.png")).is_err());
    assert!(BarChart::new("b", "x", "y").with("g", vec![]).save_png(dir.join("d.png")).is_err());
}
