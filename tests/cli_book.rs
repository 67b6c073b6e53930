//! The book's other experiments through the programs: `book`'s subcommands print the book's
//! figure beside nndl's and write the PNG and JSON; network2's chapter 3 and chapter 5 flags
//! reach the run record; bad values of them are one-line errors.

mod cli_support;

use cli_support::{run_in, Scratch};

/// `words` split at spaces, then `paths` (scratch files) as arguments.
fn args<'a>(words: &'a str, paths: &'a [String]) -> Vec<&'a str> {
    words
        .split_whitespace()
        .chain(paths.iter().map(String::as_str))
        .collect()
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn book_hessian_measures_a_curvature_above_two_over_eta_at_the_start_and_hessian_free_learns() {
    let s = Scratch::new("book-hessian");
    let paths = [s.arg("h.json")];
    let words = "hessian --etas 2.5 --epochs 1 --train-images 1000 --hessian-images 200 \
                 --minibatches 2 --threads 1 --json";
    let run = run_in(&s.0, "book", &args(words, &paths));
    let out = run.ok();
    assert!(
        out.contains("One Hessian-vector product on 200 images"),
        "{out}"
    );
    let record = json(&s.path("h.json"));
    let r = &record["results"];
    let ratio = r["cost_ratio"]["ratio"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
    let run = &r["runs"][0];
    assert_eq!(run["two_over_eta"].as_f64(), Some(0.8));
    // The start and one epoch; the untrained net's curvature is above 2/eta = 0.8 (about 4
    // in the 50,000-image record), which is why eta 2.5's first steps overshoot.
    let lam: Vec<f64> = run["lambda_max"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(lam.len(), 2);
    assert!(lam[0] > 0.8, "lambda_max at the start {lam:?}");
    assert!(s.path("hessian.png").exists());

    let paths = [s.arg("hf.json")];
    let words = "hessian-free --epochs 1 --train-images 2000 --batch 500 --threads 1 --json";
    let r = run_in(&s.0, "book", &args(words, &paths));
    r.ok();
    let runs = &json(&s.path("hf.json"))["results"]["runs"];
    for run in runs.as_array().unwrap() {
        let cost = &run["training_cost"][0];
        let (start, end) = (cost[0].as_f64().unwrap(), cost[1].as_f64().unwrap());
        assert!(
            end < start / 2.0,
            "{}: cost {start} -> {end}",
            run["method"]
        );
    }
    // Four steps, each at least one Hessian-vector product.
    assert!(runs[0]["hvp_products"][0][1].as_u64().unwrap() >= 4);
}

#[test]
fn book_depth_and_layer_speeds_print_the_books_numbers_and_write_figure_and_record() {
    let s = Scratch::new("book");
    let paths = [s.arg("depth.json")];
    let r = run_in(
        &s.0,
        "book",
        &args("depth --layers 1 --epochs 1 --json", &paths),
    );
    let out = r.ok();
    assert!(
        out.contains("[784, 30, 10]: validation accuracy nndl") && out.contains("the book 96.48%"),
        "{out}"
    );
    // The default figure name is the subcommand's.
    assert!(std::fs::read(s.path("depth.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let acc = json(&s.path("depth.json"))["results"][0]["validation_accuracy"][0]
        .as_f64()
        .unwrap();
    assert!(acc > 0.85, "one epoch of [784, 30, 10] at eta 0.1: {acc}");

    let paths = [s.arg("speeds.json")];
    let r = run_in(
        &s.0,
        "book",
        &args(
            "layer-speeds --layers 2 --epochs 3 --seeds 2 --plot speeds.png --json",
            &paths,
        ),
    );
    let out = r.ok();
    assert!(out.contains("the book [0.066, 0.31]"), "{out}");
    let speeds = &json(&s.path("speeds.json"))["results"][0]["speeds"];
    // Two seeds, a measurement at the start and after each of 3 epochs, two hidden layers.
    assert_eq!(speeds.as_array().unwrap().len(), 2);
    for seed in speeds.as_array().unwrap() {
        let m = seed.as_array().unwrap();
        assert_eq!(m.len(), 4);
        let (first, second) = (m[0][0].as_f64().unwrap(), m[0][1].as_f64().unwrap());
        assert!(
            first < second,
            "the earlier layer learns slower: {first} vs {second}"
        );
    }
    assert!(s.path("speeds.png").exists());
}

#[test]
fn network2_exercise_flags_reach_the_record() {
    let s = Scratch::new("exercises");
    let paths = [s.arg("run.json")];
    let words = "--train-limit 500 --epochs 2 --threads 1 --accuracy-only --sizes 784,20,20,10 \
                 --activation tanh --momentum 0.5 --l1 0.1 --eta-schedule --layer-speeds 100 \
                 --plot plot.png --json";
    let r = run_in(&s.0, "network2", &args(words, &paths));
    let out = r.ok();
    assert!(
        out.contains("Before training: ||dC/db|| per hidden layer:"),
        "{out}"
    );
    let rec = json(&s.path("run.json"));
    let settings = &rec["settings"];
    assert_eq!(settings["momentum"], 0.5);
    assert_eq!(settings["eta_schedule"], true);
    assert_eq!(settings["regularization"], "L1");
    assert!(settings["architecture"].as_str().unwrap().contains("tanh"));
    assert_eq!(
        settings["layer_speeds_at_start"].as_array().unwrap().len(),
        2
    );
    let epochs = rec["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[1]["layer_speeds"].as_array().unwrap().len(), 2);
    // The plot gets the speeds' panel: 1800 pixels wide instead of 1200.
    let png = std::fs::read(s.path("plot.png")).unwrap();
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1800);

    // network3 has the monitor too: one speed per hidden layer, the conv-pool layer's included.
    let paths = [s.arg("conv.json")];
    let words = "--train-limit 200 --epochs 1 --threads 1 --layer-speeds 50 --json";
    let layers = "conv:4x5x5,pool:2,relu fc:20,relu softmax:10";
    let a: Vec<&str> = ["--layers", layers]
        .into_iter()
        .chain(args(words, &paths))
        .collect();
    run_in(&s.0, "network3", &a).ok();
    let speeds = &json(&s.path("conv.json"))["epochs"][0]["layer_speeds"];
    assert_eq!(speeds.as_array().unwrap().len(), 2, "{speeds}");

    for (bad, why) in [
        (
            "--momentum 1.5",
            "'--momentum <MU>': \"1.5\" must be in [0, 1)",
        ),
        ("--l1 0.1 --lambda 1", "--lambda"),
        ("--sizes 784,30,9", "10 outputs last"),
        (
            "--lr-decay exp:2",
            "--lr-decay \"exp:2\": the factor must be in (0, 1]",
        ),
        ("--lr-decay cosine --eta-schedule", "give one"),
    ] {
        let words = format!("--train-limit 100 --epochs 1 --threads 1 {bad}");
        let e = run_in(&s.0, "network2", &args(&words, &[]));
        assert!(e.one_line_error().contains(why), "{bad}: {}", e.stderr);
    }
}
