//! Line charts: several named series over a shared x axis, either axis linear or logarithmic.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::{FONT, PALETTE, draw, short_number};
use crate::{Error, Result};

/// One named line.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), points }
    }
}

/// A line chart, drawn by [`LineChart::save_png`].
#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub size: (u32, u32),
}

impl LineChart {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> LineChart {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            size: (900, 560),
        }
    }

    pub fn log_x(mut self) -> LineChart {
        self.log_x = true;
        self
    }

    pub fn log_y(mut self) -> LineChart {
        self.log_y = true;
        self
    }

    pub fn with(mut self, series: Series) -> LineChart {
        self.series.push(series);
        self
    }

    /// The smallest box holding every finite point (positive values only on a log axis).
    fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let usable = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        let points = self
            .series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|(x, y)| usable(*x, self.log_x) && usable(*y, self.log_y));
        let mut b: Option<((f64, f64), (f64, f64))> = None;
        for &(x, y) in points {
            b = Some(match b {
                None => ((x, x), (y, y)),
                Some(((x0, x1), (y0, y1))) => ((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))),
            });
        }
        b
    }

    /// Writes the chart to `path` as a PNG.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref().to_path_buf();
        let ((x0, x1), (y0, y1)) = self
            .bounds()
            .ok_or_else(|| Error::input(format!("chart {:?} has no finite points to draw", self.title)))?;
        let (x0, x1) = widen(x0, x1, self.log_x, false);
        let (y0, y1) = widen(y0, y1, self.log_y, true);
        draw(&path, || match (self.log_x, self.log_y) {
            (false, false) => self.paint(&path, x0..x1, y0..y1),
            (true, false) => self.paint(&path, (x0..x1).log_scale(), y0..y1),
            (false, true) => self.paint(&path, x0..x1, (y0..y1).log_scale()),
            (true, true) => self.paint(&path, (x0..x1).log_scale(), (y0..y1).log_scale()),
        })?;
        Ok(path)
    }

    fn paint<X, Y>(&self, path: &Path, x: X, y: Y) -> std::result::Result<(), String>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = BitMapBackend::new(path, self.size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x, y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| short_number(*v))
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points = series.points.iter().copied().filter(|(a, b)| a.is_finite() && b.is_finite());
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(3)))
                .map_err(|e| e.to_string())?
                .label(&series.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
        if self.series.iter().any(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .label_font((FONT, 16))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }
}

/// A range with a little room around the data (and some width when all values are equal).
fn widen(lo: f64, hi: f64, log: bool, pad: bool) -> (f64, f64) {
    if log {
        let (lo, hi) = if lo == hi { (lo / 2.0, hi * 2.0) } else { (lo, hi) };
        if pad { (lo / 1.3, hi * 1.3) } else { (lo, hi) }
    } else {
        let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
        if pad || lo == hi { (lo - 0.05 * span, hi + 0.05 * span) } else { (lo, hi) }
    }
}
