//! Bar charts in panels: one panel per group (expert loads under each router).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{FONT, PALETTE, draw, short_number};
use crate::{Error, Result};

/// One panel of bars per group, drawn by [`BarChart::save_png`].
#[derive(Clone, Debug)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub groups: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line drawn in every panel (e.g. the perfectly balanced load).
    pub reference: Option<f64>,
}

impl BarChart {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> BarChart {
        BarChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            groups: Vec::new(),
            reference: None,
        }
    }

    pub fn with(mut self, name: impl Into<String>, values: Vec<f64>) -> BarChart {
        self.groups.push((name.into(), values));
        self
    }

    pub fn reference(mut self, value: f64) -> BarChart {
        self.reference = Some(value);
        self
    }

    /// Writes the panels, one above the other, to `path` as a PNG. All panels share the y range.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref().to_path_buf();
        if self.groups.is_empty() || self.groups.iter().any(|(_, v)| v.is_empty()) {
            return Err(Error::input(format!("bar chart {:?} needs non-empty groups", self.title)));
        }
        let top = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let top = if top > 0.0 { top * 1.1 } else { 1.0 };
        let height = 60 + 230 * self.groups.len() as u32;
        draw(&path, || {
            let root = BitMapBackend::new(&path, (900, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let root = root.titled(&self.title, (FONT, 24)).map_err(|e| e.to_string())?;
            let areas = root.split_evenly((self.groups.len(), 1));
            for (i, ((name, values), area)) in self.groups.iter().zip(areas).enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let mut chart = ChartBuilder::on(&area)
                    .caption(name, (FONT, 18))
                    .margin(10)
                    .x_label_area_size(36)
                    .y_label_area_size(64)
                    .build_cartesian_2d(-0.6..values.len() as f64 - 0.4, 0.0..top)
                    .map_err(|e| e.to_string())?;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(values.len().min(32))
                    .x_label_formatter(&|v| whole(*v))
                    .x_desc(&self.x_label)
                    .y_desc(&self.y_label)
                    .y_label_formatter(&|v| short_number(*v))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()
                    .map_err(|e| e.to_string())?;
                let bars = values.iter().enumerate().map(|(x, &v)| {
                    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
                    Rectangle::new([(x as f64 - 0.4, 0.0), (x as f64 + 0.4, v)], color.filled())
                });
                chart.draw_series(bars).map_err(|e| e.to_string())?;
                if let Some(r) = self.reference {
                    let line = vec![(-0.6, r), (values.len() as f64 - 0.4, r)];
                    chart.draw_series(LineSeries::new(line, BLACK.stroke_width(2))).map_err(|e| e.to_string())?;
                }
            }
            root.present().map_err(|e| e.to_string())
        })?;
        Ok(path)
    }
}

/// Whole-number tick labels only (one per bar).
fn whole(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 && v >= -0.01 { format!("{}", v.round() as i64) } else { String::new() }
}
