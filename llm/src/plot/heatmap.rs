//! Heat maps side by side: one panel per matrix (attention masks: query rows, key columns).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{FONT, draw};
use crate::{Error, Result};

/// Panels of values in [0, 1] (0 white, 1 the colour), drawn by [`Heatmaps::save_png`].
#[derive(Clone, Debug)]
pub struct Heatmaps {
    pub title: String,
    /// Label under each panel's rows and columns, e.g. ("key position", "query position").
    pub axes: (String, String),
    pub panels: Vec<(String, Vec<Vec<f64>>)>,
}

impl Heatmaps {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Heatmaps {
        Heatmaps { title: title.into(), axes: (x_label.into(), y_label.into()), panels: Vec::new() }
    }

    pub fn with(mut self, name: impl Into<String>, values: Vec<Vec<f64>>) -> Heatmaps {
        self.panels.push((name.into(), values));
        self
    }

    /// Writes the panels in one row to `path` as a PNG.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref().to_path_buf();
        if self.panels.is_empty() || self.panels.iter().any(|(_, m)| m.is_empty() || m[0].is_empty()) {
            return Err(Error::input(format!("heat map {:?} needs non-empty panels", self.title)));
        }
        let width = 40 + 380 * self.panels.len() as u32;
        draw(&path, || {
            let root = BitMapBackend::new(&path, (width, 470)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let root = root.titled(&self.title, (FONT, 24)).map_err(|e| e.to_string())?;
            let areas = root.split_evenly((1, self.panels.len()));
            for ((name, values), area) in self.panels.iter().zip(areas) {
                let rows = values.len();
                let cols = values.iter().map(Vec::len).max().unwrap_or(0);
                let mut chart = ChartBuilder::on(&area)
                    .caption(name, (FONT, 18))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(44)
                    .build_cartesian_2d(-0.5..cols as f64 - 0.5, -0.5..rows as f64 - 0.5)
                    .map_err(|e| e.to_string())?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_desc(&self.axes.0)
                    .y_desc(&self.axes.1)
                    .x_label_formatter(&|v| index_label(*v, cols, false))
                    .y_label_formatter(&|v| index_label(*v, rows, true))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(|e| e.to_string())?;
                // Rows run top to bottom like a matrix: query 0 at the top.
                let cells = values.iter().enumerate().flat_map(|(r, row)| {
                    row.iter().enumerate().map(move |(c, &v)| {
                        let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
                        let shade = |full: u8| (255.0 - (255.0 - full as f64) * v).round() as u8;
                        let color = RGBColor(shade(0), shade(114), shade(178));
                        // Cell (r, c) is centred on (c, rows - 1 - r).
                        let y = (rows - 1 - r) as f64;
                        Rectangle::new([(c as f64 - 0.5, y + 0.5), (c as f64 + 0.5, y - 0.5)], color.filled())
                    })
                });
                chart.draw_series(cells).map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())
        })?;
        Ok(path)
    }
}

/// Tick labels at whole cells only; the y axis counts rows from the top.
fn index_label(v: f64, n: usize, flipped: bool) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || i < 0.0 || i >= n as f64 {
        return String::new();
    }
    let i = i as usize;
    (if flipped { n - 1 - i } else { i }).to_string()
}
