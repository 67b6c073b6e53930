//! Non-overlapping k x k max-pooling over NCHW planes, storing the argmax of each window so
//! that the backward is a scatter; plus the naive reference it is tested against. Rows and
//! columns that do not fill a window are dropped (Theano's `ignore_border=True`).

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
    /// Output height.
    pub fn oh(&self) -> usize {
        self.h / self.k
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.w / self.k
    }
    /// Output elements in all.
    pub fn out_len(&self) -> usize {
        self.planes * self.oh() * self.ow()
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
    for p in 0..g.planes {
        let base = p * g.h * w;
        let obase = p * oh * ow;
        for oy in 0..oh {
            let o = &mut out[obase + oy * ow..obase + (oy + 1) * ow];
            let a = &mut arg[obase + oy * ow..obase + (oy + 1) * ow];
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
}

/// Scatters `dout` into `dx` at the stored argmax positions (adding).
pub fn maxpool_backward<T: Float>(dout: &[T], arg: &[u32], dx: &mut [T]) {
    for (&d, &a) in dout.iter().zip(arg) {
        dx[a as usize] += d;
    }
}

/// Reference max-pool by direct loops (first maximum wins).
pub fn maxpool_naive<T: Float>(g: &PoolGeom, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow, k) = (g.oh(), g.ow(), g.k);
    let mut out = Vec::with_capacity(g.out_len());
    let mut arg = Vec::with_capacity(g.out_len());
    for p in 0..g.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = p * g.h * g.w + oy * k * g.w + ox * k;
                for i in 0..k {
                    for j in 0..k {
                        let idx = p * g.h * g.w + (oy * k + i) * g.w + ox * k + j;
                        if x[idx] > x[best] {
                            best = idx;
                        }
                    }
                }
                out.push(x[best]);
                arg.push(best as u32);
            }
        }
    }
    (out, arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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
        for (planes, h, w, k) in [(6, 24, 24, 2), (5, 7, 9, 2), (3, 9, 9, 3), (2, 5, 4, 1)] {
            let g = PoolGeom { planes, h, w, k };
            let x: Vec<f64> = (0..planes * h * w)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let mut out = vec![0.0; g.out_len()];
            let mut arg = vec![0; g.out_len()];
            maxpool_forward(&g, &x, &mut out, &mut arg);
            let (o2, a2) = maxpool_naive(&g, &x);
            assert_eq!(out, o2);
            assert_eq!(arg, a2);
        }
    }
}
