//! The one GEMM entry point. Every matrix product in nndl goes through [`gemm`], and every
//! backend call through [`backend`], so the backend is a one-line choice. It is the `gemm`
//! crate (AVX-512 kernels): `cargo bench --bench kernels` measured it 1.1-2.5x faster than
//! `matrixmultiply` 0.3.11 (AVX-512 enabled) at every shape of the book's nets, single-threaded.
//! `matrixmultiply` stays as the cross-check the tests compare against ([`gemm_reference`]).

mod backend;
mod reference;

pub use reference::gemm_reference;

use crate::{Float, MatMut, MatRef, Result, Shape, Tensor, TensorError};
use backend::{backend, Product, Strided};

/// `C = alpha * A . B + beta * C`, where `A` is `m x k`, `B` `k x n` and `C` `m x n`;
/// transposed views ([`MatRef::t`]) are read by strides, never copied. With `beta == 0`, `c`'s
/// old contents are ignored (NaNs included).
///
/// # Panics
/// If the inner dimensions differ or `c` is not `m x n`.
pub fn gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, mut c: MatMut<'_, T>) {
    let (m, k, n) = dims("gemm", &a, &b, &c);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for v in &mut c.data()[..m * n] {
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
    if !T::small_gemm(alpha, a, b, beta, &mut c) {
        gemm_packed(alpha, a, b, beta, c.rb());
    }
    #[cfg(feature = "fault-injection")]
    crate::fault::apply_gemm(&mut c.data()[..m * n]);
}

/// `(m, k, n)` of `C[m,n] = A[m,k] . B[k,n]`; panics, naming `op`, unless the three views
/// agree.
pub(crate) fn dims<T>(
    op: &str,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
) -> (usize, usize, usize) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert!(
        b.rows() == k && c.rows() == m && c.cols() == n,
        "{op}: {m}x{k} . {}x{n} into {}x{}",
        b.rows(),
        c.rows(),
        c.cols()
    );
    (m, k, n)
}

/// A view's row and column strides in its buffer.
fn strides<T>(v: &MatRef<'_, T>) -> (isize, isize) {
    if v.is_transposed() {
        (1, v.rows() as isize)
    } else {
        (v.cols() as isize, 1)
    }
}

/// [`gemm`] always through the packing backend (the `gemm` crate), whatever the shape: for
/// benchmarks that compare it with the small-side kernels.
pub fn gemm_packed<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) {
    let (m, k, n) = dims("gemm", &a, &b, &c);
    if m == 0 || n == 0 || k == 0 {
        return gemm(alpha, a, b, beta, c);
    }
    let ((rsa, csa), (rsb, csb)) = (strides(&a), strides(&b));
    let c_ptr = c.data().as_mut_ptr();
    // SAFETY: the views were checked to hold their matrices when made, and `dims` checked they
    // agree; `c` is a distinct `&mut` so it cannot alias `a` or `b`.
    unsafe {
        backend(Product {
            dims: (m, k, n),
            alpha,
            a: Strided::new(a.data().as_ptr(), rsa, csa),
            b: Strided::new(b.data().as_ptr(), rsb, csb),
            beta,
            c: Strided::new(c_ptr.cast_const(), n as isize, 1),
        })
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
    let (m, _, n) = matmul_dims(a, ta, b, tb)?;
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
        T::one(),
        view(a, ta),
        view(b, tb),
        beta,
        MatMut::new(out.data_mut(), m, n),
    );
    Ok(())
}

/// A 2-D tensor as a matrix view, transposed when `t`.
fn view<T: Float>(x: &Tensor<T>, t: bool) -> MatRef<'_, T> {
    if t {
        x.mat().t()
    } else {
        x.mat()
    }
}

/// `op(a) * op(b)` for 2-D tensors, into a new tensor; `ta` / `tb` transpose an operand
/// (read by strides, not copied).
///
/// ```
/// use nndl_tensor::{matmul, Tensor};
///
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// let b = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2])?;
/// // [[1 2 3], [4 5 6]] . [[1 0], [0 1], [1 1]] = [[4 5], [10 11]]
/// assert_eq!(matmul(&a, false, &b, false)?.data(), &[4.0, 5.0, 10.0, 11.0]);
///
/// // a . a^T without forming the transpose: the Gram matrix of a's rows.
/// let gram = matmul(&a, false, &a, true)?;
/// assert_eq!(gram.dims(), &[2, 2]);
/// assert_eq!(gram.data(), &[14.0, 32.0, 32.0, 77.0]);
///
/// assert!(matmul(&a, false, &a, false).is_err()); // inner dimensions 3 and 2
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
pub fn matmul<T: Float>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Result<Tensor<T>> {
    let (m, _, n) = matmul_dims(a, ta, b, tb)?;
    let mut out = Tensor::zeros(&[m, n])?;
    matmul_into(a, ta, b, tb, &mut out, false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `rows x cols` operand `op(X)` over `d`, which holds X transposed when `t`.
    pub(crate) fn op<T>(d: &[T], rows: usize, cols: usize, t: bool) -> MatRef<'_, T> {
        if t {
            MatRef::new(d, cols, rows).t()
        } else {
            MatRef::new(d, rows, cols)
        }
    }

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
                let (av, bv) = (op(&a, m, k, ta), op(&b, k, n, tb));
                let mut c = vec![f64::NAN; m * n];
                gemm(1.0, av, bv, 0.0, MatMut::new(&mut c, m, n));
                assert_eq!(c, naive(m, k, n, &a, ta, &b, tb), "ta={ta} tb={tb}");
                let mut c2 = c.clone();
                gemm(2.0, av, bv, 1.0, MatMut::new(&mut c2, m, n));
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
                let (av, bv) = (op(&a, m, k, ta), op(&b, k, n, tb));
                gemm(0.7, av, bv, 0.3, MatMut::new(&mut c1, m, n));
                gemm_reference(0.7, av, bv, 0.3, MatMut::new(&mut c2, m, n));
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
