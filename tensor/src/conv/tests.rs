use super::geom::chunk_images;
use super::*;
use crate::pool::{PoolGeom, PoolGrad};
use crate::unary::Act;
use crate::Shape;
use crate::{par, Accum};
use rand::{Rng, SeedableRng};

fn geom(dims: [usize; 7]) -> ConvGeom {
    geom_ps(dims, 0, 1)
}

fn geom_ps(dims: [usize; 7], pad: usize, stride: usize) -> ConvGeom {
    let [n, c, h, w, f, kh, kw] = dims;
    ConvGeom::padded(
        Shape::new(&[n, c, h, w]).unwrap(),
        Shape::new(&[f, c, kh, kw]).unwrap(),
        pad,
        stride,
    )
    .unwrap()
}

#[test]
fn hand_computed_forward() {
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,-1]], b = 0.5:
    // out[i][j] = x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5 everywhere.
    let g = geom([1, 1, 3, 3, 1, 2, 2]);
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let w = [1.0, 0.0, 0.0, -1.0];
    let mut out = vec![0.0; 4];
    let mut scratch = vec![0.0; conv2d_forward_scratch_len(&g)];
    conv2d_forward(&g, &x, &w, Some(&[0.5]), &mut out, &mut scratch);
    assert_eq!(out, vec![-3.5; 4]);
    assert_eq!(conv2d_naive(&g, &x, &w, Some(&[0.5])), out);
}

#[test]
fn fast_equals_naive_on_random_shapes() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    // The last two are big enough (>= 4 MFLOP) to be split into one chunk per thread.
    for dims in [
        [3, 2, 7, 6, 4, 3, 2],
        [5, 3, 9, 9, 2, 5, 5],
        [1, 1, 5, 5, 1, 5, 5],
        [16, 4, 8, 8, 3, 3, 3],
        [7, 20, 12, 12, 40, 5, 5],
        [9, 1, 28, 28, 20, 5, 5],
    ] {
        check_fast_against_naive(geom(dims), &mut rng);
    }
}

#[test]
fn padded_and_strided_fast_equals_naive() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(8);
    // Padding wider than the filter's reach, strides that skip the last column, a 1x1
    // image, and shapes big enough to be split across threads.
    for (dims, pad, stride) in [
        ([2, 1, 5, 5, 2, 3, 3], 1, 1),
        ([3, 2, 7, 6, 4, 3, 2], 2, 1),
        ([2, 3, 7, 8, 2, 3, 3], 1, 2),
        ([2, 2, 9, 7, 3, 5, 5], 2, 3),
        ([1, 1, 1, 1, 2, 3, 3], 1, 1),
        ([2, 1, 4, 4, 1, 2, 2], 0, 2),
        ([2, 2, 6, 6, 2, 3, 3], 3, 1),
        ([9, 1, 28, 28, 32, 3, 3], 1, 1),
        ([8, 32, 14, 14, 64, 5, 5], 2, 1),
        ([8, 16, 14, 14, 16, 3, 3], 1, 2),
    ] {
        for threads in [1, 2] {
            crate::par::with_threads(threads, || {
                check_fast_against_naive(geom_ps(dims, pad, stride), &mut rng)
            });
        }
    }
}

#[test]
fn padding_and_stride_set_the_output_size_as_pytorch_does() {
    // floor((h + 2p - k) / s) + 1
    let g = geom_ps([1, 1, 28, 28, 1, 3, 3], 1, 1);
    assert_eq!((g.oh(), g.ow()), (28, 28));
    let g = geom_ps([1, 1, 28, 27, 1, 5, 5], 2, 2);
    assert_eq!((g.oh(), g.ow()), (14, 14));
    let g = geom_ps([1, 1, 7, 7, 1, 3, 3], 0, 3);
    assert_eq!((g.oh(), g.ow()), (2, 2));
    let bad = ConvGeom::padded(
        Shape::new(&[1, 1, 2, 2]).unwrap(),
        Shape::new(&[1, 1, 5, 5]).unwrap(),
        1,
        1,
    );
    assert!(bad.unwrap_err().to_string().contains("padded by 1"));
    let zero = ConvGeom::padded(
        Shape::new(&[1, 1, 4, 4]).unwrap(),
        Shape::new(&[1, 1, 3, 3]).unwrap(),
        0,
        0,
    );
    assert!(zero.unwrap_err().to_string().contains("stride"));
}

fn check_fast_against_naive(g: ConvGeom, rng: &mut rand_pcg::Pcg64) {
    let mut random =
        |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let x = random(g.n * g.in_len());
    let w = random(g.f * g.ckk());
    let b = random(g.f);
    let dout = random(g.n * g.out_len());
    let out = fast_forward(&g, &x, &w, &b);
    let want = conv2d_naive(&g, &x, &w, Some(&b));
    for (a, b) in out.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{g:?}: forward {a} vs {b}");
    }
    let (dx0, dw0, db0) = conv2d_backward_naive(&g, &x, &w, &dout);
    let modes = fast_backward(&g, &x, &w, &dout, 0.0);
    let [dx, dw, db] = &modes.add;
    for (name, got, want) in [
        ("dx", dx, &dx0),
        ("dw", dw, &dw0),
        ("db", db, &db0),
        ("dx (overwrite)", &modes.dx_over, &dx0),
    ] {
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-11, "{g:?}: {name} {a} vs {b}");
        }
    }
    // Without dx, dw and db are unchanged.
    assert_eq!(&modes.dw_alone, dw);
}

/// [`conv2d_forward`] into NaN output and scratch, so that a position it leaves unwritten
/// (padding columns, a tile edge) shows in the result.
pub(super) fn fast_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
    let mut out = vec![T::nan(); g.n * g.out_len()];
    let mut scratch = vec![T::nan(); conv2d_forward_scratch_len(g)];
    conv2d_forward(g, x, w, Some(b), &mut out, &mut scratch);
    out
}

/// What [`conv2d_backward`] leaves in each of its modes, from gradient buffers that start at
/// `start` (the callers check every one against the reference).
pub(super) struct BackwardModes<T> {
    /// dx, dw and db, all asked for, each added onto `start`.
    pub(super) add: [Vec<T>; 3],
    /// dx asked to be written over a NaN buffer: what was there must be gone.
    pub(super) dx_over: Vec<T>,
    /// dw added onto `start` with neither dx nor db asked for: must equal `add`'s dw.
    pub(super) dw_alone: Vec<T>,
}

/// Runs [`conv2d_backward`] in the modes of [`BackwardModes`], each on NaN scratch (the
/// last on a scratch of the smaller size it asks for without dx), so that anything read
/// before it is written shows.
pub(super) fn fast_backward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dout: &[T],
    start: T,
) -> BackwardModes<T> {
    let (dx_len, dw_len) = (g.n * g.in_len(), g.f * g.ckk());
    let mut dx = vec![start; dx_len];
    let mut dw = vec![start; dw_len];
    let mut db = vec![start; g.f];
    let mut scratch = vec![T::nan(); conv2d_backward_scratch_len(g, true)];
    let grads = ConvGrads {
        dx: Some((&mut dx, Accum::Add)),
        dw: &mut dw,
        db: Some(&mut db),
    };
    conv2d_backward(g, x, w, dout, grads, &mut scratch);
    let mut dx_over = vec![T::nan(); dx_len];
    let mut dw_over = vec![T::zero(); dw_len];
    let grads = ConvGrads {
        dx: Some((&mut dx_over, Accum::Overwrite)),
        dw: &mut dw_over,
        db: None,
    };
    conv2d_backward(g, x, w, dout, grads, &mut scratch);
    let mut dw_alone = vec![start; dw_len];
    let mut scratch = vec![T::nan(); conv2d_backward_scratch_len(g, false)];
    let grads = ConvGrads {
        dx: None,
        dw: &mut dw_alone,
        db: None,
    };
    conv2d_backward(g, x, w, dout, grads, &mut scratch);
    BackwardModes {
        add: [dx, dw, db],
        dx_over,
        dw_alone,
    }
}

#[test]
fn fused_conv_pool_equals_the_naive_composition() {
    use crate::pool::PoolGrad;
    for (dims, pool) in [
        ([3, 2, 9, 8, 3, 3, 2], 2),
        ([10, 1, 28, 28, 20, 5, 5], 2),
        ([10, 20, 12, 12, 40, 5, 5], 2),
        ([5, 3, 11, 10, 7, 2, 3], 3),
        ([1, 1, 5, 5, 1, 5, 5], 1),
    ] {
        // Small whole numbers make every sum exact, so windows tie (over zero patches and
        // otherwise) the same way in the reference as in the fused kernel.
        for quantised in [false, true] {
            for act in [Act::Identity, Act::Sigmoid, Act::Tanh, Act::Relu] {
                let mut dws = Vec::new();
                for grad in [PoolGrad::First, PoolGrad::Ties] {
                    for threads in [1, 2] {
                        dws.push(check_fused(dims, pool, act, grad, quantised, threads));
                    }
                }
                // (Threads sum the conv's partial gradients in another order; each run
                // was checked against the reference above.) Ties change the gradient
                // exactly when there are ties.
                let moved = dws[0]
                    .iter()
                    .zip(&dws[2])
                    .any(|(a, b)| (a - b).abs() > 1e-9);
                if dims[0] > 1 {
                    assert_eq!(moved, quantised, "{dims:?} quantised {quantised}");
                }
            }
        }
    }
}

/// One fused forward and backward against the composition by the definitions; returns dw.
fn check_fused(
    dims: [usize; 7],
    pool: usize,
    act: Act,
    grad: crate::pool::PoolGrad,
    quantised: bool,
    threads: usize,
) -> Vec<f64> {
    use crate::pool::{maxpool_backward_naive, maxpool_naive};
    // The same draws for every mode and thread count of one shape.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(dims.iter().sum::<usize>() as u64 + pool as u64);
    let g = ConvPoolGeom {
        conv: geom(dims),
        pool,
        grad,
    };
    let c = g.conv;
    let mut r = |n: usize, lo: i32, hi: i32| -> Vec<f64> {
        (0..n)
            .map(|_| {
                if quantised {
                    f64::from(rng.random_range(lo..=hi))
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect()
    };
    let x: Vec<f64> = r(c.n * c.in_len(), -1, 1)
        .iter()
        .map(|v| v.max(0.0))
        .collect();
    let (w, b) = (r(c.f * c.ckk(), -1, 1), r(c.f, -1, 1));
    let dy: Vec<f64> = r(c.n * g.out_len(), -3, 3)
        .iter()
        .map(|v| v * 0.25 + 0.1)
        .collect();
    let conv = conv2d_naive(&c, &x, &w, None);
    let pg = PoolGeom {
        planes: c.n * c.f,
        h: c.oh(),
        w: c.ow(),
        k: pool,
    };
    let (pooled, _) = maxpool_naive(&pg, &conv);
    let plane = pg.oh() * pg.ow();
    let want: Vec<f64> = pooled
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mut o = [v + b[(i / plane) % c.f]];
            act.apply(&mut o);
            o[0]
        })
        .collect();
    let dz: Vec<f64> = dy
        .iter()
        .zip(&want)
        .map(|(&d, &y)| d * act.grad_from_output(y))
        .collect();
    let mut db_want = vec![0.0; c.f];
    for (i, &d) in dz.iter().enumerate() {
        db_want[(i / plane) % c.f] += d;
    }
    let dconv = maxpool_backward_naive(&pg, &conv, &dz, grad);
    let (dx_want, dw_want, _) = conv2d_backward_naive(&c, &x, &w, &dconv);

    let (mut out, mut arg) = (vec![f64::NAN; want.len()], vec![0u32; want.len()]);
    let mut cols = vec![0.0; c.n * c.cols_len()];
    // Added to zeros at one thread, written over NaNs at two.
    let (accum, fill) = if threads == 1 {
        (Accum::Add, 0.0)
    } else {
        (Accum::Overwrite, f64::NAN)
    };
    let (mut dx, mut dw, mut db) = (vec![fill; x.len()], vec![0.0; w.len()], vec![0.0; c.f]);
    par::with_threads(threads, || {
        let mut s = vec![f64::NAN; conv_pool_forward_scratch_len(&g)];
        let outs = ConvPoolOut {
            out: &mut out,
            arg: &mut arg,
            cols: &mut cols,
        };
        conv_pool_forward(&g, act, &x, &w, Some(&b), outs, &mut s);
        let mut s = vec![f64::NAN; conv_pool_backward_scratch_len(&g, true)];
        conv_pool_backward(
            &g,
            act,
            &w,
            ConvPoolSaved {
                x: &x,
                y: &out,
                arg: &arg,
                cols: &cols,
            },
            &dy,
            ConvPoolGrads {
                dx: Some((&mut dx, accum)),
                dw: &mut dw,
                db: Some(&mut db),
            },
            &mut s,
        );
    });
    let what =
        format!("{dims:?} pool {pool} {act:?} {grad:?} quantised {quantised} {threads} threads");
    for (name, got, want) in [
        ("out", &out, &want),
        ("dx", &dx, &dx_want),
        ("dw", &dw, &dw_want),
        ("db", &db, &db_want),
    ] {
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-10, "{what}: {name} {a} vs {b}");
        }
    }
    dw
}

#[test]
fn the_big_shapes_really_are_chunked() {
    let g = geom([7, 20, 12, 12, 40, 5, 5]);
    crate::par::with_threads(2, || assert!(chunk_images(&g) < g.n));
    crate::par::with_threads(1, || assert_eq!(chunk_images(&g), g.n));
}

#[test]
fn sizes_that_would_overflow_are_errors_not_wraps() {
    let shape = |d: &[usize]| Shape::new(d).unwrap();
    let (x, w) = (shape(&[1, 1, 28, 28]), shape(&[8, 1, 3, 3]));
    for pad in [usize::MAX, 1 << 62, 1 << 63, usize::MAX / 2] {
        let e = ConvGeom::padded(x, w, pad, 1).unwrap_err().to_string();
        assert!(e.contains("conv2d"), "pad {pad}: {e}");
    }
    // A padding that fits a usize but makes an output nobody could address.
    let e = ConvGeom::padded(x, w, 1 << 40, 1).unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
    // A huge stride is one output position, not an error.
    let g = ConvGeom::padded(x, w, 1, usize::MAX).unwrap();
    assert_eq!((g.oh(), g.ow()), (1, 1));
    assert_eq!(out_side(5, 0, 6, 1), None);
    assert_eq!(out_side(5, 0, 3, 0), None);
    assert_eq!(out_side(usize::MAX, 1, 3, 1), None);
    // A hand-made geometry that padded() refuses has no output rather than a panic.
    let g = ConvGeom {
        pad: usize::MAX,
        ..ConvGeom::padded(x, w, 0, 1).unwrap()
    };
    assert_eq!(g.oh(), 0);
    // The fused conv-pool: the pool must fit and the argmax must fit 32 bits.
    let conv = ConvGeom::padded(x, w, 0, 1).unwrap();
    assert!(ConvPoolGeom::new(conv, 27, PoolGrad::First).is_err());
    assert!(ConvPoolGeom::new(conv, 0, PoolGrad::First).is_err());
    assert!(ConvPoolGeom::new(conv, 26, PoolGrad::First).is_ok());
    let big = ConvGeom::padded(shape(&[1, 1, 70000, 70000]), w, 0, 1).unwrap();
    let e = ConvPoolGeom::new(big, 2, PoolGrad::First).unwrap_err();
    assert!(e.to_string().contains("2^32"), "{e}");
}

#[test]
fn mismatched_channels_are_an_error() {
    let e = ConvGeom::new(
        Shape::new(&[2, 3, 8, 8]).unwrap(),
        Shape::new(&[4, 2, 3, 3]).unwrap(),
    );
    assert!(e.unwrap_err().to_string().contains("3 channels"));
    assert!(ConvGeom::new(
        Shape::new(&[2, 1, 4, 4]).unwrap(),
        Shape::new(&[4, 1, 5, 5]).unwrap()
    )
    .is_err());
}
