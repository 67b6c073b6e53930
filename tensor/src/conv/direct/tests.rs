use super::*;
use crate::conv::tests::{fast_backward, fast_forward};
use crate::conv::{conv2d_backward_naive, conv2d_naive};
use crate::Shape;
use rand::{Rng, SeedableRng};

fn geom(dims: [usize; 7], pad: usize) -> ConvGeom {
    let [n, c, h, w, f, kh, kw] = dims;
    ConvGeom::padded(
        Shape::new(&[n, c, h, w]).unwrap(),
        Shape::new(&[f, c, kh, kw]).unwrap(),
        pad,
        1,
    )
    .unwrap()
}

fn random(n: usize, rng: &mut rand_pcg::Pcg64) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `got` (f32) against the f64 reference, to 1e-6 per summed term: a wrong tap, channel or
/// position is off by O(1).
fn close(what: &str, g: &ConvGeom, got: &[f32], want: &[f64], terms: usize) {
    assert_eq!(got.len(), want.len());
    let tol = 1e-6 * terms as f64;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a as f64 - b).abs() <= tol,
            "{g:?}: {what}[{i}] = {a}, reference {b}"
        );
    }
}

fn check(g: ConvGeom, rng: &mut rand_pcg::Pcg64) {
    assert!(applies::<f32>(&g), "{g:?} should take the direct path");
    let x = random(g.n * g.in_len(), rng);
    let w = random(g.f * g.ckk(), rng);
    let b = random(g.f, rng);
    let dout = random(g.n * g.out_len(), rng);
    let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (x64, w64, b64, d64) = (wide(&x), wide(&w), wide(&b), wide(&dout));

    let out = fast_forward(&g, &x, &w, &b);
    close(
        "out",
        &g,
        &out,
        &conv2d_naive(&g, &x64, &w64, Some(&b64)),
        g.ckk(),
    );

    let (dx0, dw0, db0) = conv2d_backward_naive(&g, &x64, &w64, &d64);
    // Gradients are added into what is there.
    let modes = fast_backward(&g, &x, &w, &dout, 1.0);
    let [dx, dw, db] = &modes.add;
    let plus1 = |v: &[f64]| v.iter().map(|v| v + 1.0).collect::<Vec<f64>>();
    close("dx", &g, dx, &plus1(&dx0), g.f * g.kh * g.kw);
    close(
        "dx (overwrite)",
        &g,
        &modes.dx_over,
        &dx0,
        g.f * g.kh * g.kw,
    );
    close("dw", &g, dw, &plus1(&dw0), g.n * g.spatial());
    close("db", &g, db, &plus1(&db0), g.n * g.spatial());
    // Without the input gradient, the same filter gradient.
    assert_eq!(&modes.dw_alone, dw, "{g:?}");
}

#[test]
fn direct_equals_naive_on_random_and_edge_shapes() {
    if !enabled() {
        eprintln!("no AVX-512F (or NNDL_CONV=im2col, NNDL_ISA lowered): the direct path is off");
        return;
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(21);
    // The recipe's four convolutions; network3's valid 5x5 ones; a filter count and
    // channel count off every tile size; 1x1 images and filters; non-square filters;
    // outputs shorter than one vector; the largest padding a filter allows.
    for g in [
        geom([3, 1, 28, 28, 32, 3, 3], 1),
        geom([2, 32, 28, 28, 32, 3, 3], 1),
        geom([2, 32, 14, 14, 64, 3, 3], 1),
        geom([2, 64, 14, 14, 64, 3, 3], 1),
        geom([3, 1, 28, 28, 20, 5, 5], 0),
        geom([2, 20, 12, 12, 40, 5, 5], 0),
        geom([3, 7, 9, 11, 13, 3, 3], 1),
        geom([2, 5, 6, 5, 9, 2, 3], 1),
        geom([2, 3, 1, 1, 5, 1, 1], 0),
        geom([2, 2, 1, 1, 3, 3, 3], 2),
        geom([2, 3, 4, 3, 17, 3, 2], 0),
        geom([4, 2, 5, 5, 3, 5, 5], 4),
        geom([1, 1, 3, 40, 1, 3, 3], 1),
        // Several image groups per task, the last one partial.
        geom([7, 3, 6, 6, 5, 3, 3], 1),
        geom([11, 2, 28, 28, 32, 3, 3], 1),
    ] {
        for threads in [1, 2] {
            crate::par::with_threads(threads, || check(g, &mut rng));
        }
    }
}

#[test]
fn strides_f64_and_oversized_padding_take_the_other_path() {
    let g = geom([1, 1, 8, 8, 1, 3, 3], 1);
    assert!(!applies::<f64>(&g));
    let strided = ConvGeom { stride: 2, ..g };
    assert!(!applies::<f32>(&strided));
    let wide_pad = ConvGeom { pad: 3, ..g };
    assert!(!applies::<f32>(&wide_pad));
}

#[test]
fn filter_layouts() {
    let g = geom([1, 2, 4, 4, 3, 2, 2], 0);
    // w[f][c][k] = 100f + 10c + k
    let w: Vec<f32> = (0..3)
        .flat_map(|f| (0..2).flat_map(move |c| (0..4).map(move |k| (100 * f + 10 * c + k) as f32)))
        .collect();
    let mut t = vec![0.0; w.len()];
    arrange(&g, &w, false, &mut t);
    // [c][k][f]: c = 1, k = 2, f = 0..3
    assert_eq!(&t[(4 + 2) * 3..(4 + 2) * 3 + 3], &[12.0, 112.0, 212.0]);
    arrange(&g, &w, true, &mut t);
    // [f][k'][c] = w[f][c][3 - k']: f = 2, k' = 0 -> k = 3
    assert_eq!(&t[(2 * 4) * 2..(2 * 4) * 2 + 2], &[203.0, 213.0]);
}
