use super::*;
use crate::Accum;
use rand::{Rng, SeedableRng};

#[test]
fn fused_forward_equals_the_definition_on_any_thread_count() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    for (n, c, s) in [(4, 3, 5), (7, 1, 1), (2, 16, 1), (64, 32, 49), (3, 5, 9000)] {
        let g = NormGeom { n, c, s };
        let x: Vec<f64> = (0..g.len()).map(|_| rng.random_range(-3.0..5.0)).collect();
        let scale: Vec<f64> = (0..c).map(|_| rng.random_range(0.5..2.0)).collect();
        let bias: Vec<f64> = (0..c).map(|_| rng.random_range(-1.0..1.0)).collect();
        for act in [Act::Identity, Act::Relu, Act::Tanh] {
            let (want, wm, wv) = batch_norm_naive(&g, &x, &scale, &bias, 1e-5, act);
            let close = |a: &[f64], b: &[f64], what: &str| {
                for (a, b) in a.iter().zip(b) {
                    // Sums in another order: rounding apart only.
                    assert!(
                        (a - b).abs() < 1e-12 * b.abs().max(1.0),
                        "{g:?} {act:?} {what}: {a} vs {b}"
                    );
                }
            };
            let outs: Vec<Vec<f64>> = [1, 2]
                .into_iter()
                .map(|threads| {
                    par::with_threads(threads, || {
                        let (mut m, mut v) = (vec![0.0; c], vec![0.0; c]);
                        batch_stats(&g, &x, &mut m, &mut v);
                        close(&m, &wm, "mean");
                        close(&v, &wv, "var");
                        let inv: Vec<f64> = v.iter().map(|v| 1.0 / (v + 1e-5f64).sqrt()).collect();
                        let mut y = vec![f64::NAN; g.len()];
                        batch_norm_forward(
                            &g,
                            &NormParams {
                                mean: &m,
                                inv_std: &inv,
                                scale: &scale,
                                act,
                            },
                            &bias,
                            &x,
                            &mut y,
                        );
                        close(&y, &want, "y");
                        y
                    })
                })
                .collect();
            assert_eq!(outs[0], outs[1], "the thread count changes nothing");
        }
    }
}

/// `p`'s statistics and activation with the scales `scale`, of another element type.
fn with_scale<'a, T, U>(p: &NormParams<'a, T>, scale: &'a [U]) -> NormParams<'a, U> {
    NormParams {
        mean: p.mean,
        inv_std: p.inv_std,
        scale,
        act: p.act,
    }
}

#[test]
fn f32_kernels_equal_the_f64_path() {
    // f32 takes the explicit AVX-512 sums where the CPU has them; f64 the generic loops
    // (the ones the gradchecks cover). Runs of 49 and 9000 end in a partial vector; 1 and 5
    // are all tail.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
    for (n, c, s) in [
        (64, 8, 49),
        (3, 5, 9000),
        (2, 3, 5),
        (16, 4, 1),
        (8, 2, 784),
        // The speed run's pooled planes: 3x3 and 14x14, many runs per f64 total.
        (128, 4, 9),
        (32, 3, 196),
        (40, 2, 33),
    ] {
        let g = NormGeom { n, c, s };
        let x: Vec<f64> = (0..g.len())
            .map(|_| rng.random_range(-3.0f32..5.0) as f64)
            .collect();
        let dy: Vec<f64> = (0..g.len())
            .map(|_| rng.random_range(-1.0f32..1.0) as f64)
            .collect();
        let scale: Vec<f64> = (0..c)
            .map(|_| rng.random_range(0.5f32..2.0) as f64)
            .collect();
        let bias: Vec<f64> = (0..c)
            .map(|_| rng.random_range(-1.0f32..1.0) as f64)
            .collect();
        let narrow = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        for act in [Act::Identity, Act::Relu] {
            for batch in [true, false] {
                let (mut m64, mut v64) = (vec![0.0; c], vec![0.0; c]);
                batch_stats(&g, &x, &mut m64, &mut v64);
                let (mut m32, mut v32) = (vec![0.0; c], vec![0.0; c]);
                batch_stats(&g, &narrow(&x), &mut m32, &mut v32);
                for ch in 0..c {
                    assert!((m32[ch] - m64[ch]).abs() < 1e-5, "{g:?} mean");
                    assert!((v32[ch] - v64[ch]).abs() < 1e-5 * v64[ch], "{g:?} var");
                }
                let inv: Vec<f64> = v64.iter().map(|v| 1.0 / (v + 1e-5f64).sqrt()).collect();
                // The f32 run takes the f64 statistics, so only its own arithmetic differs.
                let gm32 = narrow(&scale);
                let p64 = NormParams {
                    mean: &m64,
                    inv_std: &inv,
                    scale: &scale,
                    act,
                };
                let p32 = with_scale(&p64, &gm32);
                let mut y64 = vec![0.0; g.len()];
                batch_norm_forward(&g, &p64, &bias, &x, &mut y64);
                let mut y32 = vec![0.0f32; g.len()];
                let (x32, bt32) = (narrow(&x), narrow(&bias));
                batch_norm_forward(&g, &p32, &bt32, &x32, &mut y32);
                for (a, b) in y32.iter().zip(&y64) {
                    assert!((*a as f64 - b).abs() < 1e-5 * b.abs().max(1.0), "{g:?} y");
                }
                let y64 = y32.iter().map(|&v| v as f64).collect::<Vec<f64>>();
                let (mut dx64, mut dg64, mut db64) =
                    (vec![0.5; g.len()], vec![0.0; c], vec![0.0; c]);
                batch_norm_backward(
                    &g,
                    &p64,
                    batch,
                    &x,
                    &y64,
                    &dy,
                    NormGrads {
                        dx: Some((&mut dx64, Accum::Add)),
                        dscale: &mut dg64,
                        dbias: &mut db64,
                    },
                );
                // f32 writes over a NaN buffer (nothing of it may remain), or adds to 0.5.
                dx64.iter_mut().for_each(|v| *v -= 0.5);
                let (accum, fill) = if batch {
                    (Accum::Overwrite, f32::NAN)
                } else {
                    (Accum::Add, 0.5)
                };
                let (mut dx32, mut dg32, mut db32) =
                    (vec![fill; g.len()], vec![0.0f32; c], vec![0.0f32; c]);
                batch_norm_backward(
                    &g,
                    &p32,
                    batch,
                    &x32,
                    &y32,
                    &narrow(&dy),
                    NormGrads {
                        dx: Some((&mut dx32, accum)),
                        dscale: &mut dg32,
                        dbias: &mut db32,
                    },
                );
                if accum == Accum::Add {
                    dx32.iter_mut().for_each(|v| *v -= 0.5);
                }
                let m = g.per_channel() as f64;
                for (what, a, b, tol) in [
                    ("dscale", &dg32, &dg64, 1e-5 * m),
                    ("dbias", &db32, &db64, 1e-5 * m),
                    ("dx", &dx32, &dx64, 1e-4),
                ] {
                    for (a, b) in a.iter().zip(b.iter()) {
                        assert!(
                            (*a as f64 - b).abs() < tol * b.abs().max(1.0),
                            "{g:?} {act:?} batch {batch} {what}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
