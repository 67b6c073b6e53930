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

/// Both kernels' tilings: each test shape runs under each (the filter tiling with its
/// own choice of positions per tile, and with 4 and 6 forced).
const TILINGS: [Choice; 4] = [
    |_| Tiling::Positions,
    Tiling::filters,
    |_| Tiling::Filters { p: 4 },
    |_| Tiling::Filters { p: 6 },
];

/// Runs `test` at 1 and 2 threads under each of [`TILINGS`].
fn in_every_setting(mut test: impl FnMut()) {
    for threads in [1, 2] {
        for tiling in TILINGS {
            force_tiling(tiling, || crate::par::with_threads(threads, &mut test));
        }
    }
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
        in_every_setting(|| check(g, &mut rng));
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
    let mut t = vec![f32::NAN; 3 * 4 * 16];
    arrange(&g, &w, false, &mut t);
    // [c][k][f_pad]: c = 1, k = 2, f = 0..3, then zeros to 16
    assert_eq!(
        &t[(4 + 2) * 16..(4 + 2) * 16 + 4],
        &[12.0, 112.0, 212.0, 0.0]
    );
    assert!(t[..2 * 4 * 16].iter().all(|v| !v.is_nan()));
    arrange(&g, &w, true, &mut t);
    // [f][k'][c_pad] = w[f][c][3 - k']: f = 2, k' = 0 -> k = 3
    assert_eq!(&t[(2 * 4) * 16..(2 * 4) * 16 + 3], &[203.0, 213.0, 0.0]);
}

/// `v` rounded to bfloat16 (as the bf16 kernels round their operands), widened.
fn bf16_of(v: &[f32]) -> Vec<f64> {
    v.iter()
        .map(|&v| f32::from_bits(u32::from(bf16_bits(v)) << 16) as f64)
        .collect()
}

/// The bf16 kernels against the f64 reference twice: on operands rounded to bf16 first,
/// where only the f32 sums differ (to 1e-6 per term, as the f32 kernels: a wrong pair,
/// channel or position is off by O(1)); and on the operands as they are, within what
/// rounding both factors of every product to bf16 allows (|error| <= (2u + u^2) sum |w x|,
/// u = 2^-8, plus the f32 sums.), which the test also shows is not a vacuous bound.
fn check_bf16(g: ConvGeom, rng: &mut rand_pcg::Pcg64) {
    let g = ConvGeom { bf16: true, ..g };
    let x = random(g.n * g.in_len(), rng);
    let w = random(g.f * g.ckk(), rng);
    let b = random(g.f, rng);
    let dout = random(g.n * g.out_len(), rng);
    let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (xr, wr, dr) = (bf16_of(&x), bf16_of(&w), bf16_of(&dout));
    let b64 = wide(&b);

    let out = fast_forward(&g, &x, &w, &b);
    close(
        "bf16 out",
        &g,
        &out,
        &conv2d_naive(&g, &xr, &wr, Some(&b64)),
        g.ckk(),
    );
    let modes = fast_backward(&g, &x, &w, &dout, 0.0);
    let [dx, dw, db] = &modes.add;
    let (dx0, mut dw0, _) = conv2d_backward_naive(&g, &xr, &wr, &dr);
    // A few-row filter gradient (a 1-channel input) stays f32 (`filter_grad_few`).
    let few = g.ckk() <= FEW_ROWS;
    if few {
        dw0 = conv2d_backward_naive(&g, &wide(&x), &wide(&w), &wide(&dout)).1;
    }
    let (_, _, db0) = conv2d_backward_naive(&g, &xr, &wr, &wide(&dout));
    close("bf16 dx", &g, dx, &dx0, g.f * g.kh * g.kw);
    close(
        "bf16 dx (overwrite)",
        &g,
        &modes.dx_over,
        &dx0,
        g.f * g.kh * g.kw,
    );
    close("bf16 dw", &g, dw, &dw0, g.n * g.spatial());
    close("bf16 db", &g, db, &db0, g.n * g.spatial());

    // Against the unrounded operands: the error bound of bf16 products.
    let u = 2f64.powi(-8);
    let abs = |v: &[f32]| v.iter().map(|&v| (v as f64).abs()).collect::<Vec<f64>>();
    let bound = conv2d_naive(&g, &abs(&x), &abs(&w), None);
    let exact = conv2d_naive(&g, &wide(&x), &wide(&w), Some(&b64));
    let mut worst = 0.0f64;
    for (i, ((&o, &e), &m)) in out.iter().zip(&exact).zip(&bound).enumerate() {
        let err = (o as f64 - e).abs();
        let tol = (2.0 * u + u * u) * m + 1e-6 * g.ckk() as f64;
        assert!(
            err <= tol,
            "{g:?}: out[{i}] = {o}, exact {e}, bound {tol:e}"
        );
        worst = worst.max(err / tol);
    }
    // The rounding shows: the bf16 results are not the f32 ones to f32's precision (so the
    // comparisons above ran the bf16 kernels).
    if g.ckk() >= 9 {
        assert!(
            worst > 1e-3,
            "{g:?}: bf16 output within {worst:e} of its bound: rounded at all?"
        );
        let f32s = fast_backward(&ConvGeom { bf16: false, ..g }, &x, &w, &dout, 0.0);
        let rounded = [("dx", dx, &f32s.add[0]), ("dw", dw, &f32s.add[1])];
        for (what, a, b) in rounded.into_iter().take(if few { 1 } else { 2 }) {
            let apart = a
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(apart > 1e-5, "{g:?}: bf16 {what} equals f32's to {apart:e}");
        }
    }
}

#[test]
fn bf16_equals_the_reference_on_rounded_operands_and_stays_in_its_bound() {
    if !bf16_supported() {
        eprintln!("no AVX-512 BF16 (or the direct path is off): bf16 convolutions run in f32");
        return;
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(22);
    // As the f32 test's shapes, with odd channel counts (a pair with a zero half) for the
    // forward (c) and for the input gradient (f), and odd position counts.
    for g in [
        geom([3, 1, 28, 28, 16, 3, 3], 1),
        geom([2, 16, 14, 14, 32, 3, 3], 1),
        geom([2, 64, 3, 3, 128, 3, 3], 1),
        geom([2, 32, 7, 7, 64, 3, 3], 1),
        geom([3, 1, 28, 28, 20, 5, 5], 0),
        geom([3, 7, 9, 11, 13, 3, 3], 1),
        geom([2, 5, 6, 5, 9, 2, 3], 1),
        geom([2, 3, 1, 1, 5, 1, 1], 0),
        geom([2, 2, 1, 1, 3, 3, 3], 2),
        geom([4, 2, 5, 5, 3, 5, 5], 4),
        geom([7, 3, 6, 6, 5, 3, 3], 1),
    ] {
        in_every_setting(|| check_bf16(g, &mut rng));
    }
}

#[test]
fn bf16_rounds_to_nearest_even() {
    let r = |x: f32| f32::from_bits(u32::from(bf16_bits(x)) << 16);
    assert_eq!(r(1.0), 1.0);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even, 1.
    assert_eq!(r(1.0 + 2f32.powi(-8)), 1.0);
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even, 1 + 2^-6.
    assert_eq!(r(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
    assert_eq!(r(-2.5e-3).signum(), -1.0);
    assert!(r(f32::NAN).is_nan());
    assert_eq!(r(f32::INFINITY), f32::INFINITY);
}

#[test]
fn small_images_take_the_filter_tiling_and_a_one_channel_input_the_positions() {
    // The 99.7% recipe's layers: 28x28 from one channel, then 14x14, 7x7 and 3x3 images.
    let tiling = |dims, pad| Plan::forward(&geom(dims, pad)).tiling;
    assert_eq!(tiling([1, 1, 28, 28, 32, 3, 3], 1), Tiling::Positions);
    for dims in [[1, 64, 7, 7, 128, 3, 3], [1, 128, 3, 3, 256, 3, 3]] {
        assert!(
            matches!(tiling(dims, 1), Tiling::Filters { .. }),
            "{dims:?}"
        );
    }
    // 3x3 outputs: 9 positions, two tiles of 5 (one wasted) rather than of 6 (three) or 4.
    assert_eq!(
        tiling([1, 128, 3, 3, 256, 3, 3], 1),
        Tiling::Filters { p: 5 }
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn transpose16_transposes() {
    if !enabled() {
        return;
    }
    let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
    let mut got = [0.0f32; 256];
    // SAFETY: AVX-512F is present (`enabled`); 256 floats each way.
    unsafe {
        use std::arch::x86_64::*;
        let mut r = [_mm512_setzero_ps(); 16];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm512_loadu_ps(m[16 * i..].as_ptr());
        }
        avx512::transpose16(&mut r);
        for (i, r) in r.iter().enumerate() {
            _mm512_storeu_ps(got[16 * i..].as_mut_ptr(), *r);
        }
    }
    for i in 0..16 {
        for j in 0..16 {
            assert_eq!(got[16 * j + i], m[16 * i + j], "row {i}, lane {j}");
        }
    }
}

/// The fused conv-pool on the direct kernels ([`Sink::Each`], [`Source::Each`]) against the
/// same kernels unfused (the whole batch's convolution, then each image pooled, biased and
/// activated; backward, the pool's gradient by the naive reference, then the convolution's
/// backward): the same operations in the same order, so equal to the bit, at both thread
/// counts, under every tiling, in f32 and bf16, with and without bias and input gradient
/// (written over or added to).
#[test]
fn the_fused_conv_pool_equals_the_kernels_unfused() {
    use crate::conv::{
        conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
        conv_pool_backward, conv_pool_backward_scratch_len, conv_pool_cols_len, conv_pool_forward,
        conv_pool_forward_scratch_len, ConvPoolGeom, ConvPoolGrads, ConvPoolOut, ConvPoolSaved,
    };
    use crate::pool::{maxpool_backward_naive, maxpool_naive, PoolGeom, PoolGrad};
    use crate::unary::Act;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(29);
    // (image and filter dims, padding, pool, activation, pool gradient, bias): the speed
    // run's stages (a 1-channel 28x28, lifted; 14x14; 7x7, a row and a column dropped by the
    // pool), then network3's layers (valid 5x5, bias, ties on quantised inputs).
    #[rustfmt::skip]
    let cases = [
        ([3, 1, 28, 28, 16, 3, 3], 1, 2, Act::Identity, PoolGrad::First, false),
        ([3, 16, 14, 14, 32, 3, 3], 1, 2, Act::Identity, PoolGrad::First, false),
        ([5, 32, 7, 7, 40, 3, 3], 1, 2, Act::Relu, PoolGrad::First, true),
        ([4, 1, 28, 28, 20, 5, 5], 0, 2, Act::Sigmoid, PoolGrad::First, true),
        ([3, 20, 12, 12, 40, 5, 5], 0, 2, Act::Relu, PoolGrad::Ties, true),
        ([2, 3, 9, 11, 17, 3, 3], 1, 3, Act::Tanh, PoolGrad::Ties, true),
    ];
    for (dims, pad, pool, act, grad, bias) in cases {
        for bf16 in [false, true] {
            let c = ConvGeom {
                bf16,
                ..geom(dims, pad)
            };
            let g = ConvPoolGeom::new(c, pool, grad).unwrap();
            // network3's 5x5 layers in f32 stay on im2col (`conv_pool::on_direct`), tested
            // against the definitions in `conv::tests`.
            let on_direct = c.kh * c.kw <= 9 || (bf16 && bf16_supported());
            if !enabled() || !on_direct {
                continue;
            }
            let quantised = grad == PoolGrad::Ties;
            let mut draw = |n: usize, scale: f32| -> Vec<f32> {
                let v = random(n, &mut rng);
                // Quarter steps make ties in the windows (and stay exact in bf16).
                v.iter()
                    .map(|x| {
                        if quantised {
                            (x * 4.0).round() / 4.0
                        } else {
                            x * scale
                        }
                    })
                    .collect()
            };
            let (x, w) = (draw(c.n * c.in_len(), 1.0), draw(c.f * c.ckk(), 0.5));
            let b = bias.then(|| draw(c.f, 1.0));
            let dy = draw(c.n * g.out_len(), 1.0);
            let pg = PoolGeom {
                planes: c.f,
                h: c.oh(),
                w: c.ow(),
                k: pool,
            };
            let (ol, cl) = (g.out_len(), c.out_len());
            in_every_setting(|| {
                // Unfused.
                let mut conv = vec![f32::NAN; c.n * cl];
                let mut s = vec![f32::NAN; conv2d_forward_scratch_len(&c)];
                conv2d_forward(&c, &x, &w, None, &mut conv, &mut s);
                let (mut want, mut dconv) = (Vec::new(), vec![0.0; c.n * cl]);
                for i in 0..c.n {
                    let ci = &conv[i * cl..(i + 1) * cl];
                    let (mut o, _) = maxpool_naive(&pg, ci);
                    if let Some(b) = &b {
                        for (row, bf) in o.chunks_exact_mut(ol / c.f).zip(b) {
                            row.iter_mut().for_each(|v| *v += bf);
                        }
                    }
                    act.apply(&mut o);
                    let dz: Vec<f32> = dy[i * ol..(i + 1) * ol]
                        .iter()
                        .zip(&o)
                        .map(|(&d, &y)| d * act.grad_from_output(y))
                        .collect();
                    dconv[i * cl..(i + 1) * cl]
                        .copy_from_slice(&maxpool_backward_naive(&pg, ci, &dz, grad));
                    want.extend(o);
                }
                let (mut dx_want, mut dw_want) = (vec![0.0; x.len()], vec![0.0; w.len()]);
                let mut db_want = vec![0.0; c.f];
                let mut s = vec![f32::NAN; conv2d_backward_scratch_len(&c, true)];
                let grads = ConvGrads {
                    dx: Some((&mut dx_want, crate::Accum::Add)),
                    dw: &mut dw_want,
                    db: b.as_ref().map(|_| &mut db_want[..]),
                };
                conv2d_backward(&c, &x, &w, &dconv, grads, &mut s);

                // Fused.
                assert_eq!(conv_pool_cols_len::<f32>(&g), 0);
                let (mut out, mut arg) = (vec![f32::NAN; c.n * ol], vec![0u32; c.n * ol]);
                let mut s = vec![f32::NAN; conv_pool_forward_scratch_len(&g)];
                let outs = ConvPoolOut {
                    out: &mut out,
                    arg: &mut arg,
                    cols: &mut [],
                };
                conv_pool_forward(&g, act, &x, &w, b.as_deref(), outs, &mut s);
                let what = format!("{dims:?} pad {pad} pool {pool} {act:?} {grad:?} bias {bias} bf16 {bf16} {} threads", crate::par::threads());
                let same = |name: &str, got: &[f32], want: &[f32]| {
                    assert_eq!(got.len(), want.len(), "{what}: {name}");
                    let bad = got
                        .iter()
                        .zip(want)
                        .position(|(a, b)| a.to_bits() != b.to_bits());
                    if let Some(i) = bad {
                        panic!("{what}: {name}[{i}] = {}, unfused {}", got[i], want[i]);
                    }
                };
                same("output", &out, &want);
                for (with_dx, accum) in [
                    (true, Accum::Add),
                    (true, Accum::Overwrite),
                    (false, Accum::Add),
                ] {
                    // Added to zeros, or written over NaNs.
                    let fill = if accum == Accum::Add { 0.0 } else { f32::NAN };
                    let (mut dx, mut dw) = (vec![fill; x.len()], vec![0.0; w.len()]);
                    let mut db = vec![0.0; c.f];
                    let mut s = vec![f32::NAN; conv_pool_backward_scratch_len(&g, with_dx)];
                    let saved = ConvPoolSaved {
                        x: &x,
                        y: &out,
                        arg: &arg,
                        cols: &[],
                    };
                    let grads = ConvPoolGrads {
                        dx: with_dx.then_some((&mut dx[..], accum)),
                        dw: &mut dw,
                        db: b.as_ref().map(|_| &mut db[..]),
                    };
                    conv_pool_backward(&g, act, &w, saved, &dy, grads, &mut s);
                    same("filter gradient", &dw, &dw_want);
                    same("bias gradient", &db, &db_want);
                    if with_dx {
                        same("input gradient", &dx, &dx_want);
                    } else {
                        assert!(dx.iter().all(|&v| v == fill), "{what}: dx untouched");
                    }
                }
            });
        }
    }
}
