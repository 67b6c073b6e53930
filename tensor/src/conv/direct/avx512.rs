//! The direct convolution's AVX-512 kernels.

use super::{Plan, Tiling, LANES};
use std::arch::x86_64::*;

/// Filters per forward tile (one broadcast weight each).
const FT: usize = 8;
/// Output vectors per forward tile: 8 x 3 = 24 accumulators of the 32 registers.
const VT: usize = 3;

/// `out[f][oy][ox] (+)= bias[f] + sum over c, ki, kj of wt[c][ki][kj][f] *
/// xp[c][oy*wp + ox + ki*wp + kj]`, computed over the padded width (position `p = oy*wp +
/// ox`) and stored, valid lanes only, straight into `out` (`[f, oh, ow]`): with `add`, added
/// to what is there. `bias` may be null; `tile` is [`Plan::tile_len`] elements of scratch.
///
/// # Safety
/// AVX-512F; `xp` holds `c` planes, `wt` `c*kh*kw*f_pad` weights, `out` `f*oh*ow` elements,
/// `bias` null or `f`, `tile` [`Plan::tile_len`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn conv(pl: &Plan, xp: *const f32, wt: *const f32, res: &Out) {
    conv_with::<F32>(pl, xp, wt, res)
}

/// What the f32 and bf16 kernels do differently: how many channels (forward) or positions
/// (filter gradient) one 32-bit element of their operands holds, the bytes of one element of
/// the planes the filter gradient broadcasts from, and the multiply-add of a broadcast
/// element into a vector. The bf16 operands are pairs in u32, handled here by their bits.
trait Madd {
    const PER: usize;
    const PLANE_BYTES: usize;
    /// `acc + w * x` (f32), or `acc + w.lo * x.lo + w.hi * x.hi` per lane (bf16 pairs).
    ///
    /// # Safety
    /// AVX-512F, and AVX-512 BF16 for the bf16 pairs.
    unsafe fn madd(acc: __m512, w: __m512, x: __m512) -> __m512;
}

/// f32 operands, one FMA per product.
struct F32;

impl Madd for F32 {
    const PER: usize = 1;
    const PLANE_BYTES: usize = 4;
    #[inline(always)]
    unsafe fn madd(acc: __m512, w: __m512, x: __m512) -> __m512 {
        _mm512_fmadd_ps(w, x, acc)
    }
}

/// bf16 pairs, two products per lane (`vdpbf16ps`).
struct Bf16;

impl Madd for Bf16 {
    const PER: usize = 2;
    const PLANE_BYTES: usize = 2;
    #[inline(always)]
    unsafe fn madd(acc: __m512, w: __m512, x: __m512) -> __m512 {
        _mm512_dpbf16_ps(
            acc,
            std::mem::transmute::<__m512, __m512bh>(w),
            std::mem::transmute::<__m512, __m512bh>(x),
        )
    }
}

/// [`conv`]'s tiling, for either kernel.
///
/// # Safety
/// As [`conv`] (as [`conv_bf16`] for [`Bf16`]).
#[inline(always)]
unsafe fn conv_with<K: Madd>(pl: &Plan, xp: *const f32, wt: *const f32, res: &Out) {
    if let Tiling::Filters { p } = pl.tiling {
        return match p {
            4 => conv_filters::<K, 4>(pl, xp, wt, res),
            5 => conv_filters::<K, 5>(pl, xp, wt, res),
            _ => conv_filters::<K, 6>(pl, xp, wt, res),
        };
    }
    let mut f0 = 0;
    while f0 < pl.f {
        let fb = (pl.f - f0).min(FT);
        let mut v0 = 0;
        while v0 < pl.nv {
            let vb = (pl.nv - v0).min(VT);
            match vb {
                1 => conv_f::<K, 1>(fb, pl, xp, wt, res, f0, v0),
                2 => conv_f::<K, 2>(fb, pl, xp, wt, res, f0, v0),
                _ => conv_f::<K, 3>(fb, pl, xp, wt, res, f0, v0),
            }
            v0 += vb;
        }
        f0 += fb;
    }
}

/// Where [`conv`] stores: `out[f][oy][ox] (+)= sum + bias[f]` (added to what is there with
/// `add`; `bias` may be null), through `tile` ([`Plan::tile_len`] floats of scratch) under the
/// filter tiling.
pub(super) struct Out {
    pub(super) out: *mut f32,
    pub(super) bias: *const f32,
    pub(super) add: bool,
    /// The filter tiling's sums, position-major, before they are transposed into `out`.
    pub(super) tile: *mut f32,
}

/// # Safety
/// As [`conv_with`]; filters `f0..f0 + fb` and output vectors `v0..v0 + V` inside the plan.
#[inline(always)]
unsafe fn conv_f<K: Madd, const V: usize>(
    fb: usize,
    pl: &Plan,
    xp: *const f32,
    wt: *const f32,
    res: &Out,
    f0: usize,
    v0: usize,
) {
    match fb {
        1 => conv_tile::<K, 1, V>(pl, xp, wt, res, f0, v0),
        2 => conv_tile::<K, 2, V>(pl, xp, wt, res, f0, v0),
        3 => conv_tile::<K, 3, V>(pl, xp, wt, res, f0, v0),
        4 => conv_tile::<K, 4, V>(pl, xp, wt, res, f0, v0),
        5 => conv_tile::<K, 5, V>(pl, xp, wt, res, f0, v0),
        6 => conv_tile::<K, 6, V>(pl, xp, wt, res, f0, v0),
        7 => conv_tile::<K, 7, V>(pl, xp, wt, res, f0, v0),
        _ => conv_tile::<K, 8, V>(pl, xp, wt, res, f0, v0),
    }
}

/// Filters `f0..f0+F`, output vectors `v0..v0+V`: per tap (and channel, or channel pair),
/// `V` loads of the shifted row and `F` broadcast weights feed `F*V` multiply-adds.
///
/// # Safety
/// As [`conv_with`]; filters `f0..f0 + F` and output vectors `v0..v0 + V` inside the plan.
#[inline(always)]
unsafe fn conv_tile<K: Madd, const F: usize, const V: usize>(
    pl: &Plan,
    xp: *const f32,
    wt: *const f32,
    res: &Out,
    f0: usize,
    v0: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; F];
    for c in 0..pl.c.div_ceil(K::PER) {
        let xc = xp.add(c * pl.plane + v0 * LANES);
        let wc = wt.add(c * pl.kh * pl.kw * pl.f_pad() + f0);
        for ki in 0..pl.kh {
            for kj in 0..pl.kw {
                let xs = xc.add(ki * pl.wp + kj);
                let ws = wc.add((ki * pl.kw + kj) * pl.f_pad());
                let mut v = [_mm512_setzero_ps(); V];
                for (j, v) in v.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(xs.add(j * LANES));
                }
                for (i, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*ws.add(i));
                    for (a, &v) in a.iter_mut().zip(&v) {
                        *a = K::madd(*a, wv, v);
                    }
                }
            }
        }
    }
    store(pl, res, &acc, f0, v0);
}

/// The tile's sums into `out` (kept out of line so that the segments' bookkeeping does not
/// take registers from the accumulators: inlined, it made LLVM spill them).
///
/// # Safety
/// As [`conv`]; filters `f0..f0 + F` and output vectors `v0..v0 + V` inside the plan.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn store<const F: usize, const V: usize>(
    pl: &Plan,
    res: &Out,
    acc: &[[__m512; V]; F],
    f0: usize,
    v0: usize,
) {
    let chan = pl.oh * pl.ow;
    for (i, a) in acc.iter().enumerate() {
        let dst = res.out.add((f0 + i) * chan);
        let b = if res.bias.is_null() {
            _mm512_setzero_ps()
        } else {
            _mm512_set1_ps(*res.bias.add(f0 + i))
        };
        for (j, &a) in a.iter().enumerate() {
            let a = _mm512_add_ps(a, b);
            for s in &pl.segs[pl.first[v0 + j]..pl.first[v0 + j + 1]] {
                let o = dst.wrapping_offset(s.base);
                let v = if res.add {
                    _mm512_add_ps(a, _mm512_maskz_loadu_ps(s.mask, o))
                } else {
                    a
                };
                _mm512_mask_storeu_ps(o, s.mask, v);
            }
        }
    }
}

/// [`Tiling::Filters`]: tiles of up to 4 vectors of 16 filters by `P` output positions (24
/// accumulators at most), positions taken in order over the valid `oh x ow` outputs.
///
/// # Safety
/// As [`conv_with`].
#[inline(always)]
unsafe fn conv_filters<K: Madd, const P: usize>(
    pl: &Plan,
    xp: *const f32,
    wt: *const f32,
    res: &Out,
) {
    let (fv, n) = (pl.f_pad() / LANES, pl.oh * pl.ow);
    let mut v0 = 0;
    while v0 < fv {
        let vb = (fv - v0).min(4);
        let mut q0 = 0;
        while q0 < n {
            let np = (n - q0).min(P);
            match vb {
                1 => filters_tile::<K, 1, P>(pl, xp, wt, res, v0, q0, np),
                2 => filters_tile::<K, 2, P>(pl, xp, wt, res, v0, q0, np),
                3 => filters_tile::<K, 3, P>(pl, xp, wt, res, v0, q0, np),
                _ => filters_tile::<K, 4, P>(pl, xp, wt, res, v0, q0, np),
            }
            q0 += np;
        }
        flush_filters(pl, res, v0, vb);
        v0 += vb;
    }
}

/// Filter vectors `v0..v0+V` at output positions `q0..q0+np` (`np <= P`; the missing
/// positions repeat the last and are not stored): per tap and channel (or channel pair), `V`
/// weight vectors and `P` broadcast input values feed `V*P` multiply-adds.
///
/// # Safety
/// As [`conv_with`]; the filter vectors and positions inside the plan, `np >= 1`.
#[inline(always)]
unsafe fn filters_tile<K: Madd, const V: usize, const P: usize>(
    pl: &Plan,
    xp: *const f32,
    wt: *const f32,
    res: &Out,
    v0: usize,
    q0: usize,
    np: usize,
) {
    let (kk, fp) = (pl.kh * pl.kw, pl.f_pad());
    let mut off = [0usize; P];
    for (p, o) in off.iter_mut().enumerate() {
        let q = q0 + p.min(np - 1);
        *o = (q / pl.ow) * pl.wp + q % pl.ow;
    }
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for c in 0..pl.c.div_ceil(K::PER) {
        let xc = xp.add(c * pl.plane);
        let wc = wt.add(c * kk * fp + v0 * LANES);
        for ki in 0..pl.kh {
            for kj in 0..pl.kw {
                let xs = xc.add(ki * pl.wp + kj);
                let ws = wc.add((ki * pl.kw + kj) * fp);
                let mut w = [_mm512_setzero_ps(); V];
                for (v, w) in w.iter_mut().enumerate() {
                    *w = _mm512_loadu_ps(ws.add(v * LANES));
                }
                for (a, &o) in acc.iter_mut().zip(&off) {
                    let xv = _mm512_set1_ps(*xs.add(o));
                    for (a, &w) in a.iter_mut().zip(&w) {
                        *a = K::madd(*a, w, xv);
                    }
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate().take(np) {
        let row = res.tile.add((q0 + p) * TILE_ROW);
        for (v, &a) in a.iter().enumerate() {
            _mm512_storeu_ps(row.add(v * LANES), a);
        }
    }
}

/// Floats per position of [`Out::tile`]: the 4 filter vectors of a filter tile.
pub(super) const TILE_ROW: usize = 4 * LANES;

/// Filter vectors `v0..v0+vb`'s sums, `tile[q][v*16 + l]`, into `out[f][q]` (`f = (v0 + v)*16
/// + l`, the valid filters), 16 positions by 16 filters per transpose.
///
/// # Safety
/// As [`conv`]; the tile holds the block's sums at all `oh*ow` positions.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn flush_filters(pl: &Plan, res: &Out, v0: usize, vb: usize) {
    let n = pl.oh * pl.ow;
    for q0 in (0..n).step_by(LANES) {
        let m = crate::isa::mask16(n - q0);
        for v in 0..vb {
            // All 16 rows, those past the last position too (the tile has room for them;
            // their lanes are never stored): a fixed count keeps `r` in registers.
            let mut r = [_mm512_setzero_ps(); LANES];
            for (i, r) in r.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(res.tile.add((q0 + i) * TILE_ROW + v * LANES));
            }
            transpose16(&mut r);
            let f0 = (v0 + v) * LANES;
            let put = |j: usize, s: __m512| {
                let f = f0 + j;
                let dst = res.out.add(f * n + q0);
                let mut s = s;
                if !res.bias.is_null() {
                    s = _mm512_add_ps(s, _mm512_set1_ps(*res.bias.add(f)));
                }
                if res.add {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, dst));
                }
                _mm512_mask_storeu_ps(dst, m, s);
            };
            if f0 + LANES <= pl.f {
                for (j, &s) in r.iter().enumerate() {
                    put(j, s);
                }
            } else {
                for (j, &s) in r.iter().enumerate().take(pl.f - f0) {
                    put(j, s);
                }
            }
        }
    }
}

/// One image's filter gradient where the filter rows `j = (c, ki, kj)` are few (a
/// 1-channel input): `dwt[j][f] += sum over outputs (oy, ox) of dout[f][oy][ox] *
/// xp[c][(oy + ki)*wp + ox + kj]`, vectors over 16 output columns straight from `dout`
/// (no transpose), two filters by all rows at once, summed across lanes at the end. In f32
/// under bf16 convolutions too: rounding the operands cost more than these few products.
///
/// # Safety
/// AVX-512F; `c*kh*kw <= 9`; `xp` holds `c` f32 planes, `dout` `f*oh*ow`, `dwt` `c*kh*kw`
/// rows of `f_pad`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn filter_grad_few(pl: &Plan, xp: *const f32, dout: *const f32, dwt: *mut f32) {
    const J: usize = super::FEW_ROWS;
    let (kk, fp) = (pl.kh * pl.kw, pl.f_pad());
    let rows = pl.c * kk;
    let mut offs = [0usize; J];
    for (j, o) in offs.iter_mut().enumerate().take(rows) {
        let (c, k) = (j / kk, j % kk);
        *o = c * pl.plane + (k / pl.kw) * pl.wp + k % pl.kw;
    }
    let chan = pl.oh * pl.ow;
    let mut f0 = 0;
    while f0 < pl.f {
        let nf = (pl.f - f0).min(2);
        let mut acc = [[_mm512_setzero_ps(); J]; 2];
        for oy in 0..pl.oh {
            for ox in (0..pl.ow).step_by(LANES) {
                let m = crate::isa::mask16(pl.ow - ox);
                let q = oy * pl.ow + ox;
                let d = [
                    _mm512_maskz_loadu_ps(m, dout.add(f0 * chan + q)),
                    _mm512_maskz_loadu_ps(m, dout.add((f0 + nf - 1) * chan + q)),
                ];
                let xr = xp.add(oy * pl.wp + ox);
                for (j, &o) in offs.iter().enumerate().take(rows) {
                    let xv = _mm512_maskz_loadu_ps(m, xr.add(o));
                    acc[0][j] = _mm512_fmadd_ps(d[0], xv, acc[0][j]);
                    acc[1][j] = _mm512_fmadd_ps(d[1], xv, acc[1][j]);
                }
            }
        }
        for (i, a) in acc.iter().enumerate().take(nf) {
            for (j, &a) in a.iter().enumerate().take(rows) {
                *dwt.add(j * fp + f0 + i) += _mm512_reduce_add_ps(a);
            }
        }
        f0 += nf;
    }
}

/// The 16 x 16 transpose of `r` (lane `j` of row `i` becomes lane `i` of row `j`): pairs of
/// rows interleaved by 32 bits, then by 64, then 128-bit blocks shuffled twice.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
pub(super) unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let (pd, ps) = (_mm512_castps_pd, _mm512_castpd_ps);
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        r[4 * i] = ps(_mm512_unpacklo_pd(pd(a), pd(c)));
        r[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(a), pd(c)));
        r[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(b), pd(d)));
        r[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(b), pd(d)));
    }
    // Rows 4i..4i+4 now hold, per 128-bit block k, the 4 x 4 transposes of columns 4k..4k+4.
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(r[i], r[4 + i]);
        t[4 + i] = _mm512_shuffle_f32x4::<0xdd>(r[i], r[4 + i]);
        t[8 + i] = _mm512_shuffle_f32x4::<0x88>(r[8 + i], r[12 + i]);
        t[12 + i] = _mm512_shuffle_f32x4::<0xdd>(r[8 + i], r[12 + i]);
    }
    for i in 0..4 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
        r[4 + i] = _mm512_shuffle_f32x4::<0x88>(t[4 + i], t[12 + i]);
        r[8 + i] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[8 + i]);
        r[12 + i] = _mm512_shuffle_f32x4::<0xdd>(t[4 + i], t[12 + i]);
    }
}

/// Copies one image `[c, h, w]` into its zero-padded planes.
///
/// # Safety
/// AVX-512F; `x` holds `c*h*w` elements, `xp` `c` planes.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pad(pl: &Plan, x: *const f32, xp: *mut f32) {
    let zero = _mm512_setzero_ps();
    for c in 0..pl.c {
        let plane = xp.add(c * pl.plane);
        for o in (0..pl.plane).step_by(LANES) {
            _mm512_storeu_ps(plane.add(o), zero);
        }
        for y in 0..pl.h {
            let (src, dst) = (
                x.add((c * pl.h + y) * pl.w),
                plane.add((pl.ph + y) * pl.wp + pl.pw),
            );
            for o in (0..pl.w).step_by(LANES) {
                let m = crate::isa::mask16(pl.w - o);
                _mm512_mask_storeu_ps(dst.add(o), m, _mm512_maskz_loadu_ps(m, src.add(o)));
            }
        }
    }
}

/// The `kh*kw` taps of a 1-channel padded image as planes of its `oh x ow` outputs: plane
/// `ki*kw + kj` holds `xp[(oy + ki)*wp + ox + kj]` at `oy*ow + ox`.
///
/// # Safety
/// AVX-512F; `pl.c == 1`; `xp` holds the plan's plane, `cols` `kh*kw*oh*ow` floats.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn copy_taps(pl: &Plan, xp: *const f32, cols: *mut f32) {
    let n = pl.oh * pl.ow;
    for ki in 0..pl.kh {
        for kj in 0..pl.kw {
            let plane = cols.add((ki * pl.kw + kj) * n);
            for oy in 0..pl.oh {
                let (src, dst) = (xp.add((oy + ki) * pl.wp + kj), plane.add(oy * pl.ow));
                for o in (0..pl.ow).step_by(LANES) {
                    let m = crate::isa::mask16(pl.ow - o);
                    _mm512_mask_storeu_ps(dst.add(o), m, _mm512_maskz_loadu_ps(m, src.add(o)));
                }
            }
        }
    }
}

/// Transposes one image's output gradient `[f, oh, ow]` to position-major over the padded
/// width, `dzt[p][f]` with `p = oy*wp + ox` and rows of `f_pad` filters; zeros at positions
/// of no output and in the padding filters (so that they add nothing). 16 positions of a row
/// by 16 filters per transpose.
///
/// # Safety
/// AVX-512F; `dout` holds `f*oh*ow` elements, `dzt` `nv*16*f_pad`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn spread(pl: &Plan, dout: *const f32, dzt: *mut f32) {
    let (fp, chan) = (pl.f_pad(), pl.oh * pl.ow);
    let zero = _mm512_setzero_ps();
    for p in 0..pl.nv * LANES {
        if p / pl.wp >= pl.oh || p % pl.wp >= pl.ow {
            for o in (0..fp).step_by(LANES) {
                _mm512_storeu_ps(dzt.add(p * fp + o), zero);
            }
        }
    }
    for oy in 0..pl.oh {
        for ox0 in (0..pl.ow).step_by(LANES) {
            let (nx, m) = ((pl.ow - ox0).min(LANES), crate::isa::mask16(pl.ow - ox0));
            let src = dout.add(oy * pl.ow + ox0);
            let dst = dzt.add((oy * pl.wp + ox0) * fp);
            for f0 in (0..fp).step_by(LANES) {
                let mut r = [zero; LANES];
                for (i, r) in r.iter_mut().enumerate().take(pl.f - f0.min(pl.f)) {
                    *r = _mm512_maskz_loadu_ps(m, src.add((f0 + i) * chan));
                }
                transpose16(&mut r);
                for (i, &r) in r.iter().enumerate().take(nx) {
                    _mm512_storeu_ps(dst.add(i * fp + f0), r);
                }
            }
        }
    }
}

/// `dwt[j][f] += sum over images and positions p of dzt[p][f] * xp[c][p + ki*wp + kj]`, for
/// every filter row `j = (c, ki, kj)` (rows of `f_pad`). Vectors run over 16 filters at once and one weight
/// row's input value is broadcast, as in the forward: no horizontal sums, no unaligned
/// vector loads (at 16 positions per vector and a sum per weight this kernel ran at half
/// the forward's rate).
///
/// # Safety
/// AVX-512F; `xp` holds `imgs` images of `c` planes, `dzt` `imgs` of [`Plan::spread_len`],
/// `dw` `c*kh*kw*f_pad` elements.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn filter_grad(
    pl: &Plan,
    imgs: usize,
    xp: *const f32,
    dzt: *const f32,
    dw: *mut f32,
) {
    filter_grad_with::<F32>(pl, imgs, xp.cast(), dzt, dw)
}

/// [`filter_grad`]'s tiling, for either kernel: `xp`'s images are `4 * padded_len` bytes
/// apart, `dzt`'s `spread_len` 32-bit elements, in both.
///
/// # Safety
/// As [`filter_grad`] (as [`filter_grad_bf16`] for [`Bf16`]).
#[inline(always)]
unsafe fn filter_grad_with<K: Madd>(
    pl: &Plan,
    imgs: usize,
    xp: *const u8,
    dzt: *const f32,
    dw: *mut f32,
) {
    let fv = pl.f_pad() / LANES;
    let mut v0 = 0;
    while v0 < fv {
        // 24 accumulators: filter vectors x weight rows.
        match fv - v0 {
            1 => grad_rows::<K, 1, 24>(pl, imgs, xp, dzt, dw, v0),
            2 => grad_rows::<K, 2, 12>(pl, imgs, xp, dzt, dw, v0),
            3 => grad_rows::<K, 3, 8>(pl, imgs, xp, dzt, dw, v0),
            _ => grad_rows::<K, 4, 6>(pl, imgs, xp, dzt, dw, v0),
        }
        v0 += (fv - v0).min(4);
    }
}

/// Filter vectors `v0..v0+V` against every weight row, `J` rows at a time (the last tile's
/// missing rows repeat its last row and are not stored); positions one (f32) or two (bf16
/// pairs) per multiply-add.
///
/// # Safety
/// As [`filter_grad_with`]; filter vectors `v0..v0 + V` inside the plan's padded filters.
#[inline(always)]
unsafe fn grad_rows<K: Madd, const V: usize, const J: usize>(
    pl: &Plan,
    imgs: usize,
    xp: *const u8,
    dzt: *const f32,
    dw: *mut f32,
    v0: usize,
) {
    let (kk, fp, eb) = (pl.kh * pl.kw, pl.f_pad(), K::PLANE_BYTES);
    let ckk = pl.c * kk;
    let steps = &pl.steps[K::PER - 1];
    let mut j0 = 0;
    while j0 < ckk {
        let jb = (ckk - j0).min(J);
        let mut rows = [xp; J];
        for (jj, r) in rows.iter_mut().enumerate() {
            let j = j0 + jj.min(jb - 1);
            let (c, k) = (j / kk, j % kk);
            *r = xp.add((c * pl.plane + (k / pl.kw) * pl.wp + k % pl.kw) * eb);
        }
        let mut acc = [[_mm512_setzero_ps(); V]; J];
        for img in 0..imgs {
            let xi = img * 4 * pl.padded_len();
            let d = dzt.add(img * pl.spread_len() + v0 * LANES);
            let mut xr = rows;
            for r in xr.iter_mut() {
                *r = r.add(xi);
            }
            for &t in steps {
                let t = t as usize;
                let dp = d.add(t * fp);
                let mut dv = [_mm512_setzero_ps(); V];
                for (v, dv) in dv.iter_mut().enumerate() {
                    *dv = _mm512_loadu_ps(dp.add(v * LANES));
                }
                for (a, r) in acc.iter_mut().zip(&xr) {
                    // One position's float, or two positions' bf16 pair, by its bits.
                    let x = (r.add(t * K::PER * eb) as *const f32).read_unaligned();
                    let xv = _mm512_set1_ps(x);
                    for (a, &dv) in a.iter_mut().zip(&dv) {
                        *a = K::madd(*a, xv, dv);
                    }
                }
            }
        }
        store_grad(pl, &acc, jb, j0, v0, dw);
        j0 += jb;
    }
}

/// Adds a tile's sums into `dwt[j][f]` (rows of `f_pad`; out of line: see [`store`]).
///
/// # Safety
/// As [`filter_grad`]; rows `j0..j0 + jb` and filter vectors `v0..v0 + V` inside the
/// plan.
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn store_grad<const V: usize, const J: usize>(
    pl: &Plan,
    acc: &[[__m512; V]; J],
    jb: usize,
    j0: usize,
    v0: usize,
    dwt: *mut f32,
) {
    for (jj, a) in acc.iter().enumerate().take(jb) {
        let row = dwt.add((j0 + jj) * pl.f_pad() + v0 * LANES);
        for (v, &a) in a.iter().enumerate() {
            let d = row.add(v * LANES);
            _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), a));
        }
    }
}

// bf16 kernels (AVX-512 BF16). `vdpbf16ps` multiplies pairs of bf16 and adds both products to
// one f32 lane: twice the FMA's multiplies per instruction. Each u32 holds a pair, the first
// element in its low half: two input channels at one position for the forward and input
// gradient (and the two channels' weights of one tap, broadcast), two positions for the
// filter gradient.

/// Round-to-nearest-even bf16 of 16 floats, one per u32 (high half zero).
///
/// # Safety
/// AVX-512F and AVX-512 BF16.
#[inline(always)]
unsafe fn bf16_lanes(a: __m512) -> __m512i {
    _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
        _mm512_cvtneps_pbh(a),
    ))
}

/// `a` and `b` rounded to bf16 and paired: lane `l` is `(a[l], b[l])`.
///
/// # Safety
/// AVX-512F and AVX-512 BF16.
#[inline(always)]
unsafe fn pair(a: __m512, b: __m512) -> __m512i {
    _mm512_or_si512(bf16_lanes(a), _mm512_slli_epi32::<16>(bf16_lanes(b)))
}

/// [`pad`] in bf16 with channels paired: plane `cp` holds channels `2cp` and `2cp + 1` (zero
/// for an odd count's last) at each padded position.
///
/// # Safety
/// AVX-512F and AVX-512 BF16; `x` holds `c*h*w` elements, `xb` `c.div_ceil(2)` planes.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pad_bf16(pl: &Plan, x: *const f32, xb: *mut u32) {
    for cp in 0..pl.c.div_ceil(2) {
        let plane = xb.add(cp * pl.plane);
        std::ptr::write_bytes(plane, 0, pl.plane);
        let (c0, c1) = (2 * cp, 2 * cp + 1);
        for y in 0..pl.h {
            let dst = plane.add((pl.ph + y) * pl.wp + pl.pw);
            let s0 = x.add((c0 * pl.h + y) * pl.w);
            for o in (0..pl.w).step_by(LANES) {
                let m = crate::isa::mask16(pl.w - o);
                let a = _mm512_maskz_loadu_ps(m, s0.add(o));
                let b = if c1 < pl.c {
                    _mm512_maskz_loadu_ps(m, x.add((c1 * pl.h + y) * pl.w + o))
                } else {
                    _mm512_setzero_ps()
                };
                _mm512_mask_storeu_epi32(dst.add(o) as *mut i32, m, pair(a, b));
            }
        }
    }
}

/// [`conv`] on bf16 channel pairs ([`pad_bf16`]) and filter pairs ([`super::arrange_bf16`]).
///
/// # Safety
/// AVX-512F and AVX-512 BF16; `xb` holds `c.div_ceil(2)` planes, `wt`
/// `c.div_ceil(2)*kh*kw*f_pad` pairs, `out` `f*oh*ow` elements, `bias` null or `f`, `tile`
/// [`Plan::tile_len`].
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn conv_bf16(pl: &Plan, xb: *const u32, wt: *const u32, res: &Out) {
    conv_with::<Bf16>(pl, xb.cast(), wt.cast(), res)
}

/// Rounds `n` floats (a multiple of 16) at `p` to bf16 in place: afterwards the memory holds
/// `n` u16 (the first half of the bytes).
///
/// # Safety
/// AVX-512F and AVX-512 BF16; `p` holds `n` floats.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn to_bf16_in_place(p: *mut f32, n: usize) {
    let q = p as *mut u16;
    for o in (0..n).step_by(LANES) {
        // Block o/16 is read whole before the write, which lands at or below it.
        let v = _mm512_loadu_ps(p.add(o));
        _mm256_storeu_si256(
            q.add(o) as *mut __m256i,
            std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v)),
        );
    }
}

/// Pairs the rows of a [`spread`] output gradient in place: row `r` of `fp` u32 becomes the
/// bf16 pairs `(dzt[2r][f], dzt[2r + 1][f])`, for the `rows / 2` pairs of its even `rows`.
///
/// # Safety
/// AVX-512F and AVX-512 BF16; `dzt` holds `rows * fp` floats, `fp` a multiple of 16.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pair_rows_in_place(dzt: *mut f32, rows: usize, fp: usize) {
    let out = dzt as *mut u32;
    for r in 0..rows / 2 {
        for o in (0..fp).step_by(LANES) {
            // Rows 2r and 2r+1 are read before row r is written (r <= 2r), and a block of
            // row r is only written after its own floats (r = 0) were read.
            let a = _mm512_loadu_ps(dzt.add(2 * r * fp + o));
            let b = _mm512_loadu_ps(dzt.add((2 * r + 1) * fp + o));
            _mm512_storeu_si512(out.add(r * fp + o) as *mut _, pair(a, b));
        }
    }
}

/// [`filter_grad`] in bf16: positions in pairs, `xq` the padded planes in bf16
/// ([`to_bf16_in_place`], images `2 * padded_len` u16 apart) and `dz` the paired output
/// gradients ([`pair_rows_in_place`], images `spread_len` u32 apart).
///
/// # Safety
/// AVX-512F and AVX-512 BF16; the buffers hold `imgs` images as said; `dw` `c*kh*kw*f_pad`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn filter_grad_bf16(
    pl: &Plan,
    imgs: usize,
    xq: *const u16,
    dz: *const u32,
    dw: *mut f32,
) {
    filter_grad_with::<Bf16>(pl, imgs, xq.cast(), dz.cast(), dw)
}
