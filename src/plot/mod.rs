//! Plots for people: line and point series with error bars on linear or logarithmic axes,
//! written as SVG by us (text, so the same data give the same bytes) and rasterised to PNG with
//! resvg (DejaVu Sans, which the setup installs).
//!
//! Only what performance figures need: one panel, labelled axes with units, decade ticks and
//! minor ticks on log axes, 1-2-5 ticks on linear ones, a grid, a legend, dashed reference
//! lines, and NaN/∞ points left out (a line breaks there). No I/O except [`Figure::write`].
use crate::error::{Error, Result};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    /// Fixed range; `None`: from the data.
    pub range: Option<(f64, f64)>,
}

impl Axis {
    pub fn new(label: &str, scale: Scale) -> Axis {
        Axis { label: label.into(), scale, range: None }
    }

    pub fn range(mut self, lo: f64, hi: f64) -> Axis {
        self.range = Some((lo, hi));
        self
    }
}

#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// Horizontal extent of each point (e.g. its energy bin): (low, high).
    pub x_span: Option<Vec<(f64, f64)>>,
    /// Vertical error bars: (low, high) values.
    pub y_span: Option<Vec<(f64, f64)>>,
    pub color: &'static str,
    pub line: bool,
    pub markers: bool,
    pub dashed: bool,
}

impl Series {
    pub fn line(label: &str, x: Vec<f64>, y: Vec<f64>, color: &'static str) -> Series {
        Series {
            label: label.into(),
            x,
            y,
            x_span: None,
            y_span: None,
            color,
            line: true,
            markers: false,
            dashed: false,
        }
    }

    pub fn points(label: &str, x: Vec<f64>, y: Vec<f64>, color: &'static str) -> Series {
        Series {
            label: label.into(),
            x,
            y,
            x_span: None,
            y_span: None,
            color,
            line: false,
            markers: true,
            dashed: false,
        }
    }

    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }

    pub fn with_x_span(mut self, span: Vec<(f64, f64)>) -> Series {
        self.x_span = Some(span);
        self
    }

    pub fn with_y_span(mut self, span: Vec<(f64, f64)>) -> Series {
        self.y_span = Some(span);
        self
    }

    pub fn with_markers(mut self) -> Series {
        self.markers = true;
        self
    }
}

#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

const W: f64 = 800.0;
const H: f64 = 560.0;
const LEFT: f64 = 95.0;
const RIGHT: f64 = 25.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;
pub const COLORS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"];

fn usable(scale: Scale, v: f64) -> bool {
    v.is_finite() && (scale == Scale::Linear || v > 0.0)
}

/// Data range of one axis (including spans), padded; log ranges extend to whole decades when
/// that adds little.
fn data_range(axis: &Axis, values: impl Iterator<Item = f64>) -> (f64, f64) {
    if let Some(r) = axis.range {
        return r;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|&v| usable(axis.scale, v)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if axis.scale == Scale::Log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    match axis.scale {
        Scale::Log => {
            if hi <= lo {
                return (lo / 10.0, hi * 10.0);
            }
            let (a, b) = (lo.log10(), hi.log10());
            let pad = 0.05 * (b - a);
            (10f64.powf(a - pad), 10f64.powf(b + pad))
        }
        Scale::Linear => {
            if hi <= lo {
                return (lo - 1.0, hi + 1.0);
            }
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        }
    }
}

/// Tick values and labels, and minor ticks.
fn ticks(scale: Scale, lo: f64, hi: f64) -> (Vec<(f64, String)>, Vec<f64>) {
    match scale {
        Scale::Log => {
            let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
            let mut major = Vec::new();
            let mut minor = Vec::new();
            for k in a..=b {
                let v = 10f64.powi(k);
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    major.push((v, format_number(v)));
                }
                for m in 2..10 {
                    let w = v * m as f64;
                    if w > lo && w < hi {
                        minor.push(w);
                    }
                }
            }
            if major.len() < 2 {
                // Less than a decade: label the minor ticks instead.
                major.extend(minor.iter().map(|&w| (w, format_number(w))));
                minor.clear();
            }
            (major, minor)
        }
        Scale::Linear => {
            let raw = (hi - lo) / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
            let mut v = (lo / step).ceil() * step;
            let mut major = Vec::new();
            while v <= hi + 1e-9 * step {
                let clean = if v.abs() < 1e-12 * step { 0.0 } else { v };
                major.push((clean, format_number(clean)));
                v += step;
            }
            (major, Vec::new())
        }
    }
}

fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let exp = a.log10().floor() as i32;
        let mant = v / 10f64.powi(exp);
        if (mant - 1.0).abs() < 1e-9 {
            return format!("1e{exp}");
        }
        return format!("{mant:.3}e{exp}").replace(".000e", "e");
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Figure {
    pub fn new(title: &str, x: Axis, y: Axis) -> Figure {
        Figure { title: title.into(), x, y, series: Vec::new() }
    }

    pub fn add(&mut self, s: Series) -> &mut Figure {
        self.series.push(s);
        self
    }

    pub fn to_svg(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.x.iter().copied().chain(s.x_span.iter().flatten().flat_map(|&(a, b)| [a, b])));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.y.iter().copied().chain(s.y_span.iter().flatten().flat_map(|&(a, b)| [a, b])));
        let (x0, x1) = data_range(&self.x, xs);
        let (y0, y1) = data_range(&self.y, ys);
        let map = |scale: Scale, v: f64, lo: f64, hi: f64, a: f64, b: f64| -> f64 {
            let t = match scale {
                Scale::Log => (v.log10() - lo.log10()) / (hi.log10() - lo.log10()),
                Scale::Linear => (v - lo) / (hi - lo),
            };
            a + t * (b - a)
        };
        let px = |v: f64| map(self.x.scale, v, x0, x1, LEFT, W - RIGHT);
        let py = |v: f64| map(self.y.scale, v, y0, y1, H - BOTTOM, TOP);
        let inside = |x: f64, y: f64| {
            usable(self.x.scale, x)
                && usable(self.y.scale, y)
                && x >= x0.min(x1)
                && x <= x0.max(x1)
                && y >= y0.min(y1)
                && y <= y0.max(y1)
        };
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let _ = writeln!(
            o,
            r##"<defs><clipPath id="plot"><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></clipPath></defs>"##
        );
        // Grid and ticks.
        let (xt, xm) = ticks(self.x.scale, x0, x1);
        let (yt, ym) = ticks(self.y.scale, y0, y1);
        for (v, label) in &xt {
            let x = px(*v);
            let _ =
                writeln!(o, r##"<line x1="{x:.2}" y1="{TOP}" x2="{x:.2}" y2="{:.2}" stroke="#dddddd"/>"##, H - BOTTOM);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}" stroke="black"/>"##,
                H - BOTTOM,
                H - BOTTOM + 6.0
            );
            let _ = writeln!(
                o,
                r#"<text x="{x:.2}" y="{:.2}" font-size="14" text-anchor="middle">{}</text>"#,
                H - BOTTOM + 22.0,
                escape(label)
            );
        }
        for v in &xm {
            let x = px(*v);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}" stroke="black"/>"##,
                H - BOTTOM,
                H - BOTTOM + 3.0
            );
        }
        for (v, label) in &yt {
            let y = py(*v);
            let _ =
                writeln!(o, r##"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#dddddd"/>"##, W - RIGHT);
            let _ =
                writeln!(o, r##"<line x1="{:.2}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}" stroke="black"/>"##, LEFT - 6.0);
            let _ = writeln!(
                o,
                r#"<text x="{:.2}" y="{:.2}" font-size="14" text-anchor="end">{}</text>"#,
                LEFT - 9.0,
                y + 5.0,
                escape(label)
            );
        }
        for v in &ym {
            let y = py(*v);
            let _ =
                writeln!(o, r##"<line x1="{:.2}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}" stroke="black"/>"##, LEFT - 3.0);
        }
        let _ = writeln!(o, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"##);
        // Series.
        let _ = writeln!(o, r#"<g clip-path="url(#plot)">"#);
        for s in &self.series {
            let dash = if s.dashed { r#" stroke-dasharray="8,5""# } else { "" };
            if s.line {
                let mut run: Vec<String> = Vec::new();
                let flush = |run: &mut Vec<String>, o: &mut String| {
                    if run.len() > 1 {
                        let _ = writeln!(
                            o,
                            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                            run.join(" "),
                            s.color
                        );
                    }
                    run.clear();
                };
                for (&x, &y) in s.x.iter().zip(&s.y) {
                    if usable(self.x.scale, x) && usable(self.y.scale, y) {
                        run.push(format!("{:.2},{:.2}", px(x), py(y)));
                    } else {
                        flush(&mut run, &mut o);
                    }
                }
                flush(&mut run, &mut o);
            }
            for (i, (&x, &y)) in s.x.iter().zip(&s.y).enumerate() {
                if !inside(x, y) {
                    continue;
                }
                let (cx, cy) = (px(x), py(y));
                if let Some(span) = s.x_span.as_ref().map(|v| v[i]) {
                    if usable(self.x.scale, span.0) && usable(self.x.scale, span.1) {
                        let _ = writeln!(
                            o,
                            r#"<line x1="{:.2}" y1="{cy:.2}" x2="{:.2}" y2="{cy:.2}" stroke="{}" stroke-width="1.5"/>"#,
                            px(span.0),
                            px(span.1),
                            s.color
                        );
                    }
                }
                if let Some(span) = s.y_span.as_ref().map(|v| v[i]) {
                    let lo = if usable(self.y.scale, span.0) { py(span.0) } else { H - BOTTOM };
                    if usable(self.y.scale, span.1) {
                        let _ = writeln!(
                            o,
                            r#"<line x1="{cx:.2}" y1="{lo:.2}" x2="{cx:.2}" y2="{:.2}" stroke="{}" stroke-width="1.5"/>"#,
                            py(span.1),
                            s.color
                        );
                    }
                }
                if s.markers {
                    let _ = writeln!(o, r#"<circle cx="{cx:.2}" cy="{cy:.2}" r="4" fill="{}"/>"#, s.color);
                }
            }
        }
        let _ = writeln!(o, "</g>");
        // Labels, title, legend.
        let _ = writeln!(
            o,
            r#"<text x="{:.2}" y="{:.2}" font-size="16" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 18.0,
            escape(&self.x.label)
        );
        let _ = writeln!(
            o,
            r#"<text x="22" y="{:.2}" font-size="16" text-anchor="middle" transform="rotate(-90 22 {:.2})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            escape(&self.y.label)
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.2}" y="32" font-size="18" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            escape(&self.title)
        );
        let labelled: Vec<&Series> = self.series.iter().filter(|s| !s.label.is_empty()).collect();
        if !labelled.is_empty() {
            let width = 40.0 + 8.0 * labelled.iter().map(|s| s.label.chars().count()).max().unwrap_or(0) as f64;
            let (lx, ly) = (W - RIGHT - width - 10.0, TOP + 10.0);
            let _ = writeln!(
                o,
                r##"<rect x="{lx:.2}" y="{ly:.2}" width="{width:.2}" height="{:.2}" fill="white" fill-opacity="0.85" stroke="#999999"/>"##,
                8.0 + 22.0 * labelled.len() as f64
            );
            for (i, s) in labelled.iter().enumerate() {
                let y = ly + 19.0 + 22.0 * i as f64;
                let dash = if s.dashed { r#" stroke-dasharray="8,5""# } else { "" };
                if s.line {
                    let _ = writeln!(
                        o,
                        r#"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="{}" stroke-width="2"{dash}/>"#,
                        lx + 6.0,
                        y - 5.0,
                        lx + 30.0,
                        y - 5.0,
                        s.color
                    );
                }
                if s.markers {
                    let _ =
                        writeln!(o, r#"<circle cx="{:.2}" cy="{:.2}" r="4" fill="{}"/>"#, lx + 18.0, y - 5.0, s.color);
                }
                let _ =
                    writeln!(o, r#"<text x="{:.2}" y="{y:.2}" font-size="13">{}</text>"#, lx + 36.0, escape(&s.label));
            }
        }
        o.push_str("</svg>\n");
        o
    }

    /// Writes `<stem>.svg` and `<stem>.png`.
    pub fn write(&self, dir: &std::path::Path, stem: &str) -> Result<()> {
        let svg = self.to_svg();
        let svg_path = dir.join(format!("{stem}.svg"));
        std::fs::write(&svg_path, &svg).map_err(|e| Error::io(format!("cannot write {}", svg_path.display()), e))?;
        let png = svg_to_png(&svg)?;
        let png_path = dir.join(format!("{stem}.png"));
        std::fs::write(&png_path, png).map_err(|e| Error::io(format!("cannot write {}", png_path.display()), e))
    }
}

/// Rasterises an SVG (ours) to PNG with the system fonts.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| Error::msg(format!("plot: bad SVG: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| Error::msg("plot: empty image"))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| Error::msg(format!("plot: PNG encoding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_and_svg_structure() {
        let (major, minor) = ticks(Scale::Log, 0.5, 200.0);
        assert_eq!(major.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(), ["1", "10", "100"]);
        assert!(minor.contains(&2.0) && minor.contains(&0.6000000000000001) || minor.len() > 10);
        let (lin, _) = ticks(Scale::Linear, 0.0, 1.0);
        assert_eq!(lin.first().unwrap().1, "0");
        assert_eq!(format_number(1e-12), "1e-12");
        let mut f = Figure::new("t", Axis::new("E [TeV]", Scale::Log), Axis::new("R", Scale::Linear));
        f.add(Series::line("a <b>", vec![1.0, 10.0, f64::NAN, 100.0], vec![0.1, 0.2, 0.3, 0.4], COLORS[0]));
        let svg = f.to_svg();
        assert!(svg.starts_with("<svg") && svg.contains("a &lt;b&gt;") && svg.contains("E [TeV]"));
        assert_eq!(svg.matches("<polyline").count(), 1, "the NaN breaks the line; a lone point draws none");
        assert_eq!(svg, f.to_svg());
    }
}
