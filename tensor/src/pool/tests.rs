use super::*;
use rand::{Rng, SeedableRng};

#[test]
fn a_tied_window_gives_every_maximum_the_gradient_under_ties_only() {
    // One 2x4 plane: window 0 all 3s (a four-way tie), window 1 a single max of 9.
    let g = PoolGeom {
        planes: 1,
        h: 2,
        w: 4,
        k: 2,
    };
    let x = [3.0f32, 3.0, 1.0, 9.0, 3.0, 3.0, 2.0, 0.0];
    let dout = [1.5f32, -2.0];
    let first = maxpool_backward_naive(&g, &x, &dout, PoolGrad::First);
    let ties = maxpool_backward_naive(&g, &x, &dout, PoolGrad::Ties);
    assert_eq!(first, vec![1.5, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(ties, vec![1.5, 1.5, 0.0, -2.0, 1.5, 1.5, 0.0, 0.0]);
    // The fast path: masks from the forward, scattered per window.
    let (mut out, mut arg) = ([0.0f32; 2], [0u32; 2]);
    maxpool_forward(&g, &x, &mut out, &mut arg);
    tie_masks(&g, &x, &out, &mut arg);
    assert_eq!(arg, [0b1111, 0b0010]);
    let mut dx = [0.0f32; 8];
    for (o, (&m, &d)) in arg.iter().zip(&dout).enumerate() {
        scatter_ties(&g, o, m, d, &mut dx);
    }
    assert_eq!(dx.to_vec(), ties);
}

#[test]
fn hand_computed_pool() {
    // 4x4 plane 0..16: windows' maxima are 5, 7, 13, 15 at those indices.
    let g = PoolGeom {
        planes: 1,
        h: 4,
        w: 4,
        k: 2,
    };
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut out = vec![0.0; 4];
    let mut arg = vec![0; 4];
    maxpool_forward(&g, &x, &mut out, &mut arg);
    assert_eq!(out, vec![5.0, 7.0, 13.0, 15.0]);
    assert_eq!(arg, vec![5, 7, 13, 15]);
    let mut dx = vec![0.0; 16];
    maxpool_backward(&[1.0, 2.0, 3.0, 4.0], &arg, &mut dx);
    assert_eq!(dx[5], 1.0);
    assert_eq!(dx[15], 4.0);
    assert_eq!(dx.iter().sum::<f32>(), 10.0);
}

#[test]
fn fast_equals_naive_on_random_shapes_with_odd_sizes() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    // The last is big enough for both passes to be split across threads.
    for (planes, h, w, k) in [
        (6, 24, 24, 2),
        (5, 7, 9, 2),
        (3, 9, 9, 3),
        (2, 5, 4, 1),
        (257, 28, 28, 2),
    ] {
        let g = PoolGeom { planes, h, w, k };
        let x: Vec<f64> = (0..planes * h * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let dout: Vec<f64> = (0..g.out_len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let (o2, a2) = maxpool_naive(&g, &x);
        let dx2 = maxpool_backward_naive(&g, &x, &dout, PoolGrad::First);
        for threads in [1, 2] {
            par::with_threads(threads, || {
                let mut out = vec![0.0; g.out_len()];
                let mut arg = vec![0; g.out_len()];
                maxpool_forward(&g, &x, &mut out, &mut arg);
                assert_eq!(out, o2);
                assert_eq!(arg, a2);
                let mut dx = vec![0.0; x.len()];
                maxpool_backward(&dout, &arg, &mut dx);
                assert_eq!(dx, dx2, "{g:?}, {threads} threads");
                let mut over = vec![f64::NAN; x.len()];
                maxpool_backward_overwrite(&g, &dout, &arg, &mut over);
                assert_eq!(over, dx2, "{g:?}, {threads} threads, written over");
            });
        }
    }
}

#[test]
fn f32_pools_equal_naive_with_ties_and_every_width() {
    // Values on a coarse grid tie often, so the first-maximum rule is exercised; widths
    // around the 16-window step (and odd ones, whose last column is dropped).
    let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
    for (planes, h, w) in [
        (3, 4, 2),
        (2, 6, 31),
        (2, 4, 32),
        (2, 4, 33),
        (3, 6, 34),
        (2, 5, 64),
        (4, 28, 28),
        (300, 28, 28),
    ] {
        let g = PoolGeom { planes, h, w, k: 2 };
        let x: Vec<f32> = (0..planes * h * w)
            .map(|_| rng.random_range(-3..3) as f32 * 0.5)
            .collect();
        let (o2, a2) = maxpool_naive(&g, &x);
        for threads in [1, 2] {
            par::with_threads(threads, || {
                let mut out = vec![f32::NAN; g.out_len()];
                let mut arg = vec![u32::MAX; g.out_len()];
                maxpool_forward(&g, &x, &mut out, &mut arg);
                assert_eq!(out, o2, "{g:?}");
                assert_eq!(arg, a2, "{g:?}");
                // The backward written over NaNs, against the naive one (ties: the first
                // maximum alone), by the 16-window kernel on AVX-512.
                let dout: Vec<f32> = (0..g.out_len()).map(|i| 1.0 + i as f32).collect();
                let want = maxpool_backward_naive(&g, &x, &dout, PoolGrad::First);
                let mut dx = vec![f32::NAN; x.len()];
                maxpool_backward_overwrite(&g, &dout, &arg, &mut dx);
                assert_eq!(dx, want, "{g:?}, {threads} threads");
            });
        }
    }
}
