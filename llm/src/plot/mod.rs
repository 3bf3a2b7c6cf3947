//! PNG pictures for the examples, the tour and training runs: line charts (loss curves, KV-cache
//! memory, RoPE frequencies), heat maps (attention masks) and bar charts (expert loads).
//!
//! Drawn with `plotters` on its bitmap backend. Text is rendered with the DejaVu Sans font shipped
//! in `assets/fonts/` (registered once per process), so no system font library is needed and the
//! pictures look the same on every machine.

mod bars;
mod heatmap;
mod lines;

pub use bars::BarChart;
pub use heatmap::Heatmaps;
pub use lines::{LineChart, Series};

use std::path::Path;
use std::sync::Once;

use plotters::style::{FontStyle, RGBColor};

use crate::{Error, Result};

/// The font family name the charts ask for.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Colours that stay distinguishable for the common forms of colour blindness (Okabe and Ito,
/// "Color Universal Design", 2008).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in, so this cannot fail at run time for want of a file; a broken
        // font file would fail every chart test.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// Makes the parent folder of `path` and turns any drawing failure into an error naming the file.
fn draw(path: &Path, paint: impl FnOnce() -> std::result::Result<(), String>) -> Result<()> {
    register_font();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    paint().map_err(|msg| Error::format(path, format!("could not draw the picture: {msg}")))
}

/// A readable number for axis labels: 1.5k, 32k, 2.1M, 0.25.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a > 0.0 && a < 0.01 {
        // Log axes reach far below 1 (RoPE frequencies): keep two significant digits.
        let text = format!("{v:.1e}");
        return text.replace(".0e", "e");
    }
    let (scaled, suffix) = if a >= 1e12 {
        (v / 1e12, "T")
    } else if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled.fract().abs() < 1e-9 || scaled.abs() >= 100.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::short_number;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(32768.0), "32.8k");
        assert_eq!(short_number(131072.0), "131k");
        assert_eq!(short_number(2_000_000.0), "2M");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(1.5e9), "1.5G");
        assert_eq!(short_number(7.0), "7");
        assert_eq!(short_number(0.0001), "1e-4");
        assert_eq!(short_number(0.00025), "2.5e-4");
        assert_eq!(short_number(0.0), "0");
    }
}
