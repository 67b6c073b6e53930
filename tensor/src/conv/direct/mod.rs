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
//!   (8 filters x 3 vectors = 24 accumulators); on small images, where a row of 16 positions
//!   is mostly padding (a 3x3 output fills 9 lanes), 16 filters per vector at one valid
//!   position instead, one broadcast input value per position (4 vectors x 6 positions),
//!   whichever [`Tiling::choose`] counts fewer operations for;
//! - input gradient: the same kernel on the padded output gradient, with the filters flipped
//!   and transposed (padding `k - 1 - pad` brings it back to the input's size);
//! - filter gradient: 16 filters per vector against one broadcast input value per weight row,
//!   summed over positions and a group of images (the output gradient transposed to
//!   position-major first), added into a filter-major partial sum per task (vector adds)
//!   that is transposed into `dw` once, at the end.
//!
//! Nothing is packed and nothing unfolded: im2col + GEMM spent about half its time writing and
//! packing the 9x larger unfolded matrix, and per-image GEMMs of 32 x 288 x 784 are too small
//! to amortise the packing.
//!
//! [`super::conv2d_forward`] and [`super::conv2d_backward`] take this path for f32
//! when the CPU has AVX-512F and the stride is 1; `NNDL_CONV=im2col` (or `NNDL_ISA=avx2` /
//! `portable`) turns it off, to time or test the other path. The tests compare it with [`super::conv2d_naive`] on random and
//! edge shapes at 1 and 2 threads.

use super::geom::{ConvGeom, ConvGrads};
use crate::par::{self, SyncPtr};
use crate::{Accum, Float};
use std::any::TypeId;
use std::sync::OnceLock;

#[cfg_attr(not(target_arch = "x86_64"), path = "unsupported.rs")]
mod avx512;
#[cfg(test)]
mod tests;

/// Output positions per vector.
const LANES: usize = 16;

/// Whether the direct path takes convolution `g` in element type `T`.
pub(super) fn applies<T: Float>(g: &ConvGeom) -> bool {
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

/// Whether [`ConvGeom::bf16`] takes effect here: the direct path is on and the CPU has
/// AVX-512 BF16 (Zen 4, Sapphire Rapids and later).
pub(super) fn bf16_supported() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let cpu = std::arch::is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = false;
        cpu && enabled()
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
    /// How the kernel lays its vectors (chosen by [`Tiling::choose`]).
    tiling: Tiling,
    /// The filter gradient's steps over positions (one position in f32, a pair in bf16)
    /// that hold an output position: the others are padding columns or past the last row,
    /// zero in the output gradient, and skipped (a 3x3 output is 9 of 16 positions).
    steps: [Vec<u32>; 2],
}

/// What one kernel vector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tiling {
    /// 16 output positions of one filter, over the padded width (the `wp - ow` positions past
    /// each row computed and dropped): full vectors on wide images.
    Positions,
    /// 16 filters at one output position, `p` valid positions per tile (one broadcast input
    /// value each, no padded-width waste), transposed when stored: full vectors on small
    /// images (a 3x3 output fills 9 of the 16 lanes of a position vector).
    Filters { p: usize },
}

impl Tiling {
    /// The tiling with the fewer vector multiply-adds, counting the filter tiling's scalar,
    /// transposing stores as one multiply-add each (they cost about that, and make it lose
    /// wherever a position's sum has few terms, as on a 1-channel input).
    fn choose(pl: &Plan) -> Tiling {
        if let Some(t) = forced() {
            return t(pl);
        }
        let (positions, filters) = (Tiling::Positions, Tiling::filters(pl));
        // One vector of filters is one weight load per `p` broadcasts and multiply-adds:
        // measured slower than the positions' tiles wherever it was tried.
        if pl.f > LANES && filters.cost(pl) < positions.cost(pl) {
            filters
        } else {
            positions
        }
    }

    /// The filter tiling with the positions per tile (4, 5 or 6) that computes the fewest
    /// positions past the last.
    fn filters(pl: &Plan) -> Tiling {
        let n = pl.oh * pl.ow;
        let p = [6, 5, 4]
            .into_iter()
            .min_by_key(|p| n.div_ceil(*p) * p)
            .unwrap_or(6);
        Tiling::Filters { p }
    }

    /// Vector multiply-adds (and stores counted as such) of one image, per channel pair.
    fn cost(self, pl: &Plan) -> f64 {
        let terms = (pl.c.div_ceil(2) * pl.kh * pl.kw) as f64;
        match self {
            Tiling::Positions => (pl.nv * pl.f) as f64 * terms,
            Tiling::Filters { p } => {
                let n = pl.oh * pl.ow;
                let vectors = (n.div_ceil(p) * p * pl.f_pad() / LANES) as f64;
                vectors * terms + (n * pl.f_pad()) as f64
            }
        }
    }
}

/// A rule for the tiling of a plan.
type Choice = fn(&Plan) -> Tiling;

thread_local! {
    /// Tests' choice of tiling (see [`force_tiling`]).
    static FORCED: std::cell::Cell<Option<Choice>> = const { std::cell::Cell::new(None) };
}

fn forced() -> Option<Choice> {
    if let Some(t) = FORCED.with(|f| f.get()) {
        return Some(t);
    }
    // `NNDL_CONV_TILING=positions|filters` times one tiling alone (benchmarks).
    static ENV: OnceLock<Option<Choice>> = OnceLock::new();
    *ENV.get_or_init(|| match std::env::var("NNDL_CONV_TILING").as_deref() {
        Ok("positions") => Some(|_| Tiling::Positions),
        Ok("filters") => Some(Tiling::filters),
        _ => None,
    })
}

/// Runs `f` with every plan made on this thread taking `tiling` (tests of both kernels on
/// every shape).
#[cfg(test)]
fn force_tiling<R>(tiling: Choice, f: impl FnOnce() -> R) -> R {
    let before = FORCED.with(|c| c.replace(Some(tiling)));
    let r = f();
    FORCED.with(|c| c.set(before));
    r
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
        let mut pl = Plan {
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
            tiling: Tiling::Positions,
            steps: [Vec::new(), Vec::new()],
        };
        let valid = |p: usize| p < oh * wp && p % wp < ow;
        for (per, steps) in pl.steps.iter_mut().enumerate() {
            let per = per + 1;
            // Position counts fit in u32: a plane that large would not be allocated.
            *steps = (0..nv * LANES / per)
                .filter(|t| (t * per..(t + 1) * per).any(valid))
                .map(|t| t as u32)
                .collect();
        }
        pl.tiling = Tiling::choose(&pl);
        pl
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

    /// Filters rounded up to whole vectors: the row stride of the arranged weights.
    fn f_pad(&self) -> usize {
        self.f.next_multiple_of(LANES)
    }

    /// Scratch floats of the filter tiling's sums (`oh*ow` positions of 4 filter vectors,
    /// rounded up to whole transposes), none for the positions'.
    fn tile_len(&self) -> usize {
        match self.tiling {
            Tiling::Positions => 0,
            Tiling::Filters { .. } => {
                (self.oh * self.ow).next_multiple_of(LANES) * avx512::TILE_ROW
            }
        }
    }

    /// 32-bit elements of the arranged weights (f32, or bf16 pairs in fewer).
    fn weights_len(&self) -> usize {
        self.c * self.kh * self.kw * self.f_pad()
    }

    /// Images whose filter gradients one kernel call sums before its accumulators are
    /// stored: at least [`GROUP`], more for small images (a 3x3 image is one vector of
    /// positions), so that each tile runs at least ~64 vectors of positions.
    fn group(&self) -> usize {
        (64 / self.nv).clamp(GROUP, 4 * GROUP)
    }

    /// Elements of one image's output gradient over the padded width, position-major.
    fn spread_len(&self) -> usize {
        self.nv * LANES * self.f_pad()
    }
}

/// Filters `[f, c, kh, kw]` as the kernel reads them, `[c, kh, kw, f_pad]` (the `f` weights of
/// one tap side by side, zeros up to a whole vector); with `flip`, the input gradient's
/// filters `[f, kh, kw, c_pad]` rotated half a turn: `out[f][kh-1-ki][kw-1-kj][c] =
/// w[f][c][ki][kj]`.
fn arrange(g: &ConvGeom, w: &[f32], flip: bool, out: &mut [f32]) {
    let kk = g.kh * g.kw;
    let (ch, nf) = if flip { (g.f, g.c) } else { (g.c, g.f) };
    let stride = nf.next_multiple_of(LANES);
    out[..ch * kk * stride].fill(0.0);
    for f in 0..g.f {
        for c in 0..g.c {
            for k in 0..kk {
                let v = w[(f * g.c + c) * kk + k];
                if flip {
                    out[(f * kk + kk - 1 - k) * stride + c] = v;
                } else {
                    out[(c * kk + k) * stride + f] = v;
                }
            }
        }
    }
}

/// [`arrange`] in bf16 pairs of the kernel's channels (`c`, or `f` with `flip`): element
/// `[ch / 2][tap][n]` (rows of `n` padded to whole vectors) holds channel `ch` in its low
/// half when `ch` is even, high when odd, zero for an odd count's missing last. Returns the
/// pairs written.
fn arrange_bf16(g: &ConvGeom, w: &[f32], flip: bool, out: &mut [u32]) -> usize {
    let kk = g.kh * g.kw;
    let (ch, nf) = if flip { (g.f, g.c) } else { (g.c, g.f) };
    let stride = nf.next_multiple_of(LANES);
    let len = ch.div_ceil(2) * kk * stride;
    out[..len].fill(0);
    for f in 0..g.f {
        for c in 0..g.c {
            for k in 0..kk {
                let v = u32::from(bf16_bits(w[(f * g.c + c) * kk + k]));
                let (chan, tap, n) = if flip { (f, kk - 1 - k, c) } else { (c, k, f) };
                out[((chan / 2) * kk + tap) * stride + n] |= v << (16 * (chan % 2));
            }
        }
    }
    len
}

/// `x` rounded to the nearest bfloat16, ties to even (as `vcvtneps2bf16`), as its bits; a NaN
/// stays a NaN.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// A float scratch block as u32 (bf16 pairs), the same bytes.
fn u32s(s: &mut [f32]) -> &mut [u32] {
    // SAFETY: f32 and u32 have the same size and alignment, and every bit pattern is valid
    // for both.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

/// Reinterprets a `T` slice as f32 (the caller has checked `T` is f32).
fn f32s<T: Float>(s: &[T]) -> &[f32] {
    crate::float::as_f32(s).expect("the direct path runs on f32 only (`applies`)")
}

fn f32s_mut<T: Float>(s: &mut [T]) -> &mut [f32] {
    crate::float::as_f32_mut(s).expect("the direct path runs on f32 only (`applies`)")
}

/// A 1-channel convolution's forward as a 1x1 convolution over its taps: each image's
/// `kh*kw` shifted copies ([`avx512::copy_taps`]) are the channels, the filters' memory
/// (`[f][1][kh][kw]` is `[f][kh*kw][1][1]`) unchanged. One channel fills half of a bf16
/// pair and gives each output vector `kh*kw` multiply-adds over a padded width; the taps
/// pair up (5 multiply-adds for 9) over the unpadded width. `None` for other convolutions.
fn lifted(g: &ConvGeom) -> Option<ConvGeom> {
    (g.c == 1 && g.kh * g.kw > 1).then(|| ConvGeom {
        c: g.kh * g.kw,
        h: g.oh(),
        w: g.ow(),
        kh: 1,
        kw: 1,
        pad: 0,
        ..*g
    })
}

/// The forward's geometry as the kernel runs it, its plan, and for a lifted one
/// ([`lifted`]) the original plan each image is padded by before its taps are copied out.
fn forward_plans(g: &ConvGeom) -> (ConvGeom, Plan, Option<Plan>) {
    match lifted(g) {
        Some(k) => (k, Plan::forward(&k), Some(Plan::forward(g))),
        None => (*g, Plan::forward(g), None),
    }
}

/// Scratch elements per task of [`forward`] beyond the kernel's planes: the original padded
/// image and its taps, when lifted.
fn lift_len(k: &ConvGeom, taps: &Option<Plan>) -> usize {
    taps.as_ref().map_or(0, |t| t.padded_len() + k.in_len())
}

/// Scratch elements [`forward`] needs with `tasks` parallel tasks; with `each`, also one
/// image's output per task ([`Sink::Each`]).
pub(super) fn forward_scratch_len(g: &ConvGeom, tasks: usize, each: bool) -> usize {
    let (k, pl, taps) = forward_plans(g);
    let image = if each { g.out_len() } else { 0 };
    pl.weights_len() + tasks * (pl.padded_len() + pl.tile_len() + lift_len(&k, &taps) + image)
}

/// Where [`forward`] puts each image's convolution.
pub(super) enum Sink<'a, T> {
    /// Straight into the batch's output `[n, f, oh, ow]`.
    Out(&'a mut [T]),
    /// Into a per-task buffer of one image, handed with the image's index to the function
    /// while it is in cache: the fused conv-pool pools it there, and the unpooled output
    /// never reaches memory.
    Each(&'a (dyn Fn(usize, &[f32]) + Sync)),
}

/// Where [`backward`] reads each image's output gradient.
pub(super) enum Source<'a, T> {
    /// The batch's output gradient `[n, f, oh, ow]`.
    Whole(&'a [T]),
    /// Written by the function for the image of the given index into a per-task buffer
    /// (the fused conv-pool's scatter of its pooled gradient), used while it is in cache.
    Each(&'a (dyn Fn(usize, &mut [f32]) + Sync)),
}

/// Filter rows (`c*kh*kw`) up to which the filter gradient takes [`avx512::filter_grad_few`].
const FEW_ROWS: usize = 9;

/// Images whose filter gradients one kernel call sums before its accumulators are stored, at
/// least (a 14x14 image alone is only 14 vectors of positions per weight row).
const GROUP: usize = 4;

/// Scratch elements [`backward`] needs with `tasks` parallel tasks; with `each`, also one
/// image's output gradient per task ([`Source::Each`]).
pub(super) fn backward_scratch_len(g: &ConvGeom, tasks: usize, with_dx: bool, each: bool) -> usize {
    let pl = Plan::forward(g);
    let image = if each { g.out_len() } else { 0 };
    let per = g.ckk() * pl.f_pad() + g.f + pl.group() * (pl.padded_len() + pl.spread_len()) + image;
    let dx = if with_dx {
        let pd = Plan::input_grad(g);
        (pd.weights_len(), pd.padded_len() + pd.tile_len())
    } else {
        (0, 0)
    };
    dx.0 + tasks * (per + dx.1)
}

/// `out = conv(x, w) + b` for `g` with images split into tasks of `per` (see
/// [`super::conv2d_forward`]); the caller has checked [`applies`] and the buffer sizes.
pub(super) fn forward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    out: Sink<'_, T>,
    scratch: &mut [T],
) {
    let (x, w, b) = (f32s(x), f32s(w), b.map(f32s));
    let (out, each) = match out {
        Sink::Out(o) => (f32s_mut(o).as_mut_ptr(), None),
        Sink::Each(f) => (std::ptr::null_mut(), Some(f)),
    };
    let (k, pl, taps) = forward_plans(g);
    let (wt, rest) = f32s_mut(scratch).split_at_mut(pl.weights_len());
    let bf16 = g.bf16 && bf16_supported();
    if bf16 {
        arrange_bf16(&k, w, false, u32s(wt));
    } else {
        arrange(&k, w, false, wt);
    }
    let wt = &*wt;
    let (il, ol) = (g.in_len(), g.out_len());
    let lift = lift_len(&k, &taps);
    let image = if each.is_some() { ol } else { 0 };
    let block = pl.padded_len() + pl.tile_len() + lift + image;
    let (op, sp) = (SyncPtr(out), SyncPtr(rest.as_mut_ptr()));
    let task = |t: usize| {
        let bias = b.map_or(std::ptr::null(), |b| b.as_ptr());
        // SAFETY: task t alone owns scratch block t and its images' outputs.
        let b = unsafe { sp.slice(t * block, block) };
        let (xp, b) = b.split_at_mut(pl.padded_len());
        let (tile, b) = b.split_at_mut(pl.tile_len());
        let (lifting, own) = b.split_at_mut(lift);
        let tile = tile.as_mut_ptr();
        for i in t * per..((t + 1) * per).min(g.n) {
            let oi = match each {
                Some(_) => &mut own[..],
                // SAFETY: image i's output belongs to task t alone and lies inside `out`
                // (checked by the caller).
                None => unsafe { op.slice(i * ol, ol) },
            };
            let mut xi = x[i * il..(i + 1) * il].as_ptr();
            if let Some(tp) = &taps {
                let (padded, cols) = lifting.split_at_mut(tp.padded_len());
                // SAFETY: AVX-512F is present (`applies`); `padded` holds the original
                // plan's planes, `cols` the lifted image (`kh*kw` planes of `oh*ow`).
                unsafe {
                    avx512::pad(tp, xi, padded.as_mut_ptr());
                    avx512::copy_taps(tp, padded.as_ptr(), cols.as_mut_ptr());
                }
                xi = cols.as_ptr();
            }
            // SAFETY: AVX-512F is present (`applies`), and AVX-512 BF16 when `bf16`
            // (`bf16_supported`); the buffers have the plan's sizes (the bf16 pairs take
            // at most as many u32 as the floats they replace).
            let res = avx512::Out {
                out: oi.as_mut_ptr(),
                bias,
                add: false,
                tile,
            };
            unsafe {
                if bf16 {
                    let (xb, wb) = (xp.as_mut_ptr().cast(), wt.as_ptr().cast());
                    avx512::pad_bf16(&pl, xi, xb);
                    avx512::conv_bf16(&pl, xb, wb, &res);
                } else {
                    avx512::pad(&pl, xi, xp.as_mut_ptr());
                    avx512::conv(&pl, xp.as_ptr(), wt.as_ptr(), &res);
                }
            }
            if let Some(each) = each {
                each(i, oi);
            }
        }
    };
    par::run(g.n.div_ceil(per), &task);
}

/// Puts the filter, bias and (when wanted) input gradients of `g` into `grads`, with images split into tasks of `per` (see [`super::conv2d_backward`]).
pub(super) fn backward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    dout: Source<'_, T>,
    grads: ConvGrads<'_, T>,
    scratch: &mut [T],
) {
    let ConvGrads { dx, dw, db } = grads;
    let (x, w) = (f32s(x), f32s(w));
    let (dout, each) = match dout {
        Source::Whole(d) => (f32s(d), None),
        Source::Each(f) => (&[][..], Some(f)),
    };
    let pl = Plan::forward(g);
    let pd = Plan::input_grad(g);
    let (want_dx, want_db) = (dx.is_some(), db.is_some());
    let tasks = g.n.div_ceil(per);
    // Each task's partial filter gradient is `[c*kh*kw][f_pad]`, filters side by side (the
    // kernel's vectors), transposed into `dw` when the tasks' parts are summed.
    let (ckk, fp, group) = (g.ckk(), pl.f_pad(), pl.group());
    // Few filter rows (a 1-channel input): each summed straight from the output gradient
    // as it lies, in f32, rather than transposing it (the transpose cost more than the
    // products).
    let few = ckk <= FEW_ROWS;
    let wlen = ckk * fp;
    let scratch = f32s_mut(scratch);
    let (wt, rest) = scratch.split_at_mut(if want_dx { pd.weights_len() } else { 0 });
    let bf16 = g.bf16 && bf16_supported();
    if want_dx && bf16 {
        arrange_bf16(g, w, true, u32s(wt));
    } else if want_dx {
        arrange(g, w, true, wt);
    }
    let wt = &*wt;
    let dx_block = if want_dx {
        pd.padded_len() + pd.tile_len()
    } else {
        0
    };
    let (xl, zl) = (group * pl.padded_len(), group * pl.spread_len());
    let (il, ol) = (g.in_len(), g.out_len());
    let image = if each.is_some() { ol } else { 0 };
    let block = wlen + g.f + image + xl + zl + dx_block;
    let add = dx.as_ref().is_none_or(|d| d.1 == Accum::Add);
    let dx_ptr = SyncPtr(dx.map_or(std::ptr::null_mut(), |d| f32s_mut(d.0).as_mut_ptr()));
    let sp = SyncPtr(rest.as_mut_ptr());
    let task = |t: usize| {
        // SAFETY: task t alone owns scratch block t and its images' input gradients.
        let b = unsafe { sp.slice(t * block, block) };
        let (part, b) = b.split_at_mut(wlen + g.f);
        let (own, b) = b.split_at_mut(image);
        let (xp, b) = b.split_at_mut(xl);
        let (dz, dp) = b.split_at_mut(zl);
        let (dp, tile) = dp.split_at_mut(if want_dx { pd.padded_len() } else { 0 });
        let tile = tile.as_mut_ptr();
        part.fill(0.0);
        let (pw, pb) = part.split_at_mut(wlen);
        let (lo, hi) = (t * per, ((t + 1) * per).min(g.n));
        for i0 in (lo..hi).step_by(group) {
            let imgs = (hi - i0).min(group);
            for (j, i) in (i0..i0 + imgs).enumerate() {
                let di = match each {
                    Some(each) => {
                        each(i, own);
                        &own[..]
                    }
                    None => &dout[i * ol..(i + 1) * ol],
                };
                let xj = &mut xp[j * pl.padded_len()..(j + 1) * pl.padded_len()];
                let zj = &mut dz[j * pl.spread_len()..(j + 1) * pl.spread_len()];
                // SAFETY: AVX-512F is present; the buffers have the plans' sizes.
                unsafe {
                    avx512::pad(&pl, x[i * il..(i + 1) * il].as_ptr(), xj.as_mut_ptr());
                    if few {
                        let (xq, dq) = (xj.as_ptr(), di.as_ptr());
                        avx512::filter_grad_few(&pl, xq, dq, pw.as_mut_ptr());
                    } else {
                        avx512::spread(&pl, di.as_ptr(), zj.as_mut_ptr());
                    }
                }
                if want_db {
                    for (f, row) in di.chunks_exact(g.spatial()).enumerate() {
                        pb[f] += crate::sum_all(row);
                    }
                }
                if want_dx {
                    // SAFETY: dx is given (want_dx); image i's input gradient belongs to task t
                    // alone and lies inside it (checked by the caller).
                    let dxi = unsafe { dx_ptr.slice(i * il, il) };
                    // SAFETY: AVX-512F is present (`applies`); dp holds the input-gradient
                    // plan's padded planes, wt its flipped filters, dxi one image.
                    let res = avx512::Out {
                        out: dxi.as_mut_ptr(),
                        bias: std::ptr::null(),
                        add,
                        tile,
                    };
                    unsafe {
                        if bf16 {
                            let (db, wb) = (dp.as_mut_ptr().cast(), wt.as_ptr().cast());
                            avx512::pad_bf16(&pd, di.as_ptr(), db);
                            avx512::conv_bf16(&pd, db, wb, &res);
                        } else {
                            avx512::pad(&pd, di.as_ptr(), dp.as_mut_ptr());
                            avx512::conv(&pd, dp.as_ptr(), wt.as_ptr(), &res);
                        }
                    }
                }
            }
            if few {
                continue;
            }
            // SAFETY: as above (AVX-512 BF16 when `bf16`); `imgs` images of each buffer are
            // filled, and converted in place to the bf16 layouts the bf16 kernel reads.
            unsafe {
                if bf16 {
                    for j in 0..imgs {
                        let xj = xp[j * pl.padded_len()..].as_mut_ptr();
                        avx512::to_bf16_in_place(xj, pl.padded_len());
                        let zj = dz[j * pl.spread_len()..].as_mut_ptr();
                        avx512::pair_rows_in_place(zj, pl.nv * LANES, pl.f_pad());
                    }
                    let (xq, dq) = (xp.as_ptr().cast(), dz.as_ptr().cast());
                    avx512::filter_grad_bf16(&pl, imgs, xq, dq, pw.as_mut_ptr());
                } else {
                    avx512::filter_grad(&pl, imgs, xp.as_ptr(), dz.as_ptr(), pw.as_mut_ptr());
                }
            }
        }
    };
    par::run(tasks, &task);
    // Partial gradients summed in task order: the result depends on the thread count, not
    // on scheduling.
    let (dw, mut db) = (f32s_mut(dw), db.map(f32s_mut));
    for p in rest.chunks(block).take(tasks) {
        for (j, row) in p[..wlen].chunks_exact(fp).enumerate() {
            for (f, &v) in row[..g.f].iter().enumerate() {
                dw[f * ckk + j] += v;
            }
        }
        if let Some(db) = db.as_deref_mut() {
            db[..g.f]
                .iter_mut()
                .zip(&p[wlen..wlen + g.f])
                .for_each(|(d, &v)| *d += v);
        }
    }
}
