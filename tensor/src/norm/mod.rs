//! Batch normalisation over `[n, c, s]` (a batch of `n` samples of `c` channels of `s`
//! positions each; `s = 1` for features), fused with an activation: the forward, its
//! gradients, and naive references the fused kernels are tested against.
//!
//! Per channel, with `M = n*s` values, `xhat = (x - mean) * inv_std` and
//! `y = act(scale * xhat + bias)`. Backward, with `g = dy * act'(y)`:
//! `dscale = sum(g xhat)`, `dbias = sum(g)`, and, when the statistics are the batch's own,
//! `dx = scale inv_std (g - sum(g)/M - xhat sum(g xhat)/M)` (otherwise `scale inv_std g`).
//! Channels are split across threads; each channel's sums run in f64 in one fixed order, so
//! results do not depend on the thread count.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod reference;
#[cfg(test)]
mod tests;

pub use reference::batch_norm_naive;

use crate::par::{self, SyncPtr};
use crate::unary::Act;
use crate::{Accum, Float};

/// The sizes of one batch norm: `n` samples, `c` channels, `s` positions per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormGeom {
    /// Samples.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Positions per channel and sample.
    pub s: usize,
}

impl NormGeom {
    /// Values per channel, `n * s`.
    pub fn per_channel(&self) -> usize {
        self.n * self.s
    }
    /// All values.
    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Runs `f(channel)` for every channel, split across threads when the work is large.
    fn channels<F: Fn(usize) + Sync>(&self, f: F) {
        let threads = par::threads().min(self.c);
        let range = |lo: usize, hi: usize| (lo..hi).for_each(&f);
        // Below ~64k values a fork/join costs more than the pass it splits.
        if threads <= 1 || self.len() < 1 << 16 {
            range(0, self.c);
        } else {
            let per = self.c.div_ceil(threads);
            par::run(self.c.div_ceil(per), &|t| {
                range(t * per, ((t + 1) * per).min(self.c))
            });
        }
    }
    /// The `n` runs of channel `ch`'s values in a `[n, c, s]` buffer.
    fn runs(&self, ch: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.n).map(move |i| (i * self.c + ch) * self.s..(i * self.c + ch + 1) * self.s)
    }
    /// The same runs as the AVX-512 kernels take them.
    #[cfg(target_arch = "x86_64")]
    fn wide_runs(&self, ch: usize) -> avx512::Runs {
        avx512::Runs {
            first: ch * self.s,
            n: self.n,
            s: self.s,
            stride: self.c * self.s,
        }
    }
}

/// Whether the explicit AVX-512 kernels take `T` (f32) on this CPU.
fn wide_f32<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        return crate::isa::Isa::Avx512.available();
    }
    false
}

/// The sums of `kind` over every run of channel `ch` (buffers `[n, c, s]`, as [`sums`]
/// takes them): one AVX-512 pass over all the runs for f32 (the vector sums carried across
/// short runs), otherwise run by run.
fn channel_sums<T: Float>(
    g: &NormGeom,
    ch: usize,
    kind: Sums,
    (a, b, c): (&[T], &[T], &[T]),
    s: T,
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if wide_f32::<T>() {
        use crate::float::as_f32;
        if let (Some(a), Some(b), Some(c)) = (as_f32(a), as_f32(b), as_f32(c)) {
            let all = g.len();
            assert!(a.len() >= all && (kind == Sums::Stats || (b.len() >= all && c.len() >= all)));
            // SAFETY: AVX-512F is present; the buffers hold every run (asserted).
            return unsafe { avx512::sums_runs(kind, (a, b, c), s.f64() as f32, g.wide_runs(ch)) };
        }
    }
    let (mut u, mut v) = (0.0f64, 0.0f64);
    for r in g.runs(ch) {
        let (p, q) = match kind {
            Sums::Stats => sums(kind, &a[r.clone()], &[], &[], s),
            Sums::Grad { .. } => sums(kind, &a[r.clone()], &b[r.clone()], &c[r], s),
        };
        u += p;
        v += q;
    }
    (u, v)
}

const LANES: usize = 16;

/// Runs `f` compiled with AVX-512 enabled when the CPU has it (`f` is inlined into the
/// wrapper, which carries the target features). It wraps each loop itself: a closure holding a
/// whole channel's work was not inlined, and its loops compiled to scalar code.
#[inline(always)]
fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::Isa::Avx512.available() {
        // SAFETY: the CPU has AVX-512F (and with it AVX2 and FMA).
        return unsafe { avx512::wide(f) };
    }
    f()
}

/// `(sum u, sum v)` of `(u, v) = f(a[i], b[i], c[i])` over three equally long slices, in
/// `LANES` independent partial sums (so the loop vectorises; one running sum would be a
/// serial chain), totalled in f64: [`sums`] for types without explicit kernels.
#[inline(always)]
fn lane_sums<T: Float, F: Fn(T, T, T) -> (T, T)>(a: &[T], b: &[T], c: &[T], f: F) -> (f64, f64) {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let full = n / LANES * LANES;
    let (mut su, mut sv) = ([T::zero(); LANES], [T::zero(); LANES]);
    for i in (0..full).step_by(LANES) {
        let (a, b, c) = (&a[i..i + LANES], &b[i..i + LANES], &c[i..i + LANES]);
        for l in 0..LANES {
            let (u, v) = f(a[l], b[l], c[l]);
            su[l] += u;
            sv[l] += v;
        }
    }
    let (mut tu, mut tv) = (0.0f64, 0.0f64);
    for i in full..n {
        let (u, v) = f(a[i], b[i], c[i]);
        tu += u.f64();
        tv += v.f64();
    }
    for l in 0..LANES {
        tu += su[l].f64();
        tv += sv[l].f64();
    }
    (tu, tv)
}

/// What one pass of sums adds up per element, with `s` a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sums {
    /// `(x - s, (x - s)^2)` over `a = x`: a channel's statistics.
    Stats,
    /// `(g, g (x - s))` over `a = dy, b = y, c = x`, with `g = dy` or, for a ReLU, `dy` where
    /// `y > 0`: the backward's two sums.
    Grad { relu: bool },
}

/// The sums of `kind` over one run, in [`lane_sums`] (f32 on AVX-512 takes
/// [`avx512::sums_runs`] instead, a channel at a time: LLVM does not vectorise these two-sum
/// reductions through a closure).
fn sums<T: Float>(kind: Sums, a: &[T], b: &[T], c: &[T], s: T) -> (f64, f64) {
    match kind {
        Sums::Stats => lane_sums(a, a, a, |v, _, _| {
            let d = v - s;
            (d, d * d)
        }),
        Sums::Grad { relu: false } => lane_sums(a, b, c, |d, _, x| (d, d * (x - s))),
        Sums::Grad { relu: true } => lane_sums(a, b, c, |d, y, x| {
            let g = if y > T::zero() { d } else { T::zero() };
            (g, g * (x - s))
        }),
    }
}

/// Each channel's mean and biased variance, in one pass over `x`: sums of `x - x0` and its
/// square, where `x0` is the channel's first value (shifting by a value of the data keeps the
/// difference of the two sums from cancelling, as long as the spread is not tiny next to the
/// mean), in f32 lanes totalled in f64.
pub fn batch_stats<T: Float>(g: &NormGeom, x: &[T], mean: &mut [f64], var: &mut [f64]) {
    assert!(x.len() >= g.len() && mean.len() >= g.c && var.len() >= g.c);
    let (mp, vp) = (SyncPtr(mean.as_mut_ptr()), SyncPtr(var.as_mut_ptr()));
    let m = g.per_channel().max(1) as f64;
    g.channels(|ch| {
        let shift = g.runs(ch).next().map_or(T::zero(), |r| x[r.start]);
        let (s1, s2) = channel_sums(g, ch, Sums::Stats, (x, x, x), shift);
        let d = s1 / m;
        // SAFETY: channel ch's statistics are written by this call alone, inside the
        // buffers checked above.
        unsafe {
            mp.slice(ch, 1)[0] = shift.f64() + d;
            vp.slice(ch, 1)[0] = (s2 / m - d * d).max(0.0);
        }
    });
}

/// The per-channel normalisation a forward applies and its backward differentiates:
/// `y = act(scale (x - mean) inv_std + bias)`.
#[derive(Debug, Clone, Copy)]
pub struct NormParams<'a, T> {
    /// Each channel's mean.
    pub mean: &'a [f64],
    /// Each channel's `1 / sqrt(var + eps)`.
    pub inv_std: &'a [f64],
    /// Each channel's scale.
    pub scale: &'a [T],
    /// The activation fused after the affine map.
    pub act: Act,
}

impl<T> NormParams<'_, T> {
    /// Panics unless every per-channel slice covers `g`'s channels: the forward and the
    /// backward index them by channel inside parallel tasks.
    fn check(&self, g: &NormGeom) {
        assert!(self.mean.len() >= g.c && self.inv_std.len() >= g.c && self.scale.len() >= g.c);
    }
}

/// Where [`batch_norm_backward`] puts the gradients.
#[derive(Debug)]
pub struct NormGrads<'a, T> {
    /// The input gradient, if wanted, and whether it is added to or written over.
    pub dx: Option<(&'a mut [T], Accum)>,
    /// The scales' gradient, added to.
    pub dscale: &'a mut [T],
    /// The shifts' gradient, added to.
    pub dbias: &'a mut [T],
}

/// `y = act(scale (x - mean) inv_std + bias)` per channel.
pub fn batch_norm_forward<T: Float>(
    g: &NormGeom,
    p: &NormParams<'_, T>,
    bias: &[T],
    x: &[T],
    y: &mut [T],
) {
    p.check(g);
    let act = p.act;
    assert!(x.len() >= g.len() && y.len() >= g.len());
    assert!(bias.len() >= g.c);
    let yp = SyncPtr(y.as_mut_ptr());
    g.channels(|ch| {
        // y = k x + b, folded per channel.
        let k = p.scale[ch].f64() * p.inv_std[ch];
        let (k, b) = (T::of(k), T::of(bias[ch].f64() - k * p.mean[ch]));
        #[cfg(target_arch = "x86_64")]
        if wide_f32::<T>() && matches!(act, Act::Identity | Act::Relu) {
            let (k, b) = (k.f64() as f32, b.f64() as f32);
            let relu = act == Act::Relu;
            // SAFETY: AVX-512F is present and T is f32 (`wide_f32`); x and y hold every run
            // (asserted above), and channel ch's runs of y are written by this call alone.
            unsafe {
                let (y, x) = (yp.ptr().cast(), x.as_ptr().cast());
                avx512::affine_runs(y, x, g.wide_runs(ch), k, b, relu);
            }
            return;
        }
        for r in g.runs(ch) {
            // SAFETY: the runs of channel ch are written by this call alone.
            let out = unsafe { yp.slice(r.start, r.len()) };
            let x = &x[r];
            match act {
                Act::Identity => affine(out, x, k, b, |v| v),
                Act::Relu => affine(out, x, k, b, |v| v.max(T::zero())),
                _ => {
                    affine(out, x, k, b, |v| v);
                    act.apply(out);
                }
            }
        }
    });
}

/// Adds the gradients of [`batch_norm_forward`] (input `x`, output `y`, output gradient `dy`)
/// into `grads.dscale` and `grads.dbias`, and puts the input gradient into `grads.dx`, when
/// given, as its [`Accum`] says. `batch` says the statistics were the batch's own (their
/// gradient flows into `dx`).
pub fn batch_norm_backward<T: Float>(
    g: &NormGeom,
    p: &NormParams<'_, T>,
    batch: bool,
    x: &[T],
    y: &[T],
    dy: &[T],
    grads: NormGrads<'_, T>,
) {
    p.check(g);
    let act = p.act;
    let NormGrads { dx, dscale, dbias } = grads;
    assert!(x.len() >= g.len() && y.len() >= g.len() && dy.len() >= g.len());
    assert!(dscale.len() >= g.c && dbias.len() >= g.c);
    let want_dx = dx.is_some();
    let set = dx.as_ref().is_some_and(|d| d.1 == Accum::Overwrite);
    let dxp = SyncPtr(dx.map_or(std::ptr::null_mut(), |(d, _)| {
        assert!(d.len() >= g.len());
        d.as_mut_ptr()
    }));
    let (gp, bp) = (SyncPtr(dscale.as_mut_ptr()), SyncPtr(dbias.as_mut_ptr()));
    let m = g.per_channel().max(1) as f64;
    g.channels(|ch| {
        let (mu, inv) = (p.mean[ch], p.inv_std[ch]);
        let t = T::of(mu);
        // The activation chosen once per channel, not per element.
        let (sum_g, sum_gx) = match act {
            Act::Identity => channel_sums(g, ch, Sums::Grad { relu: false }, (dy, y, x), t),
            Act::Relu => channel_sums(g, ch, Sums::Grad { relu: true }, (dy, y, x), t),
            _ => g.runs(ch).fold((0.0, 0.0), |(u, v), r| {
                let (dy, y, x) = (&dy[r.clone()], &y[r.clone()], &x[r]);
                let (a, b) = lane_sums(dy, y, x, |d, y, x| {
                    let gv = d * act.grad_from_output(y);
                    (gv, gv * (x - t))
                });
                (u + a, v + b)
            }),
        };
        let sum_gx = sum_gx * inv;
        // SAFETY: channel ch's gradients (and its runs of dx) are written by this call alone.
        unsafe {
            gp.slice(ch, 1)[0] += T::of(sum_gx);
            bp.slice(ch, 1)[0] += T::of(sum_g);
        }
        if !want_dx {
            return;
        }
        let k = p.scale[ch].f64() * inv;
        let (mg, mgx) = if batch {
            (sum_g / m, sum_gx / m)
        } else {
            (0.0, 0.0)
        };
        // dx = k g - k mg - k mgx inv (x - mu) = k g + a x + c.
        let a = T::of(-k * mgx * inv);
        let c = T::of(-k * mg + k * mgx * inv * mu);
        let k = T::of(k);
        #[cfg(target_arch = "x86_64")]
        if wide_f32::<T>() && matches!(act, Act::Identity | Act::Relu) {
            let f = |v: T| v.f64() as f32;
            let (f3, modes) = ((f(k), f(a), f(c)), (act == Act::Relu, set));
            // SAFETY: AVX-512F is present and T is f32 (`wide_f32`); the buffers hold every
            // run (asserted above), and channel ch's runs of dx are written by this call alone.
            unsafe {
                let ins = (dy.as_ptr().cast(), y.as_ptr().cast(), x.as_ptr().cast());
                avx512::input_grad_runs(dxp.ptr().cast(), ins, g.wide_runs(ch), f3, modes);
            }
            return;
        }
        for r in g.runs(ch) {
            // SAFETY: as above.
            let out = unsafe { dxp.slice(r.start, r.len()) };
            let (dy, y, x) = (&dy[r.clone()], &y[r.clone()], &x[r]);
            // The activation chosen once per run, so that each loop vectorises.
            let (f, ins) = ((k, a, c), (dy, y, x));
            match act {
                Act::Identity => input_grad(out, ins, |d, _| d, f, set),
                Act::Relu => input_grad(
                    out,
                    ins,
                    |d, y| if y > T::zero() { d } else { T::zero() },
                    f,
                    set,
                ),
                _ => input_grad(out, ins, |d, y| d * act.grad_from_output(y), f, set),
            }
        }
    });
}

/// `y = act(k * x + b)` elementwise.
#[inline(always)]
fn affine<T: Float>(y: &mut [T], x: &[T], k: T, b: T, act: impl Fn(T) -> T) {
    wide(|| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = act(k * v + b);
        }
    })
}

/// `dx += k * g(dy, y) + a * x + c` elementwise (with `set`, `dx =`).
#[inline(always)]
fn input_grad<T: Float>(
    out: &mut [T],
    (dy, y, x): (&[T], &[T], &[T]),
    g: impl Fn(T, T) -> T,
    (k, a, c): (T, T, T),
    set: bool,
) {
    wide(|| {
        let terms = out.iter_mut().zip(dy).zip(y).zip(x);
        if set {
            for (((o, &d), &yv), &xv) in terms {
                *o = k * g(d, yv) + a * xv + c;
            }
        } else {
            for (((o, &d), &yv), &xv) in terms {
                *o += k * g(d, yv) + a * xv + c;
            }
        }
    })
}
