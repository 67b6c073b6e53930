//! Every program's `--help`: its own about line, a default shown for every flag that has
//! one, and each default shown being the one a run without the flag records in its JSON.

mod cli_support;

use cli_support::{run_in, Scratch};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Every example program, with the book's program it reproduces where there is one.
const PROGRAMS: [(&str, Option<&str>); 10] = [
    ("network", Some("network.py")),
    ("network2", Some("network2.py")),
    ("network3", Some("network3.py")),
    ("mnist_svm", Some("mnist_svm.py")),
    ("mnist_average_darkness", Some("mnist_average_darkness.py")),
    ("mnist_expand", Some("expand_mnist.py")),
    ("book", None),
    ("modern", None),
    ("speedrun", None),
    ("custom_layer", None),
];

/// `book`'s subcommands, each with flags of its own.
const BOOK_EXPERIMENTS: [&str; 8] = [
    "overfitting",
    "more-data",
    "init",
    "learning-rates",
    "depth",
    "layer-speeds",
    "hessian",
    "hessian-free",
];

/// Flags taking a value that do nothing unless given (an output path, an opt-in method):
/// no default to show.
const OFF_UNLESS_GIVEN: [&str; 19] = [
    "json",
    "plot",
    "save",
    "load",
    "data",
    "checkpoint",
    "resume",
    "momentum",
    "ema",
    "lr-decay",
    "layer-speeds",
    "early-stopping",
    "l1",
    "sizes",
    "layers",
    "misclassified",
    "filters",
    "ensemble",
    "out",
];

/// One option of a help text: whether it takes a value, and its text (default included).
#[derive(Debug)]
struct Opt {
    takes_value: bool,
    text: String,
}

impl Opt {
    /// The `[default: ...]` clap (or the program's own help text) shows, if any.
    fn default(&self) -> Option<&str> {
        let start = self.text.find("[default: ")? + "[default: ".len();
        let len = self.text[start..].find(']')?;
        Some(&self.text[start..start + len])
    }

    /// The default's first word, without trailing punctuation: "0.003" of "0.003; 0.05 with
    /// --optimizer sgd".
    fn default_word(&self) -> &str {
        let d = self
            .default()
            .unwrap_or_else(|| panic!("no default in {:?}", self.text));
        d.split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches([';', ',', ':'])
    }
}

/// The `--help` of `args` (a program and maybe a subcommand), printed with exit code 0.
fn help(program: &str, args: &[&str]) -> String {
    let dir = std::env::temp_dir();
    let mut all: Vec<&str> = args.to_vec();
    all.push("--help");
    let run = run_in(&dir, program, &all);
    run.ok().to_string()
}

/// The options of a help text by long name. clap puts each option on a line indented by at
/// most 6 spaces; its text follows on the same line or on lines indented further.
fn options(help: &str) -> HashMap<String, Opt> {
    let mut out = HashMap::new();
    let mut current: Option<(String, Opt)> = None;
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            // clap separates paragraphs, and options in long help, by blank lines.
            continue;
        }
        if trimmed.starts_with('-') && indent <= 6 {
            if let Some((name, opt)) = current.take() {
                out.insert(name, opt);
            }
            let name = trimmed
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--"))
                .unwrap_or_else(|| panic!("an option without a long name: {line}"))
                .trim_end_matches(',')
                .to_string();
            let head = trimmed.split("  ").next().unwrap_or("");
            current = Some((
                name,
                Opt {
                    takes_value: head.contains('<'),
                    text: trimmed.to_string(),
                },
            ));
        } else if indent == 0 {
            // A section heading ("Options:", "Commands:", "Usage: ...") ends the option.
            if let Some((name, opt)) = current.take() {
                out.insert(name, opt);
            }
        } else if let Some((_, opt)) = &mut current {
            opt.text.push(' ');
            opt.text.push_str(trimmed);
        }
    }
    if let Some((name, opt)) = current {
        out.insert(name, opt);
    }
    out
}

/// The JSON record a run of `program` with `args` and `--json` writes.
fn record(program: &str, args: &[&str]) -> Value {
    let dir = Scratch::new(&format!("help-{program}"));
    let json = dir.arg("run.json");
    let mut all = args.to_vec();
    all.extend(["--threads", "1", "--json", &json]);
    dir.run(program, &all).ok();
    let text = std::fs::read_to_string(dir.path("run.json")).expect("the run's JSON record");
    serde_json::from_str(&text).expect("JSON")
}

/// Asserts that `settings[key]` is the number `shown` (the default `--help` shows for the
/// flag named in `what`).
fn same_number(settings: &Value, key: &str, shown: &str, what: &str) {
    let shown: f64 = shown
        .parse()
        .unwrap_or_else(|_| panic!("{what}: shown default {shown:?} is not a number"));
    let used = settings[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no number {key} in {settings}"));
    assert_eq!(
        used, shown,
        "{what}: --help shows {shown}, the run used {used}"
    );
}

#[test]
fn every_program_has_its_own_about_line() {
    let description = env!("CARGO_PKG_DESCRIPTION");
    let mut seen = HashSet::new();
    for (program, book) in PROGRAMS {
        let long = help(program, &[]);
        let about = long.lines().next().unwrap_or("").trim().to_string();
        assert!(!about.is_empty(), "{program}: no about line");
        assert_ne!(about, description, "{program}: the package's description");
        assert!(!about.starts_with("Usage"), "{program}: no about line");
        if let Some(book) = book {
            assert!(
                about.starts_with(&format!("{book}: ")),
                "{program}: about {about:?} does not name {book}"
            );
        }
        // `-h` and `--help` open the same way: no doc comment's long text replaces the line.
        let short = run_in(&std::env::temp_dir(), program, &["-h"]);
        assert_eq!(
            short.ok().lines().next(),
            Some(about.as_str()),
            "{program} -h"
        );
        assert!(
            seen.insert(about.clone()),
            "{program}: about {about:?} twice"
        );
    }
}

#[test]
fn every_flag_with_a_default_shows_it() {
    let mut helps: Vec<(String, String)> = PROGRAMS
        .iter()
        .map(|(p, _)| (p.to_string(), help(p, &[])))
        .collect();
    for e in BOOK_EXPERIMENTS {
        helps.push((format!("book {e}"), help("book", &[e])));
    }
    for (what, text) in helps {
        let opts = options(&text);
        assert!(
            opts.contains_key("help"),
            "{what}: options not found in\n{text}"
        );
        for (name, opt) in &opts {
            if !opt.takes_value || OFF_UNLESS_GIVEN.contains(&name.as_str()) {
                continue;
            }
            assert!(
                opt.text.contains("default: "),
                "{what}: --{name} shows no default: {}",
                opt.text
            );
        }
    }
}

#[test]
fn network_and_network2_run_with_the_defaults_their_help_shows() {
    for program in ["network", "network2"] {
        let opts = options(&help(program, &[]));
        let d = |flag: &str| opts[flag].default_word();
        let rec = record(program, &["--train-limit", "10"]);
        let s = &rec["settings"];
        for (key, flag) in [
            ("epochs", "epochs"),
            ("mini_batch", "mini-batch"),
            ("eta", "eta"),
            ("seed", "seed"),
            ("pixel_scale", "pixel-scale"),
        ] {
            same_number(s, key, d(flag), &format!("{program} --{flag}"));
        }
        let epochs = rec["epochs"].as_array().map_or(0, Vec::len);
        assert_eq!(epochs.to_string(), d("epochs"), "{program}: epochs run");
        if program == "network" {
            assert_eq!(s["sizes"][1].to_string(), d("hidden"), "network --hidden");
        } else {
            same_number(s, "lambda", d("lambda"), "network2 --lambda");
            assert_eq!(
                s["evaluation_data"],
                d("evaluation"),
                "network2 --evaluation"
            );
            let arch = s["architecture"].as_str().unwrap_or("");
            let hidden = format!("(784 -> {}, sigmoid)", d("hidden"));
            assert!(
                arch.contains(&hidden),
                "network2 --hidden: {hidden} not in {arch}"
            );
        }
    }
}

#[test]
fn network3_runs_with_the_defaults_its_help_shows() {
    let text = help("network3", &[]);
    let opts = options(&text);
    let d = |flag: &str| opts[flag].default_word();
    assert_eq!(d("preset"), "shallow");
    // The preset's own line names its epochs and eta; --epochs names the same epochs.
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("- shallow:"))
        .unwrap_or_else(|| panic!("no line for the shallow preset in\n{text}"));
    let word_before = |w: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words.iter().position(|x| x.trim_end_matches(',') == w);
        i.and_then(|i| i.checked_sub(1))
            .and_then(|i| words.get(i))
            .map(|x| x.to_string())
    };
    let word_after = |w: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words.iter().position(|x| *x == w);
        i.and_then(|i| words.get(i + 1))
            .map(|x| x.trim_end_matches([',', ')']).to_string())
    };
    let epochs = word_before("epochs").expect("the preset's epochs");
    let eta = word_after("eta").expect("the preset's eta");
    // Each of --epochs, --eta and --lambda lists its value for every preset after the
    // default's "[default: the preset's]": "(40 for dropout and ensemble; 60 for the others)".
    let for_shallow = |flag: &str| {
        let text = &opts[flag].text;
        let listed = text.split("[default: the preset's] (").nth(1);
        let listed = listed.unwrap_or_else(|| panic!("--{flag} lists no preset's value: {text}"));
        let listed = listed.split(')').next().unwrap_or("");
        let part = listed
            .split("; ")
            .find(|p| p.contains("shallow"))
            .or_else(|| listed.split("; ").find(|p| p.ends_with("the others")))
            .unwrap_or_else(|| panic!("--{flag}: no value for shallow in {listed:?}"));
        part.split_whitespace().next().unwrap_or("").to_string()
    };
    assert_eq!(
        for_shallow("epochs"),
        epochs,
        "--epochs and the preset's line"
    );
    assert_eq!(for_shallow("eta"), eta, "--eta and the preset's line");
    let rec = record("network3", &["--train-limit", "10"]);
    let s = &rec["settings"];
    same_number(s, "epochs", &epochs, "network3 --epochs (shallow)");
    same_number(s, "eta", &eta, "network3 --eta (shallow)");
    same_number(
        s,
        "lambda",
        &for_shallow("lambda"),
        "network3 --lambda (shallow)",
    );
    assert_eq!(
        s["preset"].as_str().map(str::to_lowercase).as_deref(),
        Some("shallow")
    );
    for (key, flag) in [
        ("mini_batch", "mini-batch"),
        ("seed", "seed"),
        ("pixel_scale", "pixel-scale"),
    ] {
        same_number(s, key, d(flag), &format!("network3 --{flag}"));
    }
}

#[test]
fn modern_runs_with_the_defaults_its_help_shows() {
    let opts = options(&help("modern", &[]));
    let d = |flag: &str| opts[flag].default_word();
    // A one-layer net in place of the recipe: the defaults are the same, the run cheap.
    let rec = record("modern", &["--train-limit", "10", "--layers", "softmax:10"]);
    let s = &rec["settings"];
    for (key, flag) in [
        ("epochs", "epochs"),
        ("mini_batch", "mini-batch"),
        ("eta", "eta"),
        ("ema", "ema"),
        ("weight_decay", "weight-decay"),
        ("seed", "seed"),
        ("pixel_scale", "pixel-scale"),
    ] {
        same_number(s, key, d(flag), &format!("modern --{flag}"));
    }
    assert_eq!(s["optimizer"], d("optimizer"), "modern --optimizer");
    assert_eq!(s["lr_decay"], d("lr-decay"), "modern --lr-decay");
    for flag in ["degrees", "shift", "scale"] {
        same_number(&s["augment"], flag, d(flag), &format!("modern --{flag}"));
    }
}

#[test]
fn speedrun_runs_with_the_defaults_its_help_shows() {
    let opts = options(&help("speedrun", &[]));
    let d = |flag: &str| opts[flag].default_word();
    // A one-layer net in place of the recipe: the defaults are the same, the run cheap.
    let rec = record(
        "speedrun",
        &["--train-limit", "10", "--layers", "softmax:10"],
    );
    let s = &rec["settings"];
    for (key, flag) in [
        ("mini_batch", "mini-batch"),
        ("warmup", "warmup"),
        ("weight_decay", "weight-decay"),
        ("seed", "seed"),
        ("pixel_scale", "pixel-scale"),
    ] {
        same_number(s, key, d(flag), &format!("speedrun --{flag}"));
    }
    assert_eq!(s["target"], d("target"), "speedrun --target");
    assert_eq!(d("target"), "99.0");
    // The 99.0 recipe's own settings, which its help names.
    assert_eq!(
        (s["epochs"].as_u64(), s["eta"].as_f64()),
        (Some(1), Some(0.2))
    );
    // Trained on the 10 images and the 10,000 validation images, judged on test.
    assert_eq!(s["train_images"], 10_010);
    assert_eq!(s["judged_on"], "test");
    assert!(rec["test_accuracy"].as_f64().is_some());
}

#[test]
fn custom_layer_runs_with_the_defaults_its_help_shows() {
    let opts = options(&help("custom_layer", &[]));
    let d = |flag: &str| opts[flag].default_word();
    let rec = record("custom_layer", &["--train-limit", "10"]);
    let s = &rec["settings"];
    for (key, flag) in [
        ("epochs", "epochs"),
        ("mini_batch", "mini-batch"),
        ("eta", "eta"),
        ("hidden", "hidden"),
        ("seed", "seed"),
        ("pixel_scale", "pixel-scale"),
    ] {
        same_number(s, key, d(flag), &format!("custom_layer --{flag}"));
    }
}

#[test]
fn mnist_svm_runs_with_the_defaults_its_help_shows() {
    let opts = options(&help("mnist_svm", &[]));
    let d = |flag: &str| opts[flag].default_word();
    let rec = record(
        "mnist_svm",
        &["--train-limit", "100", "--test-limit", "100"],
    );
    let s = &rec["settings"];
    for (key, flag) in [
        ("c", "c"),
        ("pixel_scale", "pixel-scale"),
        ("cache_mb", "cache-mb"),
        ("eps", "eps"),
    ] {
        same_number(s, key, d(flag), &format!("mnist_svm --{flag}"));
    }
    assert_eq!(s["kernels"], d("kernels"), "mnist_svm --kernels");
    // gamma is shown as the book's fraction and recorded as its value.
    let (a, b) = d("gamma")
        .split_once('/')
        .expect("gamma shown as a fraction");
    let shown = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
    let used: f64 = s["gamma"]
        .as_str()
        .and_then(|g| g.parse().ok())
        .expect("gamma");
    assert_eq!(used, shown, "mnist_svm --gamma");
}
