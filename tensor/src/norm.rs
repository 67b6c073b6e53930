//! Batch normalisation over `[n, c, s]` (a batch of `n` samples of `c` channels of `s`
//! positions each; `s = 1` for features), fused with an activation: the forward, its
//! gradients, and naive references the fused kernels are tested against.
//!
//! Per channel, with `M = n*s` values, `xhat = (x - mean) * inv_std` and
//! `y = act(gamma * xhat + beta)`. Backward, with `g = dy * act'(y)`:
//! `dgamma = sum(g xhat)`, `dbeta = sum(g)`, and, when the statistics are the batch's own,
//! `dx = gamma inv_std (g - sum(g)/M - xhat sum(g xhat)/M)` (otherwise `gamma inv_std g`).
//! Channels are split across threads; each channel's sums run in f64 in one fixed order, so
//! results do not depend on the thread count.

use crate::par::{self, SyncPtr};
use crate::unary::Act;
use crate::Float;

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
    /// Each range of channels runs compiled for AVX-512 where the CPU has it (the crate is
    /// built for baseline x86-64, whose 4-wide SSE made these loops 3x slower).
    fn channels<F: Fn(usize) + Sync>(&self, f: F) {
        let threads = par::threads().min(self.c);
        let range = |lo: usize, hi: usize| wide(|| (lo..hi).for_each(&f));
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
}

const LANES: usize = 16;

/// Runs `f` compiled with AVX-512 enabled when the CPU has it (`f` is inlined into the
/// wrapper, which carries the target features).
#[inline(always)]
fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if crate::small::Isa::Avx512.available() {
        // SAFETY: the CPU has AVX-512F (and with it AVX2 and FMA).
        return unsafe { avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `(sum u, sum v)` of `(u, v) = f(a[i], b[i], c[i])` over three equally long slices, in
/// `LANES` independent partial sums (so the loop vectorises; one running sum would be a
/// serial chain), totalled in f64.
#[inline(always)]
fn lane_sums<T: Float>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> (T, T)) -> (f64, f64) {
    let (mut su, mut sv) = ([T::zero(); LANES], [T::zero(); LANES]);
    let (ac, bc, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let (ar, br, cr) = (ac.remainder(), bc.remainder(), cc.remainder());
    for ((a, b), c) in ac.zip(bc).zip(cc) {
        for l in 0..LANES {
            let (u, v) = f(a[l], b[l], c[l]);
            su[l] += u;
            sv[l] += v;
        }
    }
    let (mut tu, mut tv) = (0.0f64, 0.0f64);
    for ((&a, &b), &c) in ar.iter().zip(br).zip(cr) {
        let (u, v) = f(a, b, c);
        tu += u.f64();
        tv += v.f64();
    }
    for l in 0..LANES {
        tu += su[l].f64();
        tv += sv[l].f64();
    }
    (tu, tv)
}

/// Each channel's mean and biased variance (two passes, f64 sums).
pub fn batch_stats<T: Float>(g: &NormGeom, x: &[T], mean: &mut [f64], var: &mut [f64]) {
    assert!(x.len() >= g.len() && mean.len() >= g.c && var.len() >= g.c);
    let (mp, vp) = (SyncPtr(mean.as_mut_ptr()), SyncPtr(var.as_mut_ptr()));
    let m = g.per_channel().max(1) as f64;
    g.channels(|ch| {
        let sum = |f: &dyn Fn(T) -> T| -> f64 {
            g.runs(ch)
                .map(|r| {
                    let x = &x[r];
                    lane_sums(x, x, x, |v, _, _| (f(v), T::zero())).0
                })
                .sum()
        };
        let mu = sum(&|v| v) / m;
        let t = T::of(mu);
        let sq = sum(&|v| (v - t) * (v - t));
        // SAFETY: channel ch's statistics are written by this call alone, inside the
        // buffers checked above.
        unsafe {
            mp.slice(ch, 1)[0] = mu;
            vp.slice(ch, 1)[0] = sq / m;
        }
    });
}

/// `y = act(gamma (x - mean) inv_std + beta)` per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward<T: Float>(
    g: &NormGeom,
    x: &[T],
    mean: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    act: Act,
    y: &mut [T],
) {
    assert!(x.len() >= g.len() && y.len() >= g.len());
    assert!(mean.len() >= g.c && inv_std.len() >= g.c && gamma.len() >= g.c && beta.len() >= g.c);
    let yp = SyncPtr(y.as_mut_ptr());
    g.channels(|ch| {
        // y = k x + b, folded per channel.
        let k = gamma[ch].f64() * inv_std[ch];
        let (k, b) = (T::of(k), T::of(beta[ch].f64() - k * mean[ch]));
        for r in g.runs(ch) {
            // SAFETY: the runs of channel ch are written by this call alone.
            let out = unsafe { yp.slice(r.start, r.len()) };
            for (o, &v) in out.iter_mut().zip(&x[r]) {
                *o = k * v + b;
            }
            act.apply(out);
        }
    });
}

/// Adds the gradients of [`batch_norm_forward`] into `dgamma`, `dbeta` and, when given, `dx`.
/// `batch` says the statistics were the batch's own (their gradient flows into `dx`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<T: Float>(
    g: &NormGeom,
    x: &[T],
    y: &[T],
    dy: &[T],
    mean: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    act: Act,
    batch: bool,
    dx: Option<&mut [T]>,
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    assert!(x.len() >= g.len() && y.len() >= g.len() && dy.len() >= g.len());
    assert!(dgamma.len() >= g.c && dbeta.len() >= g.c);
    let want_dx = dx.is_some();
    let dxp = SyncPtr(dx.map_or(std::ptr::null_mut(), |d| {
        assert!(d.len() >= g.len());
        d.as_mut_ptr()
    }));
    let (gp, bp) = (SyncPtr(dgamma.as_mut_ptr()), SyncPtr(dbeta.as_mut_ptr()));
    let m = g.per_channel().max(1) as f64;
    g.channels(|ch| {
        let (mu, inv) = (mean[ch], inv_std[ch]);
        let t = T::of(mu);
        let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
        for r in g.runs(ch) {
            let (dy, y, x) = (&dy[r.clone()], &y[r.clone()], &x[r.clone()]);
            // The activation chosen once per run, not per element.
            let (a, b) = match act {
                Act::Identity => lane_sums(dy, y, x, |d, _, x| (d, d * (x - t))),
                Act::Relu => lane_sums(dy, y, x, |d, y, x| {
                    let gv = if y > T::zero() { d } else { T::zero() };
                    (gv, gv * (x - t))
                }),
                _ => lane_sums(dy, y, x, |d, y, x| {
                    let gv = d * act.grad_from_output(y);
                    (gv, gv * (x - t))
                }),
            };
            sum_g += a;
            sum_gx += b * inv;
        }
        // SAFETY: channel ch's gradients (and its runs of dx) are written by this call alone.
        unsafe {
            gp.slice(ch, 1)[0] += T::of(sum_gx);
            bp.slice(ch, 1)[0] += T::of(sum_g);
        }
        if !want_dx {
            return;
        }
        let k = gamma[ch].f64() * inv;
        let (mg, mgx) = if batch {
            (sum_g / m, sum_gx / m)
        } else {
            (0.0, 0.0)
        };
        // dx = k g - k mg - k mgx inv (x - mu) = k g + a x + c.
        let a = T::of(-k * mgx * inv);
        let c = T::of(-k * mg + k * mgx * inv * mu);
        let k = T::of(k);
        for r in g.runs(ch) {
            let out = unsafe { dxp.slice(r.start, r.len()) };
            for (((o, &d), &yv), &xv) in out
                .iter_mut()
                .zip(&dy[r.clone()])
                .zip(&y[r.clone()])
                .zip(&x[r])
            {
                *o += k * (d * act.grad_from_output(yv)) + a * xv + c;
            }
        }
    });
}

/// Reference forward by the definition, with the batch's statistics: returns `(y, mean, var)`.
pub fn batch_norm_naive<T: Float>(
    g: &NormGeom,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    act: Act,
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    let mut y = vec![T::zero(); g.len()];
    let (mut mean, mut var) = (vec![0.0; g.c], vec![0.0; g.c]);
    let at = |i: usize, ch: usize, p: usize| (i * g.c + ch) * g.s + p;
    for ch in 0..g.c {
        let vals: Vec<f64> = (0..g.n)
            .flat_map(|i| (0..g.s).map(move |p| (i, p)))
            .map(|(i, p)| x[at(i, ch, p)].f64())
            .collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let v = vals.iter().map(|e| (e - m) * (e - m)).sum::<f64>() / vals.len() as f64;
        for i in 0..g.n {
            for p in 0..g.s {
                let xhat = (x[at(i, ch, p)].f64() - m) / (v + eps).sqrt();
                let mut o = [T::of(gamma[ch].f64() * xhat + beta[ch].f64())];
                act.apply(&mut o);
                y[at(i, ch, p)] = o[0];
            }
        }
        (mean[ch], var[ch]) = (m, v);
    }
    (y, mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn fused_forward_equals_the_definition_on_any_thread_count() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        for (n, c, s) in [(4, 3, 5), (7, 1, 1), (2, 16, 1), (64, 32, 49), (3, 5, 9000)] {
            let g = NormGeom { n, c, s };
            let x: Vec<f64> = (0..g.len()).map(|_| rng.random_range(-3.0..5.0)).collect();
            let gamma: Vec<f64> = (0..c).map(|_| rng.random_range(0.5..2.0)).collect();
            let beta: Vec<f64> = (0..c).map(|_| rng.random_range(-1.0..1.0)).collect();
            for act in [Act::Identity, Act::Relu, Act::Tanh] {
                let (want, wm, wv) = batch_norm_naive(&g, &x, &gamma, &beta, 1e-5, act);
                let close = |a: &[f64], b: &[f64], what: &str| {
                    for (a, b) in a.iter().zip(b) {
                        // Sums in another order: rounding apart only.
                        assert!(
                            (a - b).abs() < 1e-12 * b.abs().max(1.0),
                            "{g:?} {act:?} {what}: {a} vs {b}"
                        );
                    }
                };
                let outs: Vec<Vec<f64>> = [1, 2]
                    .into_iter()
                    .map(|threads| {
                        par::with_threads(threads, || {
                            let (mut m, mut v) = (vec![0.0; c], vec![0.0; c]);
                            batch_stats(&g, &x, &mut m, &mut v);
                            close(&m, &wm, "mean");
                            close(&v, &wv, "var");
                            let inv: Vec<f64> =
                                v.iter().map(|v| 1.0 / (v + 1e-5f64).sqrt()).collect();
                            let mut y = vec![f64::NAN; g.len()];
                            batch_norm_forward(&g, &x, &m, &inv, &gamma, &beta, act, &mut y);
                            close(&y, &want, "y");
                            y
                        })
                    })
                    .collect();
                assert_eq!(outs[0], outs[1], "the thread count changes nothing");
            }
        }
    }
}
