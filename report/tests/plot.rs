mod common;

use common::Scratch;
use nndl_report::{
    plot_png, render_png, EpochRecord, ReportError, RunRecord, PLOT_HEIGHT, PLOT_WIDTH,
};
use serde_json::json;

/// The series colours of the plot (training, evaluation, validation, test).
const TRAINING: [u8; 3] = [31, 119, 180];
const EVALUATION: [u8; 3] = [255, 127, 14];
const VALIDATION: [u8; 3] = [44, 160, 44];
const TEST: [u8; 3] = [214, 39, 40];

fn three_epochs() -> RunRecord {
    let mut run = RunRecord::new("network2", json!({"eta": 0.5}));
    for (i, (acc, cost)) in [(0.90, 0.60), (0.93, 0.45), (0.945, 0.41)]
        .into_iter()
        .enumerate()
    {
        run.push_epoch(EpochRecord {
            training_accuracy: Some(acc + 0.02),
            evaluation_accuracy: Some(acc),
            training_cost: Some(cost - 0.05),
            evaluation_cost: Some(cost),
            ..EpochRecord::new(i, 1000, 0.1, 0.2)
        });
    }
    run.finish(0.6);
    run
}

/// Width, height, bit depth and colour type from the IHDR chunk, after checking the signature.
fn ihdr(png: &[u8]) -> (u32, u32, u8, u8) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20), png[24], png[25])
}

/// How many pixels have exactly `color`.
fn count(png: &[u8], color: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()]
        .chunks_exact(3)
        .filter(|p| *p == color)
        .count()
}

#[test]
fn plot_of_three_epochs_is_a_png_of_the_right_size() {
    let dir = Scratch::new("plot-three");
    let path = dir.path().join("curves.png");
    std::fs::write(&path, b"old plot").unwrap();
    plot_png(&three_epochs(), &path, "network2 [784, 30, 10], eta 0.5").unwrap();
    let png = std::fs::read(&path).unwrap();
    // 8-bit RGB (colour type 2).
    assert_eq!(ihdr(&png), (PLOT_WIDTH, PLOT_HEIGHT, 8, 2));
    assert_eq!((PLOT_WIDTH, PLOT_HEIGHT), (1200, 500));
    assert_eq!(dir.listing(), vec!["curves.png"]);
}

#[test]
fn every_monitored_series_is_drawn_and_no_other() {
    let png = render_png(&three_epochs(), "").unwrap();
    assert!(count(&png, TRAINING) > 100, "training curves");
    assert!(count(&png, EVALUATION) > 100, "evaluation curves");
    assert_eq!(count(&png, VALIDATION), 0, "no validation data");
    assert_eq!(count(&png, TEST), 0, "no test data");
    // Mostly white background, and some dark pixels (axes, text).
    assert!(count(&png, [255, 255, 255]) > (PLOT_WIDTH * PLOT_HEIGHT / 2) as usize);
    assert!(count(&png, [0, 0, 0]) > 500, "axes and labels");

    let mut run = RunRecord::new("network3", json!({}));
    for i in 0..3 {
        run.push_epoch(EpochRecord {
            validation_accuracy: Some(0.95 + 0.01 * i as f64),
            test_accuracy: Some(0.94 + 0.01 * i as f64),
            ..EpochRecord::new(i, 10, 1.0, 1.0)
        });
    }
    let png = render_png(&run, "network3").unwrap();
    assert!(count(&png, VALIDATION) > 100);
    assert!(count(&png, TEST) > 100);
    assert_eq!(count(&png, TRAINING), 0);
    assert_eq!(count(&png, EVALUATION), 0);
}

#[test]
fn degenerate_records_still_render() {
    // No epochs at all.
    let png = render_png(&RunRecord::new("empty", json!({})), "empty").unwrap();
    assert_eq!(ihdr(&png).0, PLOT_WIDTH);
    // One epoch, constant values, and non-finite costs (left out).
    let mut run = RunRecord::new("one", json!({}));
    run.push_epoch(EpochRecord {
        test_accuracy: Some(1.0),
        training_cost: Some(f64::NAN),
        evaluation_cost: Some(f64::INFINITY),
        ..EpochRecord::new(7, 10, 1.0, 1.0)
    });
    let png = render_png(&run, "").unwrap();
    assert!(count(&png, TEST) > 10);
    assert_eq!(count(&png, TRAINING), 0);
    // Extreme values and epochs: no panic, still a PNG.
    let mut run = RunRecord::new("extreme", json!({}));
    for (i, cost) in [f64::MAX, -f64::MAX, 1e-300].into_iter().enumerate() {
        run.push_epoch(EpochRecord {
            training_cost: Some(cost),
            training_accuracy: Some(95.0), // a percentage passed by mistake
            ..EpochRecord::new(usize::MAX - 3 + i, 10, 1.0, 1.0)
        });
    }
    assert_eq!(ihdr(&render_png(&run, "extreme").unwrap()).1, PLOT_HEIGHT);
}

#[test]
fn plot_into_a_missing_directory_names_the_path() {
    let dir = Scratch::new("plot-missing");
    let path = dir.path().join("nope").join("curves.png");
    let err = plot_png(&three_epochs(), &path, "t").unwrap_err();
    assert!(matches!(&err, ReportError::Write { path: p, .. } if p == &path));
    assert!(dir.listing().is_empty());
}

/// The RGB pixels and size of a PNG.
fn decode(png: &[u8]) -> (Vec<u8>, u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (buf, info.width, info.height)
}

#[test]
fn tiles_are_drawn_at_their_size_and_shade() {
    use nndl_report::{render_tiles_png, Tile};
    let tile = |ink: Vec<f32>, caption: &str| Tile {
        width: 4,
        height: 4,
        ink,
        caption: caption.into(),
    };
    let mut corner = vec![0.0; 16];
    corner[0] = 1.0;
    corner[15] = 0.5;
    // Tile 0 all ink, tile 1 blank, tile 2 one black and one mid-grey pixel; no text.
    let tiles = [
        tile(vec![1.0; 16], ""),
        tile(vec![0.0; 16], ""),
        tile(corner, ""),
    ];
    let (rgb, w, h) = decode(&render_tiles_png(&tiles, 2, 10, "").unwrap());
    let n = |c: [u8; 3]| rgb.chunks_exact(3).filter(|p| *p == c).count();
    // Each source pixel is a 10x10 square: 16 + 1 black ones, 1 grey one.
    assert_eq!(n([0, 0, 0]), 1_700);
    assert_eq!(n([128, 128, 128]), 100);
    // Captions add dark pixels under the tiles, and a third tile adds a row.
    let (rgb2, w2, h2) =
        decode(&render_tiles_png(&[tile(vec![0.0; 16], "7 → 2")], 2, 10, "").unwrap());
    assert!(
        rgb2.chunks_exact(3).filter(|p| p[0] < 100).count() > 20,
        "caption drawn"
    );
    assert_eq!(w2, w);
    assert!(h > h2, "{h} vs {h2}");
}

#[test]
fn a_tile_of_the_wrong_size_is_an_error_and_nothing_is_written() {
    use nndl_report::{tiles_png, Tile};
    let dir = Scratch::new("tiles-bad");
    let path = dir.path().join("t.png");
    let t = Tile {
        width: 3,
        height: 3,
        ink: vec![0.5; 8],
        caption: String::new(),
    };
    let err = tiles_png(&[t], 4, 2, "bad", &path).unwrap_err().to_string();
    assert!(err.contains("8 values for 3x3"), "{err}");
    assert!(!path.exists());
    // No tiles at all is a picture that says so, not an error.
    tiles_png(&[], 4, 2, "empty", &path).unwrap();
    assert!(path.exists());
}

#[test]
fn charts_side_by_side_draw_each_curve_in_its_colour_on_log_and_linear_axes() {
    use nndl_report::{render_charts_png, Chart, Curve};
    let curve = |label: &str, ys: &[f64]| Curve {
        label: label.into(),
        points: [100.0, 1000.0, 10000.0, 50000.0]
            .into_iter()
            .zip(ys.iter().copied())
            .collect(),
    };
    let log = Chart {
        caption: "More training data".into(),
        x_label: "Training set size".into(),
        y_label: "Accuracy (%)".into(),
        curves: vec![
            curve("neural network", &[69.0, 88.9, 94.9, 96.0]),
            curve("SVM", &[25.1, 83.9, 92.5, 94.5]),
        ],
        log_x: true,
        y_bounds: Some((0.0, 100.0)),
        log_y: false,
    };
    let linear = Chart {
        caption: "Cost".into(),
        log_y: true,
        // A point at x = 0 and a NaN are left out, not an error.
        curves: vec![Curve {
            label: "eta 0.25".into(),
            points: vec![(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN), (3.0, 0.3)],
        }],
        ..Chart::default()
    };
    let png = render_charts_png(&[log.clone(), linear], "two panels").unwrap();
    assert_eq!(ihdr(&png), (PLOT_WIDTH, PLOT_HEIGHT, 8, 2));
    // First curve of each panel in the cycle's first colour, the SVM in the second.
    assert!(count(&png, TRAINING) > 200, "both first curves");
    assert!(count(&png, EVALUATION) > 100, "the SVM curve");
    assert_eq!(count(&png, VALIDATION), 0, "no third curve");
    let one = render_charts_png(&[log], "").unwrap();
    assert_eq!(ihdr(&one).0, PLOT_WIDTH / 2, "600 pixels a panel");
}

#[test]
fn recorded_layer_speeds_get_a_third_panel() {
    let mut run = three_epochs();
    assert_eq!(ihdr(&render_png(&run, "").unwrap()).0, PLOT_WIDTH);
    for e in &mut run.epochs {
        e.layer_speeds = Some(vec![
            0.01 / (e.epoch + 1) as f64,
            0.3 / (e.epoch + 1) as f64,
        ]);
    }
    let png = render_png(&run, "").unwrap();
    assert_eq!(ihdr(&png).0, PLOT_WIDTH * 3 / 2);
    // The two layers' curves in the cycle's first two colours, beside the same colours of
    // the training and evaluation curves of the other panels.
    let plain = render_png(&three_epochs(), "").unwrap();
    assert!(count(&png, TRAINING) > count(&plain, TRAINING) + 100);
    assert!(count(&png, EVALUATION) > count(&plain, EVALUATION) + 100);
}
