//! Accuracy and cost curves per epoch as a PNG, like the figures of the book's chapter 3
//! ([`plot_png`]), and any set of curves side by side ([`plot_charts_png`]: the book's
//! comparisons of learning rates, initialisations, training-set sizes and layer speeds).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use ab_glyph::FontRef;

use crate::canvas::Canvas;
use crate::{EpochRecord, ReportError, RunRecord};

/// Width of the PNG written by [`plot_png`], in pixels.
pub const PLOT_WIDTH: u32 = 1200;
/// Height of the PNG written by [`plot_png`], in pixels.
pub const PLOT_HEIGHT: u32 = 500;

/// DejaVu Sans (Bitstream Vera licence, see `assets/LICENSE-DejaVu.txt`), so no system font is needed.
static FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family name every text style of this module uses.
pub(crate) const FONT: &str = "sans-serif";

/// The embedded font, registered with plotters (which measures text with it) on first use.
pub(crate) fn font() -> Result<FontRef<'static>, ReportError> {
    static FONT_REF: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, FONT_TTF).ok()?;
            FontRef::try_from_slice(FONT_TTF).ok()
        })
        .clone()
        .ok_or_else(|| ReportError::Render("the embedded font could not be loaded".into()))
}

/// One curve: its legend label, colour, and (x, y) points.
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// One curve of a [`Chart`]: a legend label and its (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The legend's text.
    pub label: String,
    /// The points, in drawing order (non-finite ones are left out).
    pub points: Vec<(f64, f64)>,
}

/// A panel of curves with its axes, for [`plot_charts_png`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Above the panel.
    pub caption: String,
    /// The x axis' name.
    pub x_label: String,
    /// The y axis' name.
    pub y_label: String,
    /// The curves, coloured in matplotlib's default cycle.
    pub curves: Vec<Curve>,
    /// A logarithmic x axis (positive x only).
    pub log_x: bool,
    /// A logarithmic y axis (positive y only; `y_bounds` then ignored).
    pub log_y: bool,
    /// The y axis never goes beyond these bounds (e.g. 0..100 for accuracy in %).
    pub y_bounds: Option<(f64, f64)>,
}

/// matplotlib's default colour cycle.
const CYCLE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Series colours (matplotlib's default cycle): training, evaluation, validation, test.
const TRAINING: RGBColor = RGBColor(31, 119, 180);
const EVALUATION: RGBColor = RGBColor(255, 127, 14);
const VALIDATION: RGBColor = RGBColor(44, 160, 44);
const TEST: RGBColor = RGBColor(214, 39, 40);

/// The series of `record` picked by `get`, scaled by `scale`, keeping finite values only.
fn series(
    record: &RunRecord,
    label: &'static str,
    color: RGBColor,
    scale: f64,
    get: fn(&EpochRecord) -> Option<f64>,
) -> Option<Series> {
    let points: Vec<(f64, f64)> = record
        .epochs
        .iter()
        .filter_map(|e| get(e).map(|v| (e.epoch as f64, v * scale)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    (!points.is_empty()).then_some(Series {
        label: label.to_string(),
        color,
        points,
    })
}

/// The y axis' range over `values` (non-finite ones left out): the values with a little room
/// above and below, within `clamp` if given. A flat series gets room in proportion to its
/// value (a tenth of it; 1 around 0), so the axis still has a span and the line sits in its
/// middle; no values give 0..1.
fn y_range(values: impl Iterator<Item = f64>, clamp: Option<(f64, f64)>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else if hi != 0.0 {
        hi.abs() * 0.1
    } else {
        1.0
    };
    let (mut a, mut b) = (lo - pad, hi + pad);
    if let Some((min, max)) = clamp {
        a = a.max(min);
        b = b.min(max);
        if a >= b {
            (a, b) = (min, max);
        }
    }
    // Values near f64::MAX can pad to infinity, and a span below the resolution of the
    // numbers around it rounds to nothing: no sensible axis then.
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

/// Decimals that tell apart the ~10 labels of an axis spanning `span` (0 to 6): one more than
/// a tenth of the span needs, as plotters may step by half of that (0.05 on a span of 2).
fn label_decimals(span: f64) -> usize {
    if span.is_finite() && span > 0.0 {
        ((-(span / 10.0).log10()).ceil() + 1.0).clamp(0.0, 6.0) as usize
    } else {
        3
    }
}

/// Where the legend goes in a panel.
#[derive(Clone, Copy)]
enum Legend {
    LowerRight,
    UpperRight,
}

/// How one panel is laid out, apart from its curves: the run plot and the book's figures
/// draw their panels through the same code with different axes.
struct Panel<'a> {
    caption: &'a str,
    /// The x and y axes' names.
    axes: (&'a str, &'a str),
    /// Bounds the y axis never passes.
    clamp: Option<(f64, f64)>,
    legend: Legend,
    x_range: (f64, f64),
    /// Logarithmic x and y axes.
    log: (bool, bool),
}

/// Draws one panel: the curves of `all` (or a note that nothing was monitored) with a legend.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    all: &[Series],
    p: Panel<'_>,
) -> Result<(), String> {
    let Panel {
        caption,
        axes: (x_desc, y_desc),
        clamp,
        legend,
        x_range,
        log: (log_x, log_y),
    } = p;
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (y0, y1) = y_range(all.iter().flat_map(|s| s.points.iter().map(|p| p.1)), clamp);
    let decimals = label_decimals(y1 - y0);

    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.0..x_range.1, y0..y1)
        .map_err(e)?;
    let integer_epochs = x_range.1 - x_range.0 <= 12.0;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(248, 248, 248))
        .bold_line_style(RGBColor(220, 220, 220))
        .x_labels(if integer_epochs || log_x { 13 } else { 10 })
        .x_label_formatter(&|x| {
            if log_x {
                log_label(*x)
            } else if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_labels(if log_y { 25 } else { 10 })
        .y_label_formatter(&|y| {
            if log_y {
                log_label(*y)
            } else {
                short(*y, decimals)
            }
        })
        .draw()
        .map_err(e)?;

    if all.is_empty() {
        let (w, h) = area.dim_in_pixel();
        let style = (FONT, 18)
            .into_font()
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(
            format!("no {} monitored", caption.to_lowercase()),
            (w as i32 / 2, h as i32 / 2),
            style,
        ))
        .map_err(e)?;
        return Ok(());
    }

    for s in all {
        let color = s.color;
        let point_size = if s.points.len() <= 60 { 3 } else { 0 };
        // Points far off the axis (when the range fell back to 0..1 or was clamped to 100 %) are pulled
        // in to a few heights away: still off the plot, but plotters' pixel maths cannot overflow.
        let reach = 4.0 * (y1 - y0);
        let points = s
            .points
            .iter()
            .map(|&(x, y)| (x, y.clamp(y0 - reach, y1 + reach)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(point_size))
            .map_err(e)?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(match legend {
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
        })
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .margin(10)
        .draw()
        .map_err(e)?;
    Ok(())
}

/// The drawing area [`render`] hands its `body` callback.
type Area<'a> = DrawingArea<Canvas<'a>, plotters::coord::Shift>;

/// A white `width` x `PLOT_HEIGHT` PNG with `title` (may be empty) on top and what `body`
/// draws below it.
fn render(
    width: u32,
    title: &str,
    body: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<Vec<u8>, ReportError> {
    let font = font()?;
    let mut rgb = vec![0u8; width as usize * PLOT_HEIGHT as usize * 3];
    (|| {
        let backend = BitMapBackend::<plotters::backend::RGBPixel>::with_buffer_and_format(
            &mut rgb,
            (width, PLOT_HEIGHT),
        )
        .map_err(|e| e.to_string())?;
        let root = Canvas::new(backend, font).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let area = if title.is_empty() {
            root.clone()
        } else {
            root.titled(title, (FONT, 26)).map_err(e)?
        };
        body(&area)?;
        root.present().map_err(e)
    })()
    .map_err(ReportError::Render)?;
    encode_rgb_png(&rgb, width, PLOT_HEIGHT)
        .map_err(|e| ReportError::Render(format!("PNG encoding: {e}")))
}

/// Draws the accuracy and cost panels of `record` into `body`.
fn draw(record: &RunRecord, body: &Area<'_>) -> Result<(), String> {
    let (left, rest) = body.split_horizontally(PLOT_WIDTH / 2);
    let (right, third) = rest.split_horizontally(PLOT_WIDTH / 2);

    let accuracy: Vec<Series> = [
        series(record, "training", TRAINING, 100.0, |e| e.training_accuracy),
        series(record, "evaluation", EVALUATION, 100.0, |e| {
            e.evaluation_accuracy
        }),
        series(record, "validation", VALIDATION, 100.0, |e| {
            e.validation_accuracy
        }),
        series(record, "test", TEST, 100.0, |e| e.test_accuracy),
    ]
    .into_iter()
    .flatten()
    .collect();
    let cost: Vec<Series> = [
        series(record, "training", TRAINING, 1.0, |e| e.training_cost),
        series(record, "evaluation", EVALUATION, 1.0, |e| e.evaluation_cost),
    ]
    .into_iter()
    .flatten()
    .collect();

    let x_range = x_range(record.epochs.iter().map(|e| e.epoch as f64));

    panel(
        &left,
        &accuracy,
        Panel {
            caption: "Accuracy",
            axes: ("Epoch", "Accuracy (%)"),
            clamp: Some((0.0, 100.0)),
            legend: Legend::LowerRight,
            x_range,
            log: (false, false),
        },
    )?;
    panel(
        &right,
        &cost,
        Panel {
            caption: "Cost",
            axes: ("Epoch", "Cost"),
            clamp: None,
            legend: Legend::UpperRight,
            x_range,
            log: (false, false),
        },
    )?;
    let speeds = layer_speeds(record);
    if !speeds.is_empty() {
        panel(
            &third,
            &speeds,
            Panel {
                caption: "Speed of learning",
                axes: ("Epoch", "||dC/db|| (log)"),
                clamp: None,
                legend: Legend::UpperRight,
                x_range,
                log: (false, true),
            },
        )?;
    }
    Ok(())
}

/// One series per hidden layer of the epochs' `layer_speeds`, as log10 for a log axis.
fn layer_speeds(record: &RunRecord) -> Vec<Series> {
    let layers = record
        .epochs
        .iter()
        .filter_map(|e| e.layer_speeds.as_ref().map(Vec::len))
        .max()
        .unwrap_or(0);
    (0..layers)
        .map(|k| Series {
            label: format!("hidden layer {}", k + 1),
            color: CYCLE[k % CYCLE.len()],
            points: record
                .epochs
                .iter()
                .filter_map(|e| Some((e.epoch as f64, e.layer_speeds.as_ref()?.get(k)?.log10())))
                .filter(|(_, y)| y.is_finite())
                .collect(),
        })
        .collect()
}

/// `v` with at most `decimals` decimals and no trailing zeros.
fn short(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    // A small negative number rounds to "-0".
    let s = if s == "-0" { "0" } else { s };
    s.to_string()
}

/// The label at `l = log10(v)` on a log axis: the powers of ten and their 2x and 5x, else none.
fn log_label(l: f64) -> String {
    let decade = 10f64.powf(l.floor());
    let mantissa = 10f64.powf(l) / decade;
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| (mantissa - m).abs() < 0.02 * m)
        .map_or(String::new(), |m| {
            let v = m * decade;
            if v >= 1.0 {
                format!("{}", v.round() as i64)
            } else {
                format!("{v:.0e}")
            }
        })
}

/// The x axis' range over `xs` (non-finite ones left out), with a little room so the end
/// points' markers are not cut. One x (a one-epoch run) gets half a unit either side, so its
/// point sits in the middle under the one integer label; no x gives 0..1.
fn x_range(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let (first, last) = xs
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    let (a, b) = if first.is_finite() && last > first {
        let pad = (last - first) * 0.02;
        (first - pad, last + pad)
    } else {
        (first - 0.5, first + 0.5)
    };
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

/// Draws `charts` side by side into `body`.
fn draw_charts(charts: &[Chart], body: &Area<'_>) -> Result<(), String> {
    let areas = body.split_evenly((1, charts.len().max(1)));
    for (chart, area) in charts.iter().zip(&areas) {
        let x = |v: f64| if chart.log_x { v.log10() } else { v };
        let y = |v: f64| if chart.log_y { v.log10() } else { v };
        let series: Vec<Series> = chart
            .curves
            .iter()
            .enumerate()
            .map(|(i, c)| Series {
                label: c.label.clone(),
                color: CYCLE[i % CYCLE.len()],
                points: c
                    .points
                    .iter()
                    .map(|&(a, b)| (x(a), y(b)))
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .collect(),
            })
            .collect();
        let range = x_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
        // The legend goes in the upper corner when the curves end low (falling costs).
        let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = ys().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        let ends: Vec<f64> = series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.1))
            .collect();
        let end = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
        let legend = if end < (lo + hi) / 2.0 {
            Legend::UpperRight
        } else {
            Legend::LowerRight
        };
        panel(
            area,
            &series,
            Panel {
                caption: &chart.caption,
                axes: (&chart.x_label, &chart.y_label),
                clamp: if chart.log_y { None } else { chart.y_bounds },
                legend,
                x_range: range,
                log: (chart.log_x, chart.log_y),
            },
        )?;
    }
    Ok(())
}

/// Renders `charts` side by side as a PNG in memory (600 pixels wide each, 500 high), `title`
/// (may be empty) above them; non-finite points (and x <= 0 on a log axis) are left out.
pub fn render_charts_png(charts: &[Chart], title: &str) -> Result<Vec<u8>, ReportError> {
    let width = (PLOT_WIDTH / 2) * charts.len().max(1) as u32;
    render(width, title, |body| draw_charts(charts, body))
}

/// Writes the charts of [`render_charts_png`] to `path` atomically; on error nothing is written.
pub fn plot_charts_png(
    charts: &[Chart],
    path: impl AsRef<Path>,
    title: &str,
) -> Result<(), ReportError> {
    crate::save_png(path.as_ref(), render_charts_png(charts, title))
}

/// Renders `record` as a PNG in memory: accuracy (%) per epoch on the left, cost on the right,
/// and, when the epochs recorded chapter 5's layer speeds, those on a log axis in a third
/// panel (the image is then half as wide again).
///
/// Every accuracy series that was monitored in some epoch (training, evaluation, validation,
/// test) and every cost series (training, evaluation) gets a curve and a legend entry;
/// non-finite values are left out. `title` (may be empty) goes above the panels.
pub fn render_png(record: &RunRecord, title: &str) -> Result<Vec<u8>, ReportError> {
    let speeds = record.epochs.iter().any(|e| e.layer_speeds.is_some());
    let width = if speeds {
        PLOT_WIDTH * 3 / 2
    } else {
        PLOT_WIDTH
    };
    render(width, title, |body| draw(record, body))
}

/// Encodes an RGB buffer of `width` x `height` as PNG.
pub(crate) fn encode_rgb_png(
    rgb: &[u8],
    width: u32,
    height: u32,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Writes the plot of [`render_png`] to `path` atomically; on error nothing is written.
pub fn plot_png(
    record: &RunRecord,
    path: impl AsRef<Path>,
    title: &str,
) -> Result<(), ReportError> {
    crate::save_png(path.as_ref(), render_png(record, title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_epoch_gets_an_x_axis_half_an_epoch_either_side() {
        // The axis of `--epochs 1`: epoch 0 in the middle, no negative epoch labelled.
        assert_eq!(x_range([0.0].into_iter()), (-0.5, 0.5));
        assert_eq!(x_range([7.0, 7.0].into_iter()), (6.5, 7.5));
        // Non-finite points are left out before deciding there is one point.
        assert_eq!(
            x_range([3.0, f64::NAN, f64::INFINITY].into_iter()),
            (2.5, 3.5)
        );
    }

    #[test]
    fn several_epochs_get_their_span_and_a_little_room() {
        let (a, b) = x_range((0..30).map(f64::from));
        assert!(a < 0.0 && a > -1.0 && b > 29.0 && b < 30.0, "{a}..{b}");
        let (a, b) = x_range([0.0, 1.0].into_iter());
        assert!(a < 0.0 && a > -0.1 && b > 1.0 && b < 1.1, "{a}..{b}");
    }

    #[test]
    fn no_x_or_no_usable_x_gives_zero_to_one() {
        assert_eq!(x_range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(x_range([f64::NAN].into_iter()), (0.0, 1.0));
        // Half a unit is lost to rounding at this size: a point axis is no axis.
        assert_eq!(x_range([1e300].into_iter()), (0.0, 1.0));
    }

    #[test]
    fn a_flat_series_gets_an_axis_around_its_value() {
        let (a, b) = y_range([0.3, 0.3, 0.3].into_iter(), None);
        assert!(
            (a - 0.27).abs() < 1e-12 && (b - 0.33).abs() < 1e-12,
            "{a}..{b}"
        );
        let (a, b) = y_range([-2.0].into_iter(), None);
        assert!(
            (a + 2.2).abs() < 1e-12 && (b + 1.8).abs() < 1e-12,
            "{a}..{b}"
        );
        assert_eq!(y_range([0.0, 0.0].into_iter(), None), (-1.0, 1.0));
        // Accuracy stuck at 100%: the axis stays below the clamp and still has a span.
        assert_eq!(
            y_range([100.0].into_iter(), Some((0.0, 100.0))),
            (90.0, 100.0)
        );
        assert_eq!(y_range([0.0].into_iter(), Some((0.0, 100.0))), (0.0, 1.0));
    }

    #[test]
    fn a_varying_series_is_padded_by_a_small_part_of_its_span() {
        let (a, b) = y_range([90.0, 95.0, 98.0].into_iter(), Some((0.0, 100.0)));
        assert!(
            (a - 89.36).abs() < 1e-9 && (b - 98.64).abs() < 1e-9,
            "{a}..{b}"
        );
        let (a, b) = y_range([99.0, 100.0].into_iter(), Some((0.0, 100.0)));
        assert!(a < 99.0 && b == 100.0, "{a}..{b}");
        let (a, b) = y_range([0.5, 2.5, f64::NAN, 1.0].into_iter(), None);
        assert!(
            (a - 0.34).abs() < 1e-12 && (b - 2.66).abs() < 1e-12,
            "{a}..{b}"
        );
    }

    #[test]
    fn unusable_y_values_give_zero_to_one() {
        assert_eq!(y_range(std::iter::empty(), None), (0.0, 1.0));
        assert_eq!(
            y_range([f64::NAN, f64::NEG_INFINITY].into_iter(), None),
            (0.0, 1.0)
        );
        assert_eq!(y_range([-f64::MAX, f64::MAX].into_iter(), None), (0.0, 1.0));
    }

    #[test]
    fn y_labels_have_the_decimals_their_axis_needs() {
        // A flat cost of 0.3 spans 0.06: labels 0.005 apart must not all read "0.3".
        let d = label_decimals(0.06);
        assert!(d >= 3, "{d}");
        assert_ne!(short(0.275, d), short(0.28, d));
        assert_eq!(short(90.0, label_decimals(9.3)), "90");
        assert_eq!(short(0.25, label_decimals(2.0)), "0.25");
        assert_eq!(short(-0.0001, 2), "0");
        assert_eq!(short(1234.5678, 0), "1235");
        assert_eq!(label_decimals(0.0), 3);
        assert_eq!(label_decimals(1e-30), 6);
    }
}
