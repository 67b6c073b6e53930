//! Training throughput of the book's architectures, nndl beside PyTorch, measured side by side
//! in one invocation: for each net and mini-batch size the two alternate (nndl, PyTorch,
//! nndl, PyTorch) and the medians and their ratio are printed with the load average.
//!
//! `cargo bench --bench throughput -- [--nets A,B,C,D,E] [--batches 10,256] [--seconds 2] [--rounds 2] [--no-torch]`
//!
//! Nets (docs/results/performance.md): A [784,30,10] sigmoid + quadratic (network.py); B FC(784,100) sigmoid +
//! softmax (network3 shallow); C ConvPool(20,5x5) + FC100 + softmax; D ConvPool 20 + 40, FC100,
//! ReLU; E as D with FC1000, FC1000 and dropout 0.5. PyTorch runs `benches/pytorch_reference.py`
//! with `torch.set_num_threads` equal to nndl's thread count.

use nn::{Cost, Epoch, Init, Network, Regularization, Sgd};
use std::process::Command;
use std::time::Instant;

fn build(net: &str) -> Network<f32> {
    let spec = match net {
        "A" => return Network::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 1).expect("net A"),
        "B" => "fc:100,sigmoid softmax:10",
        "C" => "conv:20x5x5,pool:2,sigmoid fc:100,sigmoid softmax:10",
        "D" => "conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10",
        "E" => "conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:1000,relu,dropout:0.5 fc:1000,relu,dropout:0.5 softmax:10,dropout:0.5",
        "F" => "fc:1000,relu,dropout:0.5 fc:1000,relu,dropout:0.5 softmax:10,dropout:0.5",
        other => panic!("unknown net {other}"),
    };
    nn::spec::build(spec, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 1).expect("valid spec")
}

fn nndl_rate(
    net: &str,
    batch: usize,
    seconds: f64,
    data: &mnist::Dataset,
    reg: Regularization,
) -> f64 {
    let mut n = build(net);
    // Calibrate on a slice, then train on enough images to fill `seconds`.
    let probe = data.take((batch * 20).min(data.len()));
    let t = Instant::now();
    let mut sgd = Sgd::new(0.01, reg);
    let epoch = Epoch::in_order(0, batch);
    n.train_epoch(&probe, &mut sgd, epoch, |_| {})
        .expect("train");
    let per_image = t.elapsed().as_secs_f64() / probe.len() as f64;
    let count = ((seconds / per_image) as usize).clamp(batch * 10, data.len()) / batch * batch;
    let set = data.take(count);
    // Whole epochs over `set` until `seconds` have passed (a fast net at b256 finishes the
    // 50,000 images in a fraction of a second).
    let (mut images, mut spent) = (0usize, 0.0f64);
    while spent < seconds {
        let stats = n.train_epoch(&set, &mut sgd, epoch, |_| {}).expect("train");
        images += stats.images;
        spent += stats.seconds;
    }
    images as f64 / spent
}

fn torch_rate(net: &str, batch: usize, seconds: f64, threads: usize) -> Option<f64> {
    let here = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{here}/benches/pytorch_reference.py"))
        .args([
            "--net",
            net,
            "--batch",
            &batch.to_string(),
            "--threads",
            &threads.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("images_per_second ")?.trim().parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn arg<'a>(args: &'a [String], name: &str, default: &'a str) -> &'a str {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |s| s.as_str())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nets: Vec<String> = arg(&args, "--nets", "A,B,C,D,E")
        .split(',')
        .map(String::from)
        .collect();
    let batches: Vec<usize> = arg(&args, "--batches", "10,256")
        .split(',')
        .filter_map(|b| b.parse().ok())
        .collect();
    let seconds: f64 = arg(&args, "--seconds", "2").parse().unwrap_or(2.0);
    let rounds: usize = arg(&args, "--rounds", "2").parse().unwrap_or(2);
    let no_torch = args.iter().any(|a| a == "--no-torch");
    // `--l2 LAMBDA`: network3's in-graph L2 term (the PyTorch side has none: compare without).
    let l2: f64 = arg(&args, "--l2", "0").parse().unwrap_or(0.0);
    let reg = if l2 > 0.0 {
        Regularization::InGraph {
            lmbda: l2,
            num_batches: 5000,
        }
    } else {
        Regularization::None
    };
    let threads = rayon::current_num_threads();
    let dir = mnist::find_data_dir(None).expect("MNIST data (data/mnist)");
    let data = mnist::load_data(&dir).expect("load MNIST").training;
    println!("training throughput, images/s, f32, {threads} threads (nndl rayon, torch.set_num_threads({threads})); {rounds} alternating rounds of ~{seconds} s each");
    println!("| net | batch | nndl | PyTorch | nndl / PyTorch | load average |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &b in &batches {
        for net in &nets {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                ours.push(nndl_rate(net, b, seconds, &data, reg));
                if !no_torch {
                    if let Some(r) = torch_rate(net, b, seconds, threads) {
                        theirs.push(r);
                    }
                }
            }
            let o = median(ours);
            if theirs.is_empty() {
                println!("| {net} | {b} | {o:.0} | n/a | n/a | {} |", load());
            } else {
                let t = median(theirs);
                println!(
                    "| {net} | {b} | {o:.0} | {t:.0} | {:.2}x | {} |",
                    o / t,
                    load()
                );
            }
        }
    }
}
