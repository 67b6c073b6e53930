//! Small grey pictures in a captioned grid as a PNG: the digits a network gets wrong (the book's
//! figure of the ensemble's 33 mistakes), or a layer's learned filters.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::Canvas;
use crate::plot::{encode_rgb_png, font, FONT};
use crate::ReportError;

/// One picture of a grid: `width x height` intensities, row-major, 0 = white paper and
/// 1 = black ink (values outside are clamped), with a caption under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height` ink intensities in [0, 1].
    pub ink: Vec<f32>,
    /// Text under the picture (may be empty).
    pub caption: String,
}

/// Grid layout in pixels.
const PAD: u32 = 6;
const CAPTION: u32 = 20;
const TITLE: u32 = 34;

/// Renders `tiles` in rows of `columns`, each pixel drawn as a `zoom x zoom` square, under
/// `title`, as a PNG in memory. Every tile must hold `width * height` values; an empty list
/// gives a picture that says so.
pub fn render_tiles_png(
    tiles: &[Tile],
    columns: usize,
    zoom: u32,
    title: &str,
) -> Result<Vec<u8>, ReportError> {
    if let Some((i, t)) = tiles
        .iter()
        .enumerate()
        .find(|(_, t)| t.ink.len() != t.width * t.height)
    {
        return Err(ReportError::Render(format!(
            "tile {i} holds {} values for {}x{} pixels",
            t.ink.len(),
            t.width,
            t.height
        )));
    }
    if columns == 0 || zoom == 0 {
        return Err(ReportError::Render(
            "a grid needs at least one column and a zoom of at least 1".into(),
        ));
    }
    let tw = tiles.iter().map(|t| t.width).max().unwrap_or(0) as u32 * zoom;
    let th = tiles.iter().map(|t| t.height).max().unwrap_or(0) as u32 * zoom;
    let cols = columns.min(tiles.len()).max(1) as u32;
    let rows = tiles.len().div_ceil(columns).max(1) as u32;
    let (cell_w, cell_h) = ((tw + 2 * PAD).max(60), th + CAPTION + PAD);
    let width = (cols * cell_w + 2 * PAD).max(360);
    let height = TITLE + rows * cell_h + PAD;
    let area = u64::from(width) * u64::from(height);
    if area > 100_000_000 {
        return Err(ReportError::Render(format!(
            "a {width}x{height} picture is too large; use fewer tiles or a smaller zoom"
        )));
    }
    let mut rgb = vec![255u8; area as usize * 3];
    draw(
        tiles,
        cols,
        (cell_w, cell_h),
        zoom,
        title,
        (width, height),
        &mut rgb,
    )
    .map_err(ReportError::Render)?;
    encode_rgb_png(&rgb, width, height)
        .map_err(|e| ReportError::Render(format!("PNG encoding: {e}")))
}

fn draw(
    tiles: &[Tile],
    cols: u32,
    (cell_w, cell_h): (u32, u32),
    zoom: u32,
    title: &str,
    size: (u32, u32),
    buf: &mut [u8],
) -> Result<(), String> {
    let backend = BitMapBackend::<plotters::backend::RGBPixel>::with_buffer_and_format(buf, size)
        .map_err(|e| e.to_string())?;
    let root = Canvas::new(backend, font().map_err(|e| e.to_string())?).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let centred = |px| {
        (FONT, px)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top))
    };
    root.draw(&Text::new(
        title.to_string(),
        (size.0 as i32 / 2, 8),
        centred(20),
    ))
    .map_err(e)?;
    if tiles.is_empty() {
        root.draw(&Text::new(
            "(none)",
            (size.0 as i32 / 2, TITLE as i32),
            centred(16),
        ))
        .map_err(e)?;
    }
    for (i, t) in tiles.iter().enumerate() {
        let (r, c) = (i as u32 / cols, i as u32 % cols);
        let x0 = (PAD + c * cell_w + (cell_w - t.width as u32 * zoom) / 2) as i32;
        let y0 = (TITLE + r * cell_h) as i32;
        let z = zoom as i32;
        for (k, &v) in t.ink.iter().enumerate() {
            let grey = (255.0 * (1.0 - v.clamp(0.0, 1.0))).round() as u8;
            if grey == 255 {
                continue;
            }
            let (x, y) = (x0 + (k % t.width) as i32 * z, y0 + (k / t.width) as i32 * z);
            root.draw(&Rectangle::new(
                [(x, y), (x + z, y + z)],
                RGBColor(grey, grey, grey).filled(),
            ))
            .map_err(e)?;
        }
        // A thin frame, so a blank filter still shows where it is.
        let (w, h) = (
            (t.width as u32 * zoom) as i32,
            (t.height as u32 * zoom) as i32,
        );
        root.draw(&Rectangle::new(
            [(x0 - 1, y0 - 1), (x0 + w, y0 + h)],
            RGBColor(200, 200, 200),
        ))
        .map_err(e)?;
        let cx = (PAD + c * cell_w + cell_w / 2) as i32;
        root.draw(&Text::new(t.caption.clone(), (cx, y0 + h + 3), centred(14)))
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Writes the grid of [`render_tiles_png`] to `path` atomically; on error nothing is written.
pub fn tiles_png(
    tiles: &[Tile],
    columns: usize,
    zoom: u32,
    title: &str,
    path: impl AsRef<Path>,
) -> Result<(), ReportError> {
    crate::save_png(path.as_ref(), render_tiles_png(tiles, columns, zoom, title))
}
