//! The one GEMM entry point. Every matrix product in nndl goes through [`gemm`], and every
//! backend call through [`backend`], so the backend is a one-line choice. It is the `gemm`
//! crate (AVX-512 kernels): `cargo bench --bench kernels` measured it 1.1-2.5x faster than
//! `matrixmultiply` 0.3.11 (AVX-512 enabled) at every shape of the book's nets, single-threaded.
//! `matrixmultiply` stays as the cross-check the tests compare against.

use crate::{Float, Result, Shape, Tensor, TensorError};

/// `C = alpha * op(A) * op(B) + beta * C` on row-major buffers, where `op(A)` is `m x k` and
/// `op(B)` is `k x n`. With `ta`, `a` holds A transposed (`k x m` row-major); likewise `tb`.
/// Transposes are taken by strides, never by copies. With `beta == 0`, `c`'s old contents are
/// ignored (NaNs included).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    beta: T,
    c: &mut [T],
) {
    check_buffers(m, k, n, a.len(), b.len(), c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == T::zero() {
                T::zero()
            } else {
                *v * beta
            };
        }
        return;
    }
    // A side of at most 16 (a fully connected layer at a small mini-batch): stream the big
    // operand once instead of packing it.
    if T::small_gemm(m, k, n, alpha, a, ta, b, tb, beta, c) {
        return;
    }
    gemm_packed(m, k, n, alpha, a, ta, b, tb, beta, c)
}

/// Panics unless the buffers hold an `m x k`, a `k x n` and an `m x n` matrix.
fn check_buffers(m: usize, k: usize, n: usize, a: usize, b: usize, c: usize) {
    assert!(
        a >= m * k && b >= k * n && c >= m * n,
        "gemm: buffer too small"
    );
}

/// [`gemm`] always through the packing backend (the `gemm` crate), whatever the shape: for
/// benchmarks that compare it with the small-side kernels.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    beta: T,
    c: &mut [T],
) {
    check_buffers(m, k, n, a.len(), b.len(), c.len());
    if m == 0 || n == 0 || k == 0 {
        return gemm(m, k, n, alpha, a, ta, b, tb, beta, c);
    }
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the asserts above guarantee each buffer holds its matrix; `c` is a distinct
    // `&mut` so it cannot alias `a` or `b`.
    unsafe {
        backend(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// Work (m*k*n) above which a GEMM called outside a parallel region uses all rayon threads.
const PARALLEL_WORK: usize = 1 << 22;

/// The backend call: strided `C = alpha*A*B + beta*C` through the `gemm` crate (the one GEMM
/// entry point under [`gemm`]).
///
/// # Safety
/// The pointers and strides must describe valid `m x k`, `k x n`, `m x n` matrices, and `c`
/// must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn backend<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: *const T,
    rsa: isize,
    csa: isize,
    b: *const T,
    rsb: isize,
    csb: isize,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    // Coarse parallelism only, on the kernel team (one split, no rayon injection): C's rows
    // (or columns, when it has few rows) in one block per thread, each block a serial call.
    // Inside a parallel region (the conv's per-image tasks) the call stays serial.
    if m * k * n >= PARALLEL_WORK && crate::par::threads() > 1 {
        let (a, b, c) = (
            crate::par::SyncPtr(a as *mut T),
            crate::par::SyncPtr(b as *mut T),
            crate::par::SyncPtr(c),
        );
        if m >= n {
            crate::par::split(m, 8, &|_, lo, hi| {
                // SAFETY: rows lo..hi of C are this part's alone; A's rows lo..hi are inside A.
                unsafe {
                    serial(
                        hi - lo,
                        k,
                        n,
                        alpha,
                        a.ptr().offset(lo as isize * rsa),
                        rsa,
                        csa,
                        b.ptr(),
                        rsb,
                        csb,
                        beta,
                        c.ptr().offset(lo as isize * rsc),
                        rsc,
                        csc,
                    )
                }
            });
        } else {
            crate::par::split(n, 16, &|_, lo, hi| {
                // SAFETY: columns lo..hi of C are this part's alone; B's are inside B.
                unsafe {
                    serial(
                        m,
                        k,
                        hi - lo,
                        alpha,
                        a.ptr(),
                        rsa,
                        csa,
                        b.ptr().offset(lo as isize * csb),
                        rsb,
                        csb,
                        beta,
                        c.ptr().offset(lo as isize * csc),
                        rsc,
                        csc,
                    )
                }
            });
        }
        return;
    }
    serial(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
}

/// One single-threaded call of the `gemm` crate.
///
/// # Safety
/// As [`backend`].
#[allow(clippy::too_many_arguments)]
unsafe fn serial<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: *const T,
    rsa: isize,
    csa: isize,
    b: *const T,
    rsb: isize,
    csb: isize,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    // gemm's convention: dst = alpha_g*dst + beta_g*lhs*rhs, dst read only when read_dst.
    gemm_backend::gemm(
        m,
        n,
        k,
        c,
        csc,
        rsc,
        beta != T::zero(),
        a,
        csa,
        rsa,
        b,
        csb,
        rsb,
        beta,
        alpha,
        false,
        false,
        false,
        gemm_backend::Parallelism::None,
    )
}

/// The same product through `matrixmultiply`, kept as an independent cross-check.
#[allow(clippy::too_many_arguments)]
pub fn gemm_reference<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    ta: bool,
    b: &[T],
    tb: bool,
    beta: T,
    c: &mut [T],
) {
    check_buffers(m, k, n, a.len(), b.len(), c.len());
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: sizes asserted above; c is a distinct &mut.
    unsafe {
        if T::DTYPE == "f32" {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha.f64() as f32,
                a.as_ptr() as *const f32,
                rsa,
                csa,
                b.as_ptr() as *const f32,
                rsb,
                csb,
                beta.f64() as f32,
                c.as_mut_ptr() as *mut f32,
                n as isize,
                1,
            )
        } else {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha.f64(),
                a.as_ptr() as *const f64,
                rsa,
                csa,
                b.as_ptr() as *const f64,
                rsb,
                csb,
                beta.f64(),
                c.as_mut_ptr() as *mut f64,
                n as isize,
                1,
            )
        }
    }
}

fn matmul_dims<T: Float>(
    a: &Tensor<T>,
    ta: bool,
    b: &Tensor<T>,
    tb: bool,
) -> Result<(usize, usize, usize)> {
    if a.shape().ndim() != 2 || b.shape().ndim() != 2 {
        return Err(TensorError::ShapeMismatch {
            op: "matmul",
            lhs: a.shape(),
            rhs: b.shape(),
            why: "both operands must be 2-D".into(),
        });
    }
    let (m, ka) = if ta {
        (a.dims()[1], a.dims()[0])
    } else {
        (a.dims()[0], a.dims()[1])
    };
    let (kb, n) = if tb {
        (b.dims()[1], b.dims()[0])
    } else {
        (b.dims()[0], b.dims()[1])
    };
    if ka != kb {
        return Err(TensorError::ShapeMismatch {
            op: "matmul",
            lhs: a.shape(),
            rhs: b.shape(),
            why: format!("inner dimensions {ka} and {kb} differ"),
        });
    }
    Ok((m, ka, n))
}

/// `out = op(a) * op(b)` (or `+=` with `accumulate`) for 2-D tensors; `out` must be `m x n`.
pub fn matmul_into<T: Float>(
    a: &Tensor<T>,
    ta: bool,
    b: &Tensor<T>,
    tb: bool,
    out: &mut Tensor<T>,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = matmul_dims(a, ta, b, tb)?;
    if out.dims() != [m, n] {
        return Err(TensorError::ShapeMismatch {
            op: "matmul",
            lhs: out.shape(),
            rhs: Shape::new(&[m, n])?,
            why: "output buffer has the wrong shape".into(),
        });
    }
    let beta = if accumulate { T::one() } else { T::zero() };
    gemm(
        m,
        k,
        n,
        T::one(),
        a.data(),
        ta,
        b.data(),
        tb,
        beta,
        out.data_mut(),
    );
    Ok(())
}

/// `op(a) * op(b)` for 2-D tensors, into a new tensor.
pub fn matmul<T: Float>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Result<Tensor<T>> {
    let (m, _, n) = matmul_dims(a, ta, b, tb)?;
    let mut out = Tensor::zeros(&[m, n])?;
    matmul_into(a, ta, b, tb, &mut out, false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], ta: bool, b: &[f64], tb: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let x = if ta { a[p * m + i] } else { a[i * k + p] };
                    let y = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += x * y;
                }
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_in_all_transpose_combinations() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let b: Vec<f64> = (0..k * n)
            .map(|i| ((i * 17 % 7) as f64) * 0.5 - 1.0)
            .collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let mut c = vec![f64::NAN; m * n];
                gemm(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                assert_eq!(c, naive(m, k, n, &a, ta, &b, tb), "ta={ta} tb={tb}");
                let mut c2 = c.clone();
                gemm(m, k, n, 2.0, &a, ta, &b, tb, 1.0, &mut c2);
                for (x, y) in c2.iter().zip(&c) {
                    assert_eq!(*x, 3.0 * y);
                }
            }
        }
    }

    #[test]
    fn backend_equals_matrixmultiply_on_odd_and_large_shapes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
        for (m, k, n) in [
            (1, 1, 1),
            (10, 784, 30),
            (33, 17, 65),
            (257, 300, 129),
            (600, 70, 200),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut c1 = vec![0.5f32; m * n];
                let mut c2 = c1.clone();
                gemm(m, k, n, 0.7, &a, ta, &b, tb, 0.3, &mut c1);
                gemm_reference(m, k, n, 0.7, &a, ta, &b, tb, 0.3, &mut c2);
                for (x, y) in c1.iter().zip(&c2) {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{m}x{k}x{n} {ta} {tb}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn matmul_checks_inner_dimensions() {
        let a = Tensor::<f32>::zeros(&[2, 3]).unwrap();
        let b = Tensor::<f32>::zeros(&[4, 3]).unwrap();
        assert!(matmul(&a, false, &b, false).is_err());
        assert_eq!(matmul(&a, false, &b, true).unwrap().dims(), &[2, 4]);
    }
}
