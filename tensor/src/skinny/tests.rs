use super::*;
use crate::isa::best_isa;
use crate::par::with_threads;
use rand::{Rng, SeedableRng};

fn check(isa: Isa, parallel: bool, shape: Shape3, m: usize, k: usize, n: usize, seed: u64) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    for (alpha, beta) in [(1.0f32, 0.0f32), (0.7, 1.0), (-1.5, 0.3)] {
        let mut got = c0.clone();
        if beta == 0.0 {
            // beta = 0 must ignore what C held, NaNs included.
            got.iter_mut().for_each(|v| *v = f32::NAN);
        }
        let mut want = c0.clone();
        let (av, bv) = views(shape, m, k, n, &a, &b);
        let kernel = Kernel { isa, parallel };
        small_gemm_with(
            kernel,
            shape,
            alpha,
            av,
            bv,
            beta,
            MatMut::new(&mut got, m, n),
        );
        small_gemm_reference(shape, alpha, av, bv, beta, MatMut::new(&mut want, m, n));
        for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-5 * (k as f32).sqrt() * (1.0 + w.abs());
            assert!(
                (g - w).abs() <= tol,
                "{isa:?} {shape:?} {m}x{k}x{n} alpha {alpha} beta {beta} par {parallel}: \
                 C[{}][{}] = {g}, want {w}",
                idx / n,
                idx % n
            );
        }
    }
}

/// `A` (`m x k`) and `B` (`k x n`) over `a` and `b` laid out as `shape` reads them.
fn views<'a>(
    shape: Shape3,
    m: usize,
    k: usize,
    n: usize,
    a: &'a [f32],
    b: &'a [f32],
) -> (MatRef<'a, f32>, MatRef<'a, f32>) {
    match shape {
        Shape3::Nt => (MatRef::new(a, m, k), MatRef::new(b, n, k).t()),
        Shape3::Nn => (MatRef::new(a, m, k), MatRef::new(b, k, n)),
        Shape3::Tn => (MatRef::new(a, k, m).t(), MatRef::new(b, k, n)),
    }
}

fn isas() -> Vec<Isa> {
    Isa::all_available()
}

#[test]
fn every_kernel_equals_the_reference_on_edge_sizes() {
    let mut seed = 0;
    for isa in isas() {
        for shape in [Shape3::Nt, Shape3::Nn, Shape3::Tn] {
            // 20 and 40: the conv layers' filter counts (any size when B stays in cache).
            for small in [1, 7, 10, 16, 20, 40] {
                for (big1, big2) in [(1, 1), (15, 17), (33, 31), (100, 64), (47, 129)] {
                    let (m, k, n) = match shape {
                        Shape3::Tn => (big1, small, big2),
                        _ => (small, big1, big2),
                    };
                    seed += 1;
                    check(isa, false, shape, m, k, n, seed);
                }
            }
        }
    }
}

#[test]
fn split_across_threads_equals_the_reference_and_one_thread_bit_for_bit() {
    // The book's wide layers at mini-batch 10, and odd sizes above the split threshold.
    let sizes = [
        (Shape3::Nt, 10, 640, 1000),
        (Shape3::Nt, 7, 1001, 333),
        (Shape3::Nn, 10, 1000, 640),
        (Shape3::Nn, 17.min(SMALL), 999, 517),
        (Shape3::Tn, 1000, 10, 640),
        (Shape3::Tn, 1003, 7, 1001),
    ];
    for isa in isas() {
        for (i, &(shape, m, k, n)) in sizes.iter().enumerate() {
            assert!(m * k * n >= PARALLEL_WORK, "{m}x{k}x{n} would not be split");
            with_threads(2, || check(isa, true, shape, m, k, n, 100 + i as u64));
            let mut rng = rand_pcg::Pcg64::seed_from_u64(i as u64);
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let run = |t: usize| {
                let mut c = vec![0.0f32; m * n];
                let (av, bv) = views(shape, m, k, n, &a, &b);
                let kernel = Kernel {
                    isa,
                    parallel: true,
                };
                with_threads(t, || {
                    small_gemm_with(kernel, shape, 1.0, av, bv, 0.0, MatMut::new(&mut c, m, n))
                });
                c
            };
            assert_eq!(run(1), run(2), "{isa:?} {shape:?}: 1 vs 2 threads");
        }
    }
}

#[test]
fn layouts_are_recognised() {
    assert_eq!(Shape3::of(10, 784, 1000, false, true), Some(Shape3::Nt));
    assert_eq!(Shape3::of(10, 1000, 640, false, false), Some(Shape3::Nn));
    assert_eq!(Shape3::of(1000, 10, 640, true, false), Some(Shape3::Tn));
    // The conv layers' per-image products: B stays in cache.
    assert_eq!(Shape3::of(20, 25, 576, false, false), Some(Shape3::Nn));
    assert_eq!(Shape3::of(20, 576, 25, false, true), Some(Shape3::Nt));
    assert_eq!(Shape3::of(40, 500, 64, false, false), None);
    assert_eq!(Shape3::of(40, 64, 500, false, true), None);
    assert_eq!(Shape3::of(500, 40, 64, true, false), None);
    // A wide layer at a big mini-batch goes to the packing GEMM.
    assert_eq!(Shape3::of(256, 1000, 1000, false, true), None);
    assert_eq!(Shape3::of(1000, 256, 640, true, false), None);
    assert_eq!(Shape3::of(4, 4, 4, true, true), None);
    assert!(best_isa().available());
}
