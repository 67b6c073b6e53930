//! Direct stride-1 convolution for f32 on AVX-512, without im2col ("shifted rows").
//!
//! Each input channel is copied once into a zero-padded plane of row stride `wp` (the padded
//! width), and the output is computed over the same row stride: output position
//! `p = oy*wp + ox` reads input `p + ki*wp + kj` for filter tap `(ki, kj)`, so every tap is one
//! contiguous, shifted row of the plane. The `wp - ow` positions past each output row are
//! computed and never stored: each vector's valid lanes go straight to `[f, oh, ow]` through
//! one lane mask per output row it touches.
//!
//! - forward: 16 output positions of a channel per vector, one broadcast weight per filter
//!   (8 filters x 3 vectors = 24 accumulators);
//! - input gradient: the same kernel on the padded output gradient, with the filters flipped
//!   and transposed (padding `k - 1 - pad` brings it back to the input's size);
//! - filter gradient: 16 filters per vector against one broadcast input value per weight row,
//!   summed over positions and a group of images (the output gradient transposed to
//!   position-major first).
//!
//! Nothing is packed and nothing unfolded: im2col + GEMM spent about half its time writing and
//! packing the 9x larger unfolded matrix, and per-image GEMMs of 32 x 288 x 784 are too small
//! to amortise the packing.
//!
//! [`crate::conv::conv2d_forward`] and [`crate::conv::conv2d_backward`] take this path for f32
//! when the CPU has AVX-512F and the stride is 1; `NNDL_CONV=im2col` (or `NNDL_ISA=avx2` /
//! `portable`) turns it off, to time or test the other path. The tests compare it with [`crate::conv::conv2d_naive`] on random and
//! edge shapes at 1 and 2 threads.

use crate::conv::ConvGeom;
use crate::par::{self, SyncPtr};
use crate::{Accum, Float};
use std::any::TypeId;
use std::sync::OnceLock;

/// Output positions per vector.
const LANES: usize = 16;

/// Whether the direct path takes convolution `g` in element type `T`.
pub fn applies<T: Float>(g: &ConvGeom) -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
        && g.stride == 1
        && g.pad < g.kh
        && g.pad < g.kw
        && enabled()
}

/// AVX-512F present, not lowered by `NNDL_ISA` (as the small-side kernels) and not turned off
/// by `NNDL_CONV=im2col`.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        crate::isa::best_isa() == crate::isa::Isa::Avx512
            && std::env::var("NNDL_CONV").map_or(true, |v| v != "im2col")
    })
}

/// One image's convolution in the padded-width layout: `c` input channels of `h x w` padded
/// by `ph` rows and `pw` columns on each side, `f` filters of `kh x kw`.
#[derive(Debug, Clone)]
struct Plan {
    c: usize,
    h: usize,
    w: usize,
    f: usize,
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    /// Padded width: the row stride of the padded input and of the computed output.
    wp: usize,
    /// Output rows.
    oh: usize,
    /// Valid output columns (the first `ow` of each `wp`).
    ow: usize,
    /// 16-wide vectors of output per channel.
    nv: usize,
    /// Elements per padded input channel, with room for the last vector's furthest tap.
    plane: usize,
    /// Where each vector's valid lanes go in a `[oh, ow]` channel: vector `v`'s pieces (one per
    /// output row it touches) are `segs[first[v]..first[v + 1]]`.
    segs: Vec<Seg>,
    first: Vec<usize>,
}

/// The lanes of one vector that belong to one output row: lane `l` (in `mask`) goes to
/// element `base + l` of the channel (`base` may be negative; masked lanes are never touched).
#[derive(Debug, Clone, Copy)]
struct Seg {
    base: isize,
    mask: u16,
}

impl Plan {
    fn new(dims: [usize; 6], ph: usize, pw: usize) -> Plan {
        // Unchecked sums and products are safe here: `ConvGeom::padded` refused any geometry
        // whose padded image, with a filter's reach, overflows a usize.
        let [c, h, w, f, kh, kw] = dims;
        let (wp, hp) = (w + 2 * pw, h + 2 * ph);
        let (oh, ow) = (hp + 1 - kh, wp + 1 - kw);
        let nv = (oh * wp).div_ceil(LANES);
        let reach = nv * LANES + (kh - 1) * wp + kw - 1;
        let plane = (hp * wp).max(reach).next_multiple_of(LANES);
        let (mut segs, mut first) = (Vec::new(), Vec::with_capacity(nv + 1));
        for v in 0..nv {
            first.push(segs.len());
            let p0 = v * LANES;
            let mut l = 0;
            while l < LANES && p0 + l < oh * wp {
                let (oy, ox) = ((p0 + l) / wp, (p0 + l) % wp);
                let row_end = ((oy + 1) * wp - p0).min(LANES);
                if ox < ow {
                    let n = (ow - ox).min(LANES - l);
                    segs.push(Seg {
                        base: p0 as isize - (oy * (wp - ow)) as isize,
                        mask: (((1u32 << n) - 1) << l) as u16,
                    });
                }
                l = row_end;
            }
        }
        first.push(segs.len());
        Plan {
            c,
            h,
            w,
            f,
            kh,
            kw,
            ph,
            pw,
            wp,
            oh,
            ow,
            nv,
            plane,
            segs,
            first,
        }
    }

    /// The forward of `g`, per image.
    fn forward(g: &ConvGeom) -> Plan {
        Plan::new([g.c, g.h, g.w, g.f, g.kh, g.kw], g.pad, g.pad)
    }

    /// The input gradient of `g` as a convolution of the output gradient (`f` channels) with
    /// the flipped filters: padding `k - 1 - pad` brings it back to the input's size.
    fn input_grad(g: &ConvGeom) -> Plan {
        Plan::new(
            [g.f, g.oh(), g.ow(), g.c, g.kh, g.kw],
            g.kh - 1 - g.pad,
            g.kw - 1 - g.pad,
        )
    }

    /// Elements of one image's padded planes.
    fn padded_len(&self) -> usize {
        self.c * self.plane
    }

    /// Filters rounded up to whole vectors.
    fn f_pad(&self) -> usize {
        self.f.next_multiple_of(LANES)
    }

    /// Elements of one image's output gradient over the padded width, position-major.
    fn spread_len(&self) -> usize {
        self.nv * LANES * self.f_pad()
    }
}

/// Filters `[f, c, kh, kw]` as the kernel reads them, `[c, kh, kw, f]` (the `f` weights of one
/// tap side by side); with `flip`, the input gradient's filters `[f, kh, kw, c]` rotated half a
/// turn: `out[f][kh-1-ki][kw-1-kj][c] = w[f][c][ki][kj]`.
fn arrange(g: &ConvGeom, w: &[f32], flip: bool, out: &mut [f32]) {
    let kk = g.kh * g.kw;
    for f in 0..g.f {
        for c in 0..g.c {
            for k in 0..kk {
                let v = w[(f * g.c + c) * kk + k];
                if flip {
                    out[(f * kk + kk - 1 - k) * g.c + c] = v;
                } else {
                    out[(c * kk + k) * g.f + f] = v;
                }
            }
        }
    }
}

/// Reinterprets a `T` slice as f32 (the caller has checked `T` is f32).
fn f32s<T: Float>(s: &[T]) -> &[f32] {
    crate::float::as_f32(s).expect("the direct path runs on f32 only (`applies`)")
}

fn f32s_mut<T: Float>(s: &mut [T]) -> &mut [f32] {
    crate::float::as_f32_mut(s).expect("the direct path runs on f32 only (`applies`)")
}

/// Scratch elements [`forward`] needs with `tasks` parallel tasks.
pub fn forward_scratch_len(g: &ConvGeom, tasks: usize) -> usize {
    g.f * g.ckk() + tasks * Plan::forward(g).padded_len()
}

/// Images whose filter gradients one kernel call sums before its accumulators are stored (a
/// 14x14 image alone is only 14 vectors of positions per weight row).
const GROUP: usize = 4;

/// Scratch elements [`backward`] needs with `tasks` parallel tasks.
pub fn backward_scratch_len(g: &ConvGeom, tasks: usize, with_dx: bool) -> usize {
    let pl = Plan::forward(g);
    let per = g.f * g.ckk() + g.f + GROUP * (pl.padded_len() + pl.spread_len());
    let dx = if with_dx {
        (g.f * g.ckk(), Plan::input_grad(g).padded_len())
    } else {
        (0, 0)
    };
    dx.0 + tasks * (per + dx.1)
}

/// `out = conv(x, w) + b` for `g` with images split into tasks of `per` (see
/// [`crate::conv::conv2d_forward`]); the caller has checked [`applies`] and the buffer sizes.
pub(crate) fn forward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    out: &mut [T],
    scratch: &mut [T],
) {
    let (x, w, b, out) = (f32s(x), f32s(w), b.map(f32s), f32s_mut(out));
    let pl = Plan::forward(g);
    let (wt, rest) = f32s_mut(scratch).split_at_mut(g.f * g.ckk());
    arrange(g, w, false, wt);
    let wt = &*wt;
    let block = pl.padded_len();
    let (op, sp) = (SyncPtr(out.as_mut_ptr()), SyncPtr(rest.as_mut_ptr()));
    let (il, ol) = (g.in_len(), g.out_len());
    let task = |t: usize| {
        let bias = b.map_or(std::ptr::null(), |b| b.as_ptr());
        // SAFETY: task t alone owns scratch block t and its images' outputs.
        let xp = unsafe { sp.slice(t * block, block) };
        for i in t * per..((t + 1) * per).min(g.n) {
            let oi = unsafe { op.slice(i * ol, ol) };
            // SAFETY: AVX-512F is present (`applies`); the buffers have the plan's sizes.
            unsafe {
                kernels::pad(&pl, x[i * il..(i + 1) * il].as_ptr(), xp.as_mut_ptr());
                kernels::conv(&pl, xp.as_ptr(), wt.as_ptr(), oi.as_mut_ptr(), bias, false);
            }
        }
    };
    par::run(g.n.div_ceil(per), &task);
}

/// Adds the filter, bias and (when `dx` is given) input gradients of `g` into `dw`, `db`,
/// `dx`, with images split into tasks of `per` (see [`crate::conv::conv2d_backward`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    dout: &[T],
    dx: Option<(&mut [T], Accum)>,
    dw: &mut [T],
    db: Option<&mut [T]>,
    scratch: &mut [T],
) {
    let (x, w, dout) = (f32s(x), f32s(w), f32s(dout));
    let pl = Plan::forward(g);
    let pd = Plan::input_grad(g);
    let want_dx = dx.is_some();
    let tasks = g.n.div_ceil(per);
    let wlen = g.f * g.ckk();
    let scratch = f32s_mut(scratch);
    let (wt, rest) = scratch.split_at_mut(if want_dx { wlen } else { 0 });
    if want_dx {
        arrange(g, w, true, wt);
    }
    let wt = &*wt;
    let dx_block = if want_dx { pd.padded_len() } else { 0 };
    let (xl, zl) = (GROUP * pl.padded_len(), GROUP * pl.spread_len());
    let block = wlen + g.f + xl + zl + dx_block;
    let add = dx.as_ref().is_none_or(|d| d.1 == Accum::Add);
    let dx_ptr = SyncPtr(dx.map_or(std::ptr::null_mut(), |d| f32s_mut(d.0).as_mut_ptr()));
    let sp = SyncPtr(rest.as_mut_ptr());
    let (il, ol) = (g.in_len(), g.out_len());
    let task = |t: usize| {
        // SAFETY: task t alone owns scratch block t and its images' input gradients.
        let b = unsafe { sp.slice(t * block, block) };
        let (part, b) = b.split_at_mut(wlen + g.f);
        let (xp, b) = b.split_at_mut(xl);
        let (dz, dp) = b.split_at_mut(zl);
        part.fill(0.0);
        let (pw, pb) = part.split_at_mut(wlen);
        let (lo, hi) = (t * per, ((t + 1) * per).min(g.n));
        for i0 in (lo..hi).step_by(GROUP) {
            let imgs = (hi - i0).min(GROUP);
            for (j, i) in (i0..i0 + imgs).enumerate() {
                let di = &dout[i * ol..(i + 1) * ol];
                let xj = &mut xp[j * pl.padded_len()..(j + 1) * pl.padded_len()];
                let zj = &mut dz[j * pl.spread_len()..(j + 1) * pl.spread_len()];
                // SAFETY: AVX-512F is present; the buffers have the plans' sizes.
                unsafe {
                    kernels::pad(&pl, x[i * il..(i + 1) * il].as_ptr(), xj.as_mut_ptr());
                    kernels::spread(&pl, di.as_ptr(), zj.as_mut_ptr());
                }
                for (f, row) in di.chunks_exact(g.spatial()).enumerate() {
                    pb[f] += crate::sum_all(row);
                }
                if want_dx {
                    let dxi = unsafe { dx_ptr.slice(i * il, il) };
                    unsafe {
                        kernels::pad(&pd, di.as_ptr(), dp.as_mut_ptr());
                        let null = std::ptr::null();
                        kernels::conv(&pd, dp.as_ptr(), wt.as_ptr(), dxi.as_mut_ptr(), null, add);
                    }
                }
            }
            // SAFETY: as above; `imgs` images of each buffer are filled.
            unsafe { kernels::filter_grad(&pl, imgs, xp.as_ptr(), dz.as_ptr(), pw.as_mut_ptr()) };
        }
    };
    par::run(tasks, &task);
    // Partial gradients summed in task order: the result depends on the thread count, not
    // on scheduling.
    let (dw, mut db) = (f32s_mut(dw), db.map(f32s_mut));
    for p in rest.chunks(block).take(tasks) {
        dw[..wlen]
            .iter_mut()
            .zip(&p[..wlen])
            .for_each(|(d, &v)| *d += v);
        if let Some(db) = db.as_deref_mut() {
            db[..g.f]
                .iter_mut()
                .zip(&p[wlen..wlen + g.f])
                .for_each(|(d, &v)| *d += v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod kernels {
    use super::{Plan, LANES};
    use std::arch::x86_64::*;

    /// Filters per forward tile (one broadcast weight each).
    const FT: usize = 8;
    /// Output vectors per forward tile: 8 x 3 = 24 accumulators of the 32 registers.
    const VT: usize = 3;

    /// `out[f][oy][ox] (+)= bias[f] + sum over c, ki, kj of wt[c][ki][kj][f] *
    /// xp[c][oy*wp + ox + ki*wp + kj]`, computed over the padded width (position `p = oy*wp +
    /// ox`) and stored, valid lanes only, straight into `out` (`[f, oh, ow]`): with `add`, added
    /// to what is there. `bias` may be null.
    ///
    /// # Safety
    /// AVX-512F; `xp` holds `c` planes, `wt` `c*kh*kw*f` weights, `out` `f*oh*ow` elements,
    /// `bias` null or `f`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv(
        pl: &Plan,
        xp: *const f32,
        wt: *const f32,
        out: *mut f32,
        bias: *const f32,
        add: bool,
    ) {
        let res = Out { out, bias, add };
        let mut f0 = 0;
        while f0 < pl.f {
            let fb = (pl.f - f0).min(FT);
            let mut v0 = 0;
            while v0 < pl.nv {
                let vb = (pl.nv - v0).min(VT);
                match vb {
                    1 => conv_f::<1>(fb, pl, xp, wt, &res, f0, v0),
                    2 => conv_f::<2>(fb, pl, xp, wt, &res, f0, v0),
                    _ => conv_f::<3>(fb, pl, xp, wt, &res, f0, v0),
                }
                v0 += vb;
            }
            f0 += fb;
        }
    }

    /// Where [`conv`] stores.
    struct Out {
        out: *mut f32,
        bias: *const f32,
        add: bool,
    }

    #[inline(always)]
    unsafe fn conv_f<const V: usize>(
        fb: usize,
        pl: &Plan,
        xp: *const f32,
        wt: *const f32,
        res: &Out,
        f0: usize,
        v0: usize,
    ) {
        match fb {
            1 => conv_tile::<1, V>(pl, xp, wt, res, f0, v0),
            2 => conv_tile::<2, V>(pl, xp, wt, res, f0, v0),
            3 => conv_tile::<3, V>(pl, xp, wt, res, f0, v0),
            4 => conv_tile::<4, V>(pl, xp, wt, res, f0, v0),
            5 => conv_tile::<5, V>(pl, xp, wt, res, f0, v0),
            6 => conv_tile::<6, V>(pl, xp, wt, res, f0, v0),
            7 => conv_tile::<7, V>(pl, xp, wt, res, f0, v0),
            _ => conv_tile::<8, V>(pl, xp, wt, res, f0, v0),
        }
    }

    /// Filters `f0..f0+F`, output vectors `v0..v0+V`: per tap, `V` loads of the shifted row and
    /// `F` broadcast weights feed `F*V` FMAs.
    #[inline(always)]
    unsafe fn conv_tile<const F: usize, const V: usize>(
        pl: &Plan,
        xp: *const f32,
        wt: *const f32,
        res: &Out,
        f0: usize,
        v0: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; F];
        for c in 0..pl.c {
            let xc = xp.add(c * pl.plane + v0 * LANES);
            let wc = wt.add(c * pl.kh * pl.kw * pl.f + f0);
            for ki in 0..pl.kh {
                for kj in 0..pl.kw {
                    let xs = xc.add(ki * pl.wp + kj);
                    let ws = wc.add((ki * pl.kw + kj) * pl.f);
                    let mut v = [_mm512_setzero_ps(); V];
                    for (j, v) in v.iter_mut().enumerate() {
                        *v = _mm512_loadu_ps(xs.add(j * LANES));
                    }
                    for (i, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*ws.add(i));
                        for (a, &v) in a.iter_mut().zip(&v) {
                            *a = _mm512_fmadd_ps(wv, v, *a);
                        }
                    }
                }
            }
        }
        store(pl, res, &acc, f0, v0);
    }

    /// The tile's sums into `out` (kept out of line so that the segments' bookkeeping does not
    /// take registers from the accumulators: inlined, it made LLVM spill them).
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

    /// Transposes one image's output gradient `[f, oh, ow]` to position-major over the padded
    /// width, `dzt[p][f]` with `p = oy*wp + ox` and rows of `f_pad` filters; zeros at positions
    /// of no output and in the padding filters (so that they add nothing).
    ///
    /// # Safety
    /// `dout` holds `f*oh*ow` elements, `dzt` `nv*16*f_pad`.
    pub(super) unsafe fn spread(pl: &Plan, dout: *const f32, dzt: *mut f32) {
        let fp = pl.f_pad();
        std::ptr::write_bytes(dzt, 0, pl.nv * LANES * fp);
        for oy in 0..pl.oh {
            for ox in 0..pl.ow {
                let row = dzt.add((oy * pl.wp + ox) * fp);
                let src = dout.add(oy * pl.ow + ox);
                for f in 0..pl.f {
                    *row.add(f) = *src.add(f * pl.oh * pl.ow);
                }
            }
        }
    }

    /// `dw[f][j] += sum over images and positions p of dzt[p][f] * xp[c][p + ki*wp + kj]`, for
    /// every filter row `j = (c, ki, kj)`. Vectors run over 16 filters at once and one weight
    /// row's input value is broadcast, as in the forward: no horizontal sums, no unaligned
    /// vector loads (at 16 positions per vector and a sum per weight this kernel ran at half
    /// the forward's rate).
    ///
    /// # Safety
    /// AVX-512F; `xp` holds `imgs` images of `c` planes, `dzt` `imgs` of [`Plan::spread_len`],
    /// `dw` `f*c*kh*kw` elements.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn filter_grad(
        pl: &Plan,
        imgs: usize,
        xp: *const f32,
        dzt: *const f32,
        dw: *mut f32,
    ) {
        let fv = pl.f_pad() / LANES;
        let mut v0 = 0;
        while v0 < fv {
            // 24 accumulators: filter vectors x weight rows.
            match fv - v0 {
                1 => grad_rows::<1, 24>(pl, imgs, xp, dzt, dw, v0),
                2 => grad_rows::<2, 12>(pl, imgs, xp, dzt, dw, v0),
                3 => grad_rows::<3, 8>(pl, imgs, xp, dzt, dw, v0),
                _ => grad_rows::<4, 6>(pl, imgs, xp, dzt, dw, v0),
            }
            v0 += (fv - v0).min(4);
        }
    }

    /// Filter vectors `v0..v0+V` against every weight row, `J` rows at a time (the last tile's
    /// missing rows repeat its last row and are not stored).
    #[inline(always)]
    unsafe fn grad_rows<const V: usize, const J: usize>(
        pl: &Plan,
        imgs: usize,
        xp: *const f32,
        dzt: *const f32,
        dw: *mut f32,
        v0: usize,
    ) {
        let (kk, fp) = (pl.kh * pl.kw, pl.f_pad());
        let ckk = pl.c * kk;
        let positions = pl.nv * LANES;
        let mut j0 = 0;
        while j0 < ckk {
            let jb = (ckk - j0).min(J);
            let mut rows = [xp; J];
            for (jj, r) in rows.iter_mut().enumerate() {
                let j = j0 + jj.min(jb - 1);
                let (c, k) = (j / kk, j % kk);
                *r = xp.add(c * pl.plane + (k / pl.kw) * pl.wp + k % pl.kw);
            }
            let mut acc = [[_mm512_setzero_ps(); V]; J];
            for img in 0..imgs {
                let xi = img * pl.c * pl.plane;
                let d = dzt.add(img * positions * fp + v0 * LANES);
                let mut xr = rows;
                for r in xr.iter_mut() {
                    *r = r.add(xi);
                }
                for p in 0..positions {
                    let dp = d.add(p * fp);
                    let mut dv = [_mm512_setzero_ps(); V];
                    for (v, dv) in dv.iter_mut().enumerate() {
                        *dv = _mm512_loadu_ps(dp.add(v * LANES));
                    }
                    for (a, r) in acc.iter_mut().zip(&xr) {
                        let xv = _mm512_set1_ps(*r.add(p));
                        for (a, &dv) in a.iter_mut().zip(&dv) {
                            *a = _mm512_fmadd_ps(xv, dv, *a);
                        }
                    }
                }
            }
            store_grad(pl, &acc, jb, j0, v0, dw);
            j0 += jb;
        }
    }

    /// Adds a tile's sums into `dw[f][j]` (out of line: see [`store`]).
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_grad<const V: usize, const J: usize>(
        pl: &Plan,
        acc: &[[__m512; V]; J],
        jb: usize,
        j0: usize,
        v0: usize,
        dw: *mut f32,
    ) {
        let ckk = pl.c * pl.kh * pl.kw;
        let mut lanes = [0.0f32; LANES];
        for (jj, a) in acc.iter().enumerate().take(jb) {
            for (v, &a) in a.iter().enumerate() {
                _mm512_storeu_ps(lanes.as_mut_ptr(), a);
                for (l, &g) in lanes.iter().enumerate() {
                    let f = (v0 + v) * LANES + l;
                    if f < pl.f {
                        *dw.add(f * ckk + j0 + jj) += g;
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernels {
    use super::Plan;
    // Never called: `applies` is false without AVX-512F.
    pub(super) unsafe fn conv(
        _: &Plan,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: *const f32,
        _: bool,
    ) {
        unreachable!()
    }
    pub(super) unsafe fn pad(_: &Plan, _: *const f32, _: *mut f32) {
        unreachable!()
    }
    pub(super) unsafe fn spread(_: &Plan, _: *const f32, _: *mut f32) {
        unreachable!()
    }
    pub(super) unsafe fn filter_grad(
        _: &Plan,
        _: usize,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
    ) {
        unreachable!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{
        conv2d_backward, conv2d_backward_naive, conv2d_backward_scratch_len, conv2d_forward,
        conv2d_forward_scratch_len, conv2d_naive,
    };
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

        // NaN scratch: anything the kernels read without writing first would show.
        let mut out = vec![f32::NAN; g.n * g.out_len()];
        let mut scratch = vec![f32::NAN; conv2d_forward_scratch_len(&g)];
        conv2d_forward(&g, &x, &w, Some(&b), &mut out, &mut scratch);
        close(
            "out",
            &g,
            &out,
            &conv2d_naive(&g, &x64, &w64, Some(&b64)),
            g.ckk(),
        );

        let (dx0, dw0, db0) = conv2d_backward_naive(&g, &x64, &w64, &d64);
        // Gradients are added into what is there.
        let mut dx = vec![1.0f32; dx0.len()];
        let mut dw = vec![1.0f32; dw0.len()];
        let mut db = vec![1.0f32; db0.len()];
        let mut scratch = vec![f32::NAN; conv2d_backward_scratch_len(&g, true)];
        conv2d_backward(
            &g,
            &x,
            &w,
            &dout,
            Some((&mut dx, Accum::Add)),
            &mut dw,
            Some(&mut db),
            &mut scratch,
        );
        let plus1 = |v: &[f64]| v.iter().map(|v| v + 1.0).collect::<Vec<f64>>();
        close("dx", &g, &dx, &plus1(&dx0), g.f * g.kh * g.kw);
        // Written over: what was there (NaN) is gone.
        let mut dx_over = vec![f32::NAN; dx0.len()];
        let mut dw_over = vec![0.0f32; dw0.len()];
        conv2d_backward(
            &g,
            &x,
            &w,
            &dout,
            Some((&mut dx_over, Accum::Overwrite)),
            &mut dw_over,
            None,
            &mut scratch,
        );
        close("dx (overwrite)", &g, &dx_over, &dx0, g.f * g.kh * g.kw);
        close("dw", &g, &dw, &plus1(&dw0), g.n * g.spatial());
        close("db", &g, &db, &plus1(&db0), g.n * g.spatial());
        // Without the input gradient, the same filter gradient.
        let mut dw2 = vec![1.0f32; dw.len()];
        let mut scratch = vec![f32::NAN; conv2d_backward_scratch_len(&g, false)];
        conv2d_backward(&g, &x, &w, &dout, None, &mut dw2, None, &mut scratch);
        assert_eq!(dw2, dw, "{g:?}");
    }

    #[test]
    fn direct_equals_naive_on_random_and_edge_shapes() {
        if !enabled() {
            eprintln!(
                "no AVX-512F (or NNDL_CONV=im2col, NNDL_ISA lowered): the direct path is off"
            );
            return;
        }
        let mut rng = rand_pcg::Pcg64::seed_from_u64(21);
        // The recipe's four convolutions; network3's valid 5x5 ones; a filter count and
        // channel count off every tile size; 1x1 images and filters; non-square filters;
        // outputs shorter than one vector; the largest padding a filter allows.
        for (dims, pad) in [
            ([3, 1, 28, 28, 32, 3, 3], 1),
            ([2, 32, 28, 28, 32, 3, 3], 1),
            ([2, 32, 14, 14, 64, 3, 3], 1),
            ([2, 64, 14, 14, 64, 3, 3], 1),
            ([3, 1, 28, 28, 20, 5, 5], 0),
            ([2, 20, 12, 12, 40, 5, 5], 0),
            ([3, 7, 9, 11, 13, 3, 3], 1),
            ([2, 5, 6, 5, 9, 2, 3], 1),
            ([2, 3, 1, 1, 5, 1, 1], 0),
            ([2, 2, 1, 1, 3, 3, 3], 2),
            ([2, 3, 4, 3, 17, 3, 2], 0),
            ([4, 2, 5, 5, 3, 5, 5], 4),
            ([1, 1, 3, 40, 1, 3, 3], 1),
            // Several image groups per task, the last one partial.
            ([7, 3, 6, 6, 5, 3, 3], 1),
            ([11, 2, 28, 28, 32, 3, 3], 1),
        ] {
            for threads in [1, 2] {
                crate::par::with_threads(threads, || check(geom(dims, pad), &mut rng));
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
            .flat_map(|f| {
                (0..2).flat_map(move |c| (0..4).map(move |k| (100 * f + 10 * c + k) as f32))
            })
            .collect();
        let mut t = vec![0.0; w.len()];
        arrange(&g, &w, false, &mut t);
        // [c][k][f]: c = 1, k = 2, f = 0..3
        assert_eq!(&t[(4 + 2) * 3..(4 + 2) * 3 + 3], &[12.0, 112.0, 212.0]);
        arrange(&g, &w, true, &mut t);
        // [f][k'][c] = w[f][c][3 - k']: f = 2, k' = 0 -> k = 3
        assert_eq!(&t[(2 * 4) * 2..(2 * 4) * 2 + 2], &[203.0, 213.0]);
    }
}
