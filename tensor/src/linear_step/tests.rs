use super::*;
use crate::par::with_threads;
use crate::skinny::PARALLEL_WORK;
use rand::{Rng, SeedableRng};

fn step_case(isa: Isa, parallel: bool, m: usize, k: usize, n: usize, seed: u64, with_dx: bool) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut r =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x, dyt, w0, dx0) = (r(m * k), r(n * m), r(n * k), r(m * k));
    let s = LinearStep {
        m,
        k,
        n,
        x: &x,
        dyt: &dyt,
        eta: 0.03,
        decay: 0.9997,
    };
    for beta in [0.0f32, 1.0] {
        let (mut w1, mut w2) = (w0.clone(), w0.clone());
        let (mut d1, mut d2) = (dx0.clone(), dx0.clone());
        if beta == 0.0 {
            d1.iter_mut().for_each(|v| *v = f32::NAN);
        }
        let out = linear_backward_step(
            Kernel { isa, parallel },
            &s,
            &mut w1,
            with_dx.then_some((&mut d1[..], beta)),
            &mut vec![f32::NAN; step_scratch_len(m, k, n)],
        );
        let nz = out.nonzero;
        let want_sq: f64 = w1.iter().map(|&v| v as f64 * v as f64).sum();
        assert!(
            (out.sum_squares as f64 - want_sq).abs() <= 1e-5 * want_sq.max(1.0),
            "sum of squares {} vs {want_sq}",
            out.sum_squares
        );
        linear_backward_step_reference(&s, &mut w2, with_dx.then_some((&mut d2[..], beta)));
        assert!(nz, "a random gradient is not all zero");
        let what = format!("{isa:?} par {parallel} {m}x{k}x{n} beta {beta}");
        for (a, b) in w1.iter().zip(&w2) {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{what}: w {a} vs {b}"
            );
        }
        if with_dx {
            for (a, b) in d1.iter().zip(&d2) {
                let tol = 1e-5 * (n as f32).sqrt() * (1.0 + b.abs());
                assert!((a - b).abs() <= tol, "{what}: dx {a} vs {b}");
            }
        } else {
            assert_eq!(
                d1.iter().filter(|v| v.is_nan()).count(),
                if beta == 0.0 { m * k } else { 0 }
            );
        }
    }
}

#[test]
fn fused_step_equals_the_reference_on_edge_sizes() {
    let mut seed = 500;
    for isa in Isa::all_available() {
        for m in [1, 2, 7, 10, 12] {
            for (k, n) in [(1, 1), (15, 3), (16, 17), (33, 10), (100, 64)] {
                seed += 1;
                step_case(isa, false, m, k, n, seed, true);
                step_case(isa, false, m, k, n, seed, false);
            }
        }
    }
}

#[test]
fn fused_step_split_across_threads_matches_one_thread_bit_for_bit() {
    for isa in Isa::all_available() {
        for (m, k, n) in [(10, 640, 1000), (10, 1000, 1000), (7, 1001, 333)] {
            assert!(m * k * n >= PARALLEL_WORK);
            with_threads(2, || step_case(isa, true, m, k, n, 9, true));
            let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
            let mut r = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
            };
            let (x, dyt, w0) = (r(m * k), r(n * m), r(n * k));
            let s = LinearStep {
                m,
                k,
                n,
                x: &x,
                dyt: &dyt,
                eta: 0.1,
                decay: 1.0,
            };
            let run = |t: usize| {
                let (mut w, mut dx) = (w0.clone(), vec![0.0f32; m * k]);
                with_threads(t, || {
                    linear_backward_step(
                        Kernel {
                            isa,
                            parallel: true,
                        },
                        &s,
                        &mut w,
                        Some((&mut dx[..], 0.0)),
                        &mut vec![0.0; step_scratch_len(m, k, n)],
                    )
                });
                (w, dx)
            };
            assert_eq!(run(1), run(2), "{isa:?} {m}x{k}x{n}: 1 vs 2 threads");
        }
    }
}

#[test]
fn fused_step_reports_an_all_zero_gradient() {
    let (m, k, n) = (3, 20, 5);
    let x = vec![1.0f32; m * k];
    let dyt = vec![0.0f32; n * m];
    let mut w = vec![0.5f32; n * k];
    let s = LinearStep {
        m,
        k,
        n,
        x: &x,
        dyt: &dyt,
        eta: 0.1,
        decay: 0.5,
    };
    for isa in Isa::all_available() {
        assert!(
            !linear_backward_step(
                Kernel {
                    isa,
                    parallel: false
                },
                &s,
                &mut w,
                None,
                &mut []
            )
            .nonzero,
            "{isa:?}"
        );
    }
}
