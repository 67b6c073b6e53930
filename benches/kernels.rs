//! Kernel benchmark (issue: foundation). Prints three tables:
//! 1. single-thread GEMM GFLOP/s at the book's shapes, for the backend nndl uses (the `gemm`
//!    crate, via `tensor::gemm`) beside `matrixmultiply`, so the choice is measured;
//! 2. conv + max-pool forward and forward+backward images/s through the autograd ops;
//! 3. the tape's per-step overhead on the [784,30,10] sigmoid net at mini-batch 10, beside
//!    the pure FLOP time of that step at the GEMM rate measured in table 1;
//! 4. the small-side FC kernels per ISA;
//! 5. the modern recipe's layers, single thread: each 3x3 convolution's forward, filter
//!    gradient and input gradient in GFLOP/s beside a 1024^3 GEMM (`NNDL_CONV=im2col` times
//!    the im2col + GEMM path instead of the direct kernels), and batch norm's passes;
//! 6. the speed-run recipes' convolutions the same way, in bf16 and in f32.
//!
//! Run: `cargo bench --bench kernels` (add `-- --quick` for fewer repetitions,
//! `-- --speedrun-layers` for table 6 alone).

use autograd::Graph;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;
use tensor::{MatMut, MatRef, Tensor};

/// The `rows x cols` operand over `d`, which holds it transposed when `t`.
fn op(d: &[f32], rows: usize, cols: usize, t: bool) -> MatRef<'_, f32> {
    if t {
        MatRef::new(d, cols, rows).t()
    } else {
        MatRef::new(d, rows, cols)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median seconds per call of `f`, each sample timing enough calls to last ~`min_s`.
fn time(min_s: f64, samples: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((min_s / once) as usize).clamp(1, 1_000_000);
    let v = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    median(v)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (min_s, samples) = if quick { (0.02, 3) } else { (0.1, 7) };
    if std::env::args().any(|a| a == "--speedrun-layers") {
        speedrun_layers(min_s, samples);
        return;
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let threads = rayon::current_num_threads();
    println!(
        "nndl kernel benchmark: {threads} rayon threads, load average {}",
        load()
    );

    println!("\n## GEMM, single thread, f32 (M x K x N; C[MxN] = A[MxK] B[KxN])");
    println!("| shape | what | nndl backend (gemm crate) GFLOP/s | matrixmultiply GFLOP/s |");
    println!("| --- | --- | --- | --- |");
    // The book's products per image (im2col rows are the output positions: 24x24 for conv1,
    // 8x8 for conv2), each at mini-batch 10 and at 256.
    let layers: [(usize, usize, usize, &str); 6] = [
        (1, 784, 30, "FC 784->30"),
        (1, 784, 100, "FC 784->100"),
        (576, 25, 20, "conv1 im2col"),
        (64, 500, 40, "conv2 im2col"),
        (1, 640, 1000, "FC 640->1000"),
        (1, 1000, 1000, "FC 1000->1000"),
    ];
    let shapes = [10, 256].into_iter().flat_map(|batch| {
        layers
            .iter()
            .map(move |&(rows, k, n, what)| (rows * batch, k, n, format!("{what}, b{batch}")))
    });
    let mut rate_small = 0.0;
    for (m, k, n, what) in shapes {
        let a = Tensor::<f32>::randn(&[m, k], 0.0, 1.0, &mut rng).unwrap();
        let b = Tensor::<f32>::randn(&[k, n], 0.0, 1.0, &mut rng).unwrap();
        let mut c = vec![0.0f32; m * n];
        let flop = 2.0 * (m * k * n) as f64;
        let t1 = time(min_s, samples, || {
            tensor::gemm(
                1.0,
                a.mat(),
                b.mat(),
                0.0,
                MatMut::new(black_box(&mut c), m, n),
            )
        });
        let t2 = time(min_s, samples, || {
            tensor::gemm_reference(
                1.0,
                a.mat(),
                b.mat(),
                0.0,
                MatMut::new(black_box(&mut c), m, n),
            )
        });
        if (m, k, n) == (10, 784, 30) {
            rate_small = flop / t1;
        }
        println!(
            "| {m}x{k}x{n} | {what} | {:.1} | {:.1} |",
            flop / t1 / 1e9,
            flop / t2 / 1e9
        );
    }

    println!(
        "\n## the GEMMs the layers issue, as issued (per image for conv; T = operand transposed)"
    );
    println!("| call | M x K x N | GFLOP/s |");
    println!("| --- | --- | --- |");
    let calls: [(&str, usize, usize, usize, bool, bool); 9] = [
        ("conv1 forward W.cols", 20, 25, 576, false, false),
        ("conv1 dW dout.cols^T", 20, 576, 25, false, true),
        ("conv2 forward W.cols", 40, 500, 64, false, false),
        ("conv2 dW dout.cols^T", 40, 64, 500, false, true),
        ("conv2 dcols W^T.dout", 500, 40, 64, true, false),
        ("FC 2880->100 x.W^T, b10", 10, 2880, 100, false, true),
        ("FC 2880->100 dW dY^T.x, b10", 100, 10, 2880, true, false),
        ("FC 640->1000 x.W^T, b10", 10, 640, 1000, false, true),
        ("FC 1000->1000 dW dY^T.x, b10", 1000, 10, 1000, true, false),
    ];
    for (what, m, k, n, ta, tb) in calls {
        let a = Tensor::<f32>::randn(&[m * k], 0.0, 1.0, &mut rng).unwrap();
        let b = Tensor::<f32>::randn(&[k * n], 0.0, 1.0, &mut rng).unwrap();
        let mut c = vec![0.0f32; m * n];
        let t = time(min_s, samples, || {
            let (av, bv) = (op(a.data(), m, k, ta), op(b.data(), k, n, tb));
            tensor::gemm(1.0, av, bv, 0.0, MatMut::new(black_box(&mut c), m, n))
        });
        println!(
            "| {what} | {m}x{k}x{n} | {:.1} |",
            2.0 * (m * k * n) as f64 / t / 1e9
        );
    }

    small_kernels(min_s, samples);
    modern_layers(min_s, samples);
    speedrun_layers(min_s, samples);

    println!("\n## conv + max-pool through autograd, f32, {threads} threads (images/s)");
    println!("| layer | batch | forward | forward + backward |");
    println!("| --- | --- | --- | --- |");
    for (name, c, h, f) in [
        ("conv 20x1x5x5 + pool 2 (28x28)", 1, 28, 20),
        ("conv 40x20x5x5 + pool 2 (12x12)", 20, 12, 40),
    ] {
        for batch in [10, 256] {
            let mut g = Graph::<f32>::new();
            let w = g.parameter(
                "w",
                Tensor::randn(&[f, c, 5, 5], 0.0, 0.1, &mut rng).unwrap(),
            );
            let b = g.parameter("b", Tensor::randn(&[f], 0.0, 0.1, &mut rng).unwrap());
            let x = Tensor::<f32>::randn(&[batch, c, h, h], 0.0, 1.0, &mut rng).unwrap();
            let step = |g: &mut Graph<f32>, backward: bool| {
                let xv = g
                    .input_with(x.dims(), |d| d.copy_from_slice(x.data()))
                    .unwrap();
                let y = g.conv2d(xv, w, Some(b)).unwrap();
                let p = g.max_pool2d(y, 2).unwrap();
                let s = g.sum(p).unwrap();
                if backward {
                    g.backward(s).unwrap();
                }
                g.reset();
            };
            let tf = time(min_s, samples, || g.no_grad(|g| step(g, false)));
            let tb = time(min_s, samples, || step(&mut g, true));
            println!(
                "| {name} | {batch} | {:.0} | {:.0} |",
                batch as f64 / tf,
                batch as f64 / tb
            );
        }
    }

    println!(
        "\n## tape overhead: [784,30,10] sigmoid net, quadratic cost, mini-batch 10, f32, one step"
    );
    let mut g = Graph::<f32>::new();
    let w1 = g.parameter("w1", Tensor::randn(&[30, 784], 0.0, 1.0, &mut rng).unwrap());
    let b1 = g.parameter("b1", Tensor::randn(&[30], 0.0, 1.0, &mut rng).unwrap());
    let w2 = g.parameter("w2", Tensor::randn(&[10, 30], 0.0, 1.0, &mut rng).unwrap());
    let b2 = g.parameter("b2", Tensor::randn(&[10], 0.0, 1.0, &mut rng).unwrap());
    let x = Tensor::<f32>::rand_uniform(&[10, 784], 0.0, 1.0, &mut rng).unwrap();
    let y = Tensor::<f32>::rand_uniform(&[10, 10], 0.0, 1.0, &mut rng).unwrap();
    let t = time(min_s, samples, || {
        let xv = g
            .input_with(&[10, 784], |d| d.copy_from_slice(x.data()))
            .unwrap();
        let yv = g
            .input_with(&[10, 10], |d| d.copy_from_slice(y.data()))
            .unwrap();
        let z1 = g.linear(xv, w1, Some(b1)).unwrap();
        let a1 = g.sigmoid(z1).unwrap();
        let z2 = g.linear(a1, w2, Some(b2)).unwrap();
        let a2 = g.sigmoid(z2).unwrap();
        let c = g.quadratic_cost(a2, yv).unwrap();
        g.backward(c).unwrap();
        g.reset();
    });
    // forward: 2*10*(784*30 + 30*10); backward: dW1, dW2, dX2 (the images need no gradient).
    let flop = 2.0 * 10.0 * (784.0 * 30.0 + 300.0) * 2.0 + 2.0 * 10.0 * 300.0;
    let pure = flop / rate_small;
    println!(
        "| measured step | pure GEMM time at {:.1} GFLOP/s | overhead |",
        rate_small / 1e9
    );
    println!("| --- | --- | --- |");
    println!(
        "| {:.2} us | {:.2} us | {:.2} us ({:.0}%) |",
        t * 1e6,
        pure * 1e6,
        (t - pure) * 1e6,
        100.0 * (t - pure) / t
    );
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Table 4: the small-side kernels (`tensor::bench_api`) at the book's FC shapes, mini-batch 10,
/// per ISA, 1 and 2 threads: GFLOP/s of each product and of the fused backward + SGD step.
fn small_kernels(min_s: f64, samples: usize) {
    use tensor::bench_api::{
        best_isa, linear_backward_step, small_gemm_with, step_scratch_len, Isa, Kernel, Shape3,
    };
    use tensor::{with_threads, LinearStep};
    println!("\n## the conv layers' per-image products, 1 thread, GFLOP/s: unpacked kernels vs packing GEMM");
    println!("| product | M x K x N | small-side kernels | gemm crate (packing) |");
    println!("| --- | --- | --- | --- |");
    for (what, shape, m, k, n) in [
        ("conv1 forward W.cols", Shape3::Nn, 20, 25, 576),
        ("conv1 dW = dout.cols^T", Shape3::Nt, 20, 576, 25),
        ("conv2 forward W.cols", Shape3::Nn, 40, 500, 64),
        ("conv2 dW = dout.cols^T", Shape3::Nt, 40, 64, 500),
        ("conv2 dcols = W^T.dout", Shape3::Tn, 500, 40, 64),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let (ta, tb) = match shape {
            Shape3::Nt => (false, true),
            Shape3::Nn => (false, false),
            Shape3::Tn => (true, false),
        };
        let gf = 2.0 * (m * k * n) as f64 / 1e9;
        let ours = with_threads(1, || {
            time(min_s, samples, || {
                let kernel = Kernel {
                    isa: best_isa(),
                    parallel: false,
                };
                let (av, bv) = (op(&a, m, k, ta), op(&b, k, n, tb));
                small_gemm_with(kernel, shape, 1.0, av, bv, 0.0, MatMut::new(&mut c, m, n))
            })
        });
        let packed = with_threads(1, || {
            time(min_s, samples, || {
                let (av, bv) = (op(&a, m, k, ta), op(&b, k, n, tb));
                tensor::gemm_packed(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n))
            })
        });
        println!(
            "| {what} | {m}x{k}x{n} | {:.0} | {:.0} |",
            gf / ours,
            gf / packed
        );
    }

    println!("\n## small-side kernels (FC layers at mini-batch 10), f32, GFLOP/s, 1 / 2 threads");
    println!("| layer | ISA | x w^T (Nt) | dy w (Nn) | dy^T x (Tn) | fused backward + step |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (k, n) in [(784usize, 100usize), (640, 1000), (1000, 1000)] {
        let m = 10;
        let fill =
            |len: usize| -> Vec<f32> { (0..len).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect() };
        let (x, w, dy) = (fill(m * k), fill(n * k), fill(m * n));
        let mut out = vec![0.0f32; n * k];
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            if !isa.available() {
                continue;
            }
            let flops = 2.0 * (m * k * n) as f64 / 1e9;
            // GFLOP/s at 1 / 2 threads of `times` products of this shape per call.
            let rate_times = |times: f64, f: &mut dyn FnMut()| -> String {
                let one = with_threads(1, || time(min_s, samples, &mut *f));
                let two = with_threads(2, || time(min_s, samples, &mut *f));
                format!("{:.0} / {:.0}", times * flops / one, times * flops / two)
            };
            let rate = |f: &mut dyn FnMut()| rate_times(1.0, f);
            let kernel = Kernel {
                isa,
                parallel: true,
            };
            let nt = rate(&mut || {
                let (a, b) = (op(&x, m, k, false), op(&w, k, n, true));
                let c = MatMut::new(&mut out, m, n);
                small_gemm_with(kernel, Shape3::Nt, 1.0, a, b, 0.0, c)
            });
            let nn = rate(&mut || {
                let (a, b) = (op(&dy, m, n, false), op(&w, n, k, false));
                let c = MatMut::new(&mut out, m, k);
                small_gemm_with(kernel, Shape3::Nn, 1.0, a, b, 0.0, c)
            });
            let tn = rate(&mut || {
                let (a, b) = (op(&dy, n, m, true), op(&x, m, k, false));
                let c = MatMut::new(&mut out, n, k);
                small_gemm_with(kernel, Shape3::Tn, 1.0, a, b, 0.0, c)
            });
            let mut wt = w.clone();
            let mut dx = vec![0.0f32; m * k];
            let step = LinearStep {
                m,
                k,
                n,
                x: &x,
                dyt: &dy,
                eta: 1e-9,
                decay: 1.0,
            };
            let mut sc = vec![0.0f32; step_scratch_len(m, k, n)];
            // The step does the work of two products (dx and the weight gradient).
            let st = rate_times(2.0, &mut || {
                black_box(linear_backward_step(
                    kernel,
                    &step,
                    &mut wt,
                    Some((&mut dx, 0.0)),
                    &mut sc,
                ));
            });
            println!("| FC {k}->{n} | {isa:?} | {nt} | {nn} | {tn} | {st} |");
        }
    }
}

/// The 1024^3 single-thread GEMM rate, GFLOP/s: the scale the layer tables are read against.
fn gemm_rate(min_s: f64, samples: usize) -> f64 {
    let n = 1024;
    let (a, b) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
    let mut c = vec![0.0f32; n * n];
    let t = time(min_s, samples, || {
        let (a, b) = (MatRef::new(&a, n, n), MatRef::new(&b, n, n));
        tensor::gemm(1.0, a, b, 0.0, MatMut::new(black_box(&mut c), n, n))
    });
    2.0 * (n * n * n) as f64 / t / 1e9
}

/// One row per padded 3x3 convolution `(c_in, h = w, f)` at mini-batch 64, single thread:
/// forward, filter gradient and input gradient GFLOP/s, in bf16 when `bf16` (and the CPU
/// has it).
fn conv_layers(min_s: f64, samples: usize, layers: &[(usize, usize, usize)], bf16: bool) {
    use tensor::conv::{
        conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
        ConvGeom, ConvGrads,
    };
    use tensor::{Accum, Shape};
    println!("| layer | forward GFLOP/s | filter gradient | input gradient |");
    println!("| --- | --- | --- | --- |");
    for &(c_in, hw, f) in layers {
        let g = ConvGeom::padded(
            Shape::new(&[64, c_in, hw, hw]).unwrap(),
            Shape::new(&[f, c_in, 3, 3]).unwrap(),
            1,
            1,
        )
        .unwrap();
        let g = ConvGeom { bf16, ..g };
        let x = vec![0.1f32; g.n * g.in_len()];
        let w = vec![0.01f32; g.f * g.ckk()];
        let dout = vec![0.01f32; g.n * g.out_len()];
        let mut out = vec![0.0f32; g.n * g.out_len()];
        let mut dx = vec![0.0f32; g.n * g.in_len()];
        let mut dw = vec![0.0f32; g.f * g.ckk()];
        let mut fs = vec![0.0f32; conv2d_forward_scratch_len(&g)];
        let mut bs = vec![0.0f32; conv2d_backward_scratch_len(&g, true)];
        let fl = 2.0 * (g.n * g.f * g.ckk() * g.spatial()) as f64 / 1e9;
        let tf = time(min_s, samples, || {
            conv2d_forward(&g, &x, &w, None, black_box(&mut out), &mut fs)
        });
        let tw = time(min_s, samples, || {
            let grads = ConvGrads {
                dx: None,
                dw: black_box(&mut dw),
                db: None,
            };
            conv2d_backward(&g, &x, &w, &dout, grads, &mut bs)
        });
        let twx = time(min_s, samples, || {
            let grads = ConvGrads {
                dx: Some((black_box(&mut dx[..]), Accum::Overwrite)),
                dw: black_box(&mut dw),
                db: None,
            };
            conv2d_backward(&g, &x, &w, &dout, grads, &mut bs)
        });
        println!(
            "| {c_in}->{f}, 3x3, {hw}x{hw} | {:.1} | {:.1} | {:.1} |",
            fl / tf,
            fl / tw,
            fl / (twx - tw).max(1e-9)
        );
    }
}

/// Table 6: the speed-run recipes' convolutions (the 99.7% net's four; the 99.0% and 99.5%
/// nets' are narrower versions of them) in bf16 and in f32, single thread, mini-batch 64.
fn speedrun_layers(min_s: f64, samples: usize) {
    let layers = [
        (1, 28, 32),
        (32, 14, 64),
        (64, 7, 128),
        (128, 3, 256),
        (16, 7, 32),
    ];
    tensor::with_threads(1, || {
        let peak = gemm_rate(min_s, samples);
        let bf16 = tensor::conv::bf16_supported();
        println!("\n## speed-run convolutions, single thread, mini-batch 64");
        println!("GEMM 1024^3 for scale: {peak:.1} GFLOP/s (bf16 products run at up to twice it)");
        if bf16 {
            println!("\n### bf16 products, f32 sums");
            conv_layers(min_s, samples, &layers, true);
        }
        println!("\n### f32");
        conv_layers(min_s, samples, &layers, false);
    });
}

/// Table 5: the modern recipe's convolutions at mini-batch 64 and its batch norm over the
/// largest activation, single thread.
fn modern_layers(min_s: f64, samples: usize) {
    use tensor::norm::{
        batch_norm_backward, batch_norm_forward, batch_stats, NormGeom, NormGrads, NormParams,
    };
    use tensor::Accum;
    tensor::with_threads(1, || {
        let path = if std::env::var("NNDL_CONV").is_ok_and(|v| v == "im2col") {
            "im2col + GEMM (NNDL_CONV=im2col)"
        } else {
            "direct where it applies (AVX-512, stride 1)"
        };
        let peak = gemm_rate(min_s, samples);
        println!("\n## modern recipe, single thread, mini-batch 64: convolutions by {path}");
        println!("GEMM 1024^3 for scale: {peak:.1} GFLOP/s");
        conv_layers(
            min_s,
            samples,
            &[(32, 28, 32), (32, 14, 64), (64, 14, 64)],
            false,
        );
        let g = NormGeom {
            n: 64,
            c: 32,
            s: 784,
        };
        let x: Vec<f32> = (0..g.len()).map(|i| (i % 97) as f32 / 50.0 - 1.0).collect();
        let dy: Vec<f32> = (0..g.len()).map(|i| (i % 89) as f32 / 45.0 - 1.0).collect();
        let (mut y, mut dx) = (vec![0.0f32; g.len()], vec![0.0f32; g.len()]);
        let (mut mean, mut var) = (vec![0.0; g.c], vec![0.0; g.c]);
        let (gamma, beta) = (vec![1.0f32; g.c], vec![0.1f32; g.c]);
        let (mut dg, mut db) = (vec![0.0f32; g.c], vec![0.0f32; g.c]);
        let ts = time(min_s, samples, || {
            batch_stats(&g, &x, black_box(&mut mean), &mut var)
        });
        let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let relu = tensor::unary::Act::Relu;
        let p = NormParams {
            mean: &mean,
            inv_std: &inv,
            scale: &gamma,
            act: relu,
        };
        let tf = time(min_s, samples, || {
            batch_norm_forward(&g, &p, &beta, &x, black_box(&mut y))
        });
        let tb = time(min_s, samples, || {
            let grads = NormGrads {
                dx: Some((black_box(&mut dx[..]), Accum::Overwrite)),
                dscale: &mut dg,
                dbias: &mut db,
            };
            batch_norm_backward(&g, &p, true, &x, &y, &dy, grads)
        });
        let mb = g.len() as f64 * 4.0 / 1e6;
        println!("\n## batch norm + ReLU over [64, 32, 784] f32 ({mb:.1} MB), single thread");
        println!("| pass | ms | GB/s (values read + written) |");
        println!("| --- | --- | --- |");
        for (what, t, tensors) in [
            ("statistics (reads x)", ts, 1.0),
            ("forward (x -> y)", tf, 2.0),
            ("backward (sums: dy, y, x; then dx)", tb, 7.0),
        ] {
            println!(
                "| {what} | {:.2} | {:.1} |",
                t * 1e3,
                tensors * mb / t / 1e3
            );
        }
    });
}
