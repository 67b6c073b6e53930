//! Non-overlapping k x k max-pooling over NCHW planes, storing the argmax of each window so
//! that the backward is a scatter; plus the naive reference it is tested against. Rows and
//! columns that do not fill a window are dropped (Theano's `ignore_border=True`).

#[cfg_attr(not(target_arch = "x86_64"), path = "unsupported.rs")]
mod avx512;
mod reference;
#[cfg(test)]
mod tests;

pub use reference::{maxpool_backward_naive, maxpool_naive};

use crate::par::{self, SyncPtr};
use crate::Float;

/// Sizes of a pooling: `planes = n * c` planes of `h x w`, windows of `k x k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    /// Number of planes (batch times channels).
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window side.
    pub k: usize,
}

impl PoolGeom {
    /// Output height (0 for windows of side 0, which fit nothing).
    pub fn oh(&self) -> usize {
        self.h.checked_div(self.k).unwrap_or(0)
    }
    /// Output width (0 for windows of side 0).
    pub fn ow(&self) -> usize {
        self.w.checked_div(self.k).unwrap_or(0)
    }
    /// Output elements in all: at most the input's, so no larger than a buffer that exists
    /// (saturating for a geometry no buffer could hold).
    pub fn out_len(&self) -> usize {
        self.planes
            .saturating_mul(self.oh())
            .saturating_mul(self.ow())
    }
}

/// Which window positions a max-pool's gradient goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolGrad {
    /// The first maximum in row-major order only (PyTorch, cuDNN).
    #[default]
    First,
    /// Every position equal to the maximum gets the whole gradient (Theano's `MaxPoolGrad`,
    /// which network3.py ran): ties are common where a layer's input is constant, e.g. over the
    /// blank margins of a digit.
    ///
    /// It is not the derivative of the max where tied positions move together (two
    /// positions of one window whose input patches are equal: the max changes once, this
    /// rule counts it at each). So a second derivative taken through it (a Hessian-vector
    /// product, say) is the derivative of this rule's gradient, whose Jacobian is not
    /// symmetric there, and not a Hessian of the loss: use [`PoolGrad::First`] for that.
    Ties,
}

/// Largest window side [`PoolGrad::Ties`] supports (a window's ties are a 32-bit mask).
pub const MAX_TIES_POOL: usize = 5;

/// For [`PoolGrad::Ties`]: replaces each window's argmax in `arg` by the bitmask of its
/// positions (bit `di * k + dj`) equal to the window's maximum `out`, given the pooled `x`.
pub fn tie_masks<T: Float>(g: &PoolGeom, x: &[T], out: &[T], arg: &mut [u32]) {
    let (oh, ow, k, w) = (g.oh(), g.ow(), g.k, g.w);
    assert!(k <= MAX_TIES_POOL && out.len() >= g.out_len() && arg.len() >= g.out_len());
    let off = tie_offsets(g);
    for p in 0..g.planes {
        for oy in 0..oh {
            let o = p * oh * ow + oy * ow;
            let (o, a) = (&out[o..o + ow], &mut arg[o..o + ow]);
            let r0 = p * g.h * w + oy * k * w;
            if k == 2 {
                let (row0, row1) = (&x[r0..r0 + w], &x[r0 + w..r0 + 2 * w]);
                for ox in 0..ow {
                    let (c, m) = (2 * ox, o[ox]);
                    a[ox] = u32::from(row0[c] == m)
                        | u32::from(row0[c + 1] == m) << 1
                        | u32::from(row1[c] == m) << 2
                        | u32::from(row1[c + 1] == m) << 3;
                }
            } else {
                for ox in 0..ow {
                    let origin = r0 + ox * k;
                    a[ox] = (0..k * k)
                        .filter(|&b| x[origin + off[b]] == o[ox])
                        .fold(0, |m, b| m | 1 << b);
                }
            }
        }
    }
}

/// Where mask bit `b` of [`tie_masks`] lies, as an offset from its window's first element.
pub fn tie_offsets(g: &PoolGeom) -> [usize; MAX_TIES_POOL * MAX_TIES_POOL] {
    let mut off = [0; MAX_TIES_POOL * MAX_TIES_POOL];
    for (b, o) in off.iter_mut().enumerate().take(g.k * g.k) {
        *o = (b / g.k) * g.w + b % g.k;
    }
    off
}

/// Adds `d` to every position of window `o`'s tie mask (see [`tie_masks`]) in `dx`.
#[inline]
pub fn scatter_ties<T: Float>(g: &PoolGeom, o: usize, mask: u32, d: T, dx: &mut [T]) {
    let (oh, ow, k, w) = (g.oh(), g.ow(), g.k, g.w);
    let (p, r) = (o / (oh * ow), o % (oh * ow));
    let origin = p * g.h * w + (r / ow) * k * w + (r % ow) * k;
    let mut m = mask;
    while m != 0 {
        let bit = m.trailing_zeros() as usize;
        dx[origin + (bit / k) * w + bit % k] += d;
        m &= m - 1;
    }
}

/// Max over each window into `out`, the flat input index of each maximum into `arg`. The
/// first maximum of a window wins (row-major order), as in the naive reference.
pub fn maxpool_forward<T: Float>(g: &PoolGeom, x: &[T], out: &mut [T], arg: &mut [u32]) {
    let (oh, ow, k, w) = (g.oh(), g.ow(), g.k, g.w);
    assert!(x.len() >= g.planes * g.h * w && out.len() >= g.out_len() && arg.len() >= g.out_len());
    assert!(
        x.len() <= u32::MAX as usize,
        "max-pool input too large for u32 indices"
    );
    let (op, ap) = (SyncPtr(out.as_mut_ptr()), SyncPtr(arg.as_mut_ptr()));
    // f32 2x2 windows on AVX-512: 16 windows per step, branch-free (the scalar loop's
    // data-dependent branches mispredict on activations).
    let simd = (k == 2 && crate::isa::best_isa() == crate::isa::Isa::Avx512)
        .then(|| crate::float::as_f32(x))
        .flatten();
    let planes = |lo: usize, hi: usize| {
        for p in lo..hi {
            let base = p * g.h * w;
            let obase = p * oh * ow;
            if let Some(xf) = simd {
                // SAFETY: AVX-512F is the best ISA; plane p holds h >= 2*oh rows of w >= 2*ow
                // floats; its outputs (oh*ow) are written by this range alone, inside the
                // buffers checked above; T is f32 (`as_f32`), so `out` holds f32s.
                unsafe {
                    let (o, a) = (op.ptr().add(obase), ap.ptr().add(obase));
                    let x = xf[base..base + g.h * w].as_ptr();
                    avx512::pool2_rows(x, (w, base), (oh, ow), o.cast(), a);
                }
                continue;
            }
            for oy in 0..oh {
                // SAFETY: plane p's outputs are written by this range alone, inside the buffers
                // checked above.
                let o = unsafe { op.slice(obase + oy * ow, ow) };
                let a = unsafe { ap.slice(obase + oy * ow, ow) };
                let r0 = base + oy * k * w;
                if k == 2 {
                    // The book's pool: four loads and three compares per output, no inner loop.
                    let (row0, row1) = (&x[r0..r0 + w], &x[r0 + w..r0 + 2 * w]);
                    for ox in 0..ow {
                        let c = 2 * ox;
                        let (mut m, mut i) = (row0[c], c);
                        if row0[c + 1] > m {
                            m = row0[c + 1];
                            i = c + 1;
                        }
                        if row1[c] > m {
                            m = row1[c];
                            i = w + c;
                        }
                        if row1[c + 1] > m {
                            m = row1[c + 1];
                            i = w + c + 1;
                        }
                        o[ox] = m;
                        a[ox] = (r0 + i) as u32;
                    }
                } else {
                    for ox in 0..ow {
                        let mut best = r0 + ox * k;
                        for di in 0..k {
                            let row = r0 + di * w + ox * k;
                            for idx in row..row + k {
                                if x[idx] > x[best] {
                                    best = idx;
                                }
                            }
                        }
                        o[ox] = x[best];
                        a[ox] = best as u32;
                    }
                }
            }
        }
    };
    // Below ~64k inputs a fork/join costs more than the pass.
    if par::worth_splitting(g.planes * g.h * w, 1 << 16) {
        par::split(g.planes, 1, &|_, lo, hi| planes(lo, hi));
    } else {
        planes(0, g.planes);
    }
}

/// The max-pool's input gradient written over `dx` (every element: `dout` at each window's
/// stored argmax, zero elsewhere, dropped rows and columns included): the gradient a fresh
/// buffer needs, in one pass instead of a zero-fill and a scatter. `arg` is as
/// [`maxpool_forward`] left it.
pub fn maxpool_backward_overwrite<T: Float>(g: &PoolGeom, dout: &[T], arg: &[u32], dx: &mut [T]) {
    let (oh, ow, k, w) = (g.oh(), g.ow(), g.k, g.w);
    let plane = g.h * w;
    assert!(
        dx.len() >= g.planes * plane && dout.len() >= g.out_len() && arg.len() >= g.out_len(),
        "max-pool backward: buffers shorter than {g:?}"
    );
    let dp = SyncPtr(dx.as_mut_ptr());
    let simd = (k == 2 && crate::isa::best_isa() == crate::isa::Isa::Avx512)
        .then(|| crate::float::as_f32(dout))
        .flatten();
    let planes = |lo: usize, hi: usize| {
        for p in lo..hi {
            // SAFETY: plane p's input gradient is written by this range alone, inside `dx`
            // (asserted above).
            let d = unsafe { dp.slice(p * plane, plane) };
            let (o, a) = (&dout[p * oh * ow..], &arg[p * oh * ow..]);
            let base = p * plane;
            match simd {
                Some(df) => {
                    let (df, a) = (&df[p * oh * ow..][..oh * ow], &a[..oh * ow]);
                    // SAFETY: AVX-512F is the best ISA; T is f32 (`as_f32`); `d` holds the
                    // plane's 2*oh rows of w floats, `df` and `a` its oh*ow outputs.
                    unsafe {
                        let (dd, ad) = (df.as_ptr(), a.as_ptr());
                        avx512::unpool2_rows(dd, ad, (base, w), (oh, ow), d.as_mut_ptr().cast());
                    }
                    d[2 * oh * w..].fill(T::zero());
                }
                None => {
                    d.fill(T::zero());
                    for (&v, &i) in o[..oh * ow].iter().zip(&a[..oh * ow]) {
                        let i = (i as usize).wrapping_sub(base);
                        assert!(i < plane, "max-pool argmax {} outside plane {p}", i + base);
                        d[i] = v;
                    }
                }
            }
        }
    };
    if par::worth_splitting(g.planes * plane, 1 << 16) {
        par::split(g.planes, 1, &|_, lo, hi| planes(lo, hi));
    } else {
        planes(0, g.planes);
    }
}

/// Scatters `dout` into `dx` at the stored argmax positions (adding). The windows do not
/// overlap, so no two outputs share an argmax, and any split of the outputs across threads
/// writes disjoint elements.
pub fn maxpool_backward<T: Float>(dout: &[T], arg: &[u32], dx: &mut [T]) {
    let n = dout.len().min(arg.len());
    let (dp, len) = (SyncPtr(dx.as_mut_ptr()), dx.len());
    let part = |lo: usize, hi: usize| {
        for (&d, &a) in dout[lo..hi].iter().zip(&arg[lo..hi]) {
            // Checked here, not in a pass of its own over `arg`.
            assert!(
                (a as usize) < len,
                "max-pool argmax {a} outside the input ({len})"
            );
            // SAFETY: in range (asserted); distinct outputs have distinct argmaxes.
            unsafe { *dp.ptr().add(a as usize) += d };
        }
    };
    if par::worth_splitting(n, 1 << 15) {
        par::split(n, 16, &|_, lo, hi| part(lo, hi));
    } else {
        part(0, n);
    }
}
