//! The per-test times as an SVG chart, drawn with `plotters` (SVG backend
//! only): one panel per test, one horizontal bar per configuration (the
//! median over runs, its value written at its end, a whisker from min to
//! max). Each panel has its own time axis, since tests differ by orders of
//! magnitude. Colours: pagelog blue, stock SQLite orange/green/grey; the
//! same configuration has the same colour in every panel.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::config::Config;
use crate::report::Report;

const PANEL_W: u32 = 560;
const BAR_H: u32 = 30;
const COLUMNS: usize = 2;
const TITLE_H: u32 = 40;

fn colour(c: Config) -> RGBColor {
    match c {
        Config::PagelogFull => RGBColor(31, 90, 180),
        Config::PagelogNormal => RGBColor(120, 170, 230),
        Config::DeleteFull => RGBColor(120, 120, 120),
        Config::WalFull => RGBColor(220, 110, 20),
        Config::WalNormal => RGBColor(60, 160, 80),
    }
}

/// Seconds in the panel's unit: milliseconds when its axis ends below
/// 0.1 s, else seconds; at most three decimals, trailing zeros dropped.
fn fmt_in(x: f64, ms: bool) -> String {
    let (v, unit) = if ms { (x * 1000.0, "ms") } else { (x, "s") };
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let t = format!("{v:.decimals$}");
    let t = if t.contains('.') { t.trim_end_matches('0').trim_end_matches('.') } else { &t };
    format!("{t} {unit}")
}

/// The chart as SVG text.
pub fn svg(r: &Report) -> Result<String, String> {
    let tests = &r.workload.tests;
    let n = r.configs.len();
    let panel_h = 70 + BAR_H * n as u32;
    let rows = tests.len().div_ceil(COLUMNS) as u32;
    let size = (PANEL_W * COLUMNS as u32, TITLE_H + panel_h * rows.max(1));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| format!("draw the chart: {e}");
        root.fill(&WHITE).map_err(e)?;
        let caption = format!(
            "speedtest: seconds per test, median of {} runs (whisker: min–max); shorter is faster",
            r.meta.runs
        );
        let body = root.titled(&caption, ("sans-serif", 18)).map_err(e)?;
        let panels = body.split_evenly((rows.max(1) as usize, COLUMNS));
        for (i, (t, area)) in tests.iter().zip(panels.iter()).enumerate() {
            let cells: Vec<_> = r.configs.iter().map(|&c| (c, r.test_stats(c, i))).collect();
            let xmax = cells.iter().filter_map(|(_, s)| s.map(|s| s.max)).fold(0.0_f64, f64::max).max(1e-9) * 1.25;
            let ms = xmax < 0.1;
            let names: Vec<&str> = r.configs.iter().map(|c| c.name()).collect();
            // Row k of the configs is drawn at segment n-1-k: the first on top.
            let at = |k: usize| n - 1 - k;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{}. {}", t.id, t.title), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(120)
                .build_cartesian_2d(0.0..xmax, (0..n).into_segmented())
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(j) if *j < n => names[n - 1 - j].to_string(),
                    _ => String::new(),
                })
                .x_labels(5)
                .x_label_formatter(&|x| fmt_in(*x, ms))
                .draw()
                .map_err(e)?;
            for (k, (c, s)) in cells.iter().enumerate() {
                let Some(s) = s else { continue };
                let mut bar = Rectangle::new(
                    [(0.0, SegmentValue::Exact(at(k))), (s.median, SegmentValue::Exact(at(k) + 1))],
                    colour(*c).filled(),
                );
                bar.set_margin(5, 5, 0, 0);
                let mid = || SegmentValue::CenterOf(at(k));
                chart.draw_series([bar]).map_err(e)?;
                if s.n > 1 {
                    chart.draw_series([PathElement::new([(s.min, mid()), (s.max, mid())], BLACK)]).map_err(e)?;
                }
                chart
                    .draw_series([Text::new(
                        format!(" {}", fmt_in(s.median, ms)),
                        (s.max.max(s.median), mid()),
                        TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
                    )])
                    .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use crate::report::tests::fake_report;
    use crate::workload::{generate, Scale};

    #[test]
    fn axis_values_keep_one_unit_per_panel() {
        assert_eq!(super::fmt_in(0.5, false), "0.5 s");
        assert_eq!(super::fmt_in(0.0, true), "0 ms");
        assert_eq!(super::fmt_in(0.00782, true), "7.82 ms");
        assert_eq!(super::fmt_in(0.024, true), "24 ms");
        assert_eq!(super::fmt_in(12.345, false), "12.3 s");
    }

    #[test]
    fn the_chart_has_a_panel_per_test_and_a_bar_per_config() {
        let w = generate(Scale::new(0.01).unwrap(), false);
        let r = fake_report(&w);
        let svg = super::svg(&r).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        for t in &w.tests {
            assert!(svg.contains(&format!("{}. {}", t.id, t.title)), "panel {} missing", t.id);
        }
        for c in &r.configs {
            assert!(svg.contains(&format!(">{}<", c.name())) || svg.contains(c.name()), "{c} label missing");
        }
        // One filled bar per (test, config); fake_report's medians differ by config.
        let bars = svg.matches("<rect").count();
        assert!(bars > w.tests.len() * r.configs.len(), "{bars} rects");
    }
}
