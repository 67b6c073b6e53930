//! Broadcasting elementwise arithmetic (NumPy rules) and its adjoint, summing a gradient back
//! to an operand's shape.

use crate::{Float, Result, Shape, Tensor, TensorError, MAX_DIMS};

/// The four arithmetic operations of the broadcasting kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
}

impl BinaryOp {
    #[inline(always)]
    fn apply<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

/// The shape two operands broadcast to, NumPy style (trailing dimensions aligned, 1 stretches).
pub fn broadcast_shapes(a: Shape, b: Shape) -> Result<Shape> {
    let n = a.ndim().max(b.ndim());
    let mut dims = [0usize; MAX_DIMS];
    for i in 0..n {
        let da = if i + a.ndim() >= n {
            a[i + a.ndim() - n]
        } else {
            1
        };
        let db = if i + b.ndim() >= n {
            b[i + b.ndim() - n]
        } else {
            1
        };
        dims[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(TensorError::ShapeMismatch {
                op: "broadcast",
                lhs: a,
                rhs: b,
                why: format!("dimension {da} vs {db} (neither is 1)"),
            });
        };
    }
    Shape::new(&dims[..n])
}

/// Strides of `s` seen inside the broadcast shape `out` (0 along stretched dimensions).
fn broadcast_strides(s: Shape, out: Shape) -> [usize; MAX_DIMS] {
    let n = out.ndim();
    let own = s.strides();
    let mut st = [0usize; MAX_DIMS];
    for (i, st) in st.iter_mut().enumerate().take(n) {
        if i + s.ndim() >= n {
            let j = i + s.ndim() - n;
            *st = if s[j] == 1 { 0 } else { own[j] };
        }
    }
    st
}

/// Calls `f(offset_a, offset_b, offset_out, len, step_a, step_b)` for each innermost run.
fn for_each_run(
    out: Shape,
    sa: &[usize; MAX_DIMS],
    sb: &[usize; MAX_DIMS],
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    let n = out.ndim();
    if n == 0 {
        f(0, 0, 0, 1, 0, 0);
        return;
    }
    let last = out[n - 1];
    let outer = out.numel() / last.max(1);
    let mut idx = [0usize; MAX_DIMS];
    let (mut oa, mut ob) = (0usize, 0usize);
    for r in 0..outer {
        f(oa, ob, r * last, last, sa[n - 1], sb[n - 1]);
        // odometer increment over dims 0..n-1
        let mut d = n - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out[d] {
                break;
            }
            oa -= sa[d] * idx[d];
            ob -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// `out = a op b` with broadcasting; `out` must already have the broadcast shape.
pub fn binary_into<T: Float>(
    op: BinaryOp,
    a: &Tensor<T>,
    b: &Tensor<T>,
    out: &mut Tensor<T>,
) -> Result<()> {
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    expect_shape(
        "binary_into",
        out.shape(),
        shape,
        "output buffer has the wrong shape",
    )?;
    let (x, y) = (a.data(), b.data());
    let o = out.data_mut();
    if x.len() == o.len() && y.len() == o.len() {
        for ((o, &p), &q) in o.iter_mut().zip(x).zip(y) {
            *o = op.apply(p, q);
        }
        return Ok(());
    }
    if y.len() == 1 {
        let q = y[0];
        for (o, &p) in o.iter_mut().zip(x) {
            *o = op.apply(p, q);
        }
        return Ok(());
    }
    if x.len() == 1 {
        let p = x[0];
        for (o, &q) in o.iter_mut().zip(y) {
            *o = op.apply(p, q);
        }
        return Ok(());
    }
    let sa = broadcast_strides(a.shape(), shape);
    let sb = broadcast_strides(b.shape(), shape);
    for_each_run(shape, &sa, &sb, |ia, ib, io, len, ta, tb| {
        let o = &mut o[io..io + len];
        match (ta, tb) {
            (1, 1) => {
                for ((o, &p), &q) in o.iter_mut().zip(&x[ia..ia + len]).zip(&y[ib..ib + len]) {
                    *o = op.apply(p, q);
                }
            }
            (1, 0) => {
                let q = y[ib];
                for (o, &p) in o.iter_mut().zip(&x[ia..ia + len]) {
                    *o = op.apply(p, q);
                }
            }
            (0, 1) => {
                let p = x[ia];
                for (o, &q) in o.iter_mut().zip(&y[ib..ib + len]) {
                    *o = op.apply(p, q);
                }
            }
            _ => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = op.apply(x[ia + k * ta], y[ib + k * tb]);
                }
            }
        }
    });
    Ok(())
}

/// `a op b` with broadcasting, into a new tensor.
///
/// Shapes broadcast as in NumPy: aligned from the last dimension, a dimension of 1 (or a
/// missing one) stretches to the other operand's.
///
/// ```
/// use nndl_tensor::{binary, BinaryOp, Tensor};
///
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// let row = Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3])?; // added to each row
/// let col = Tensor::from_vec(vec![1.0, -1.0], &[2, 1])?; // scales each row
///
/// assert_eq!(binary(BinaryOp::Add, &a, &row)?.data(), &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// assert_eq!(binary(BinaryOp::Mul, &a, &col)?.data(), &[1.0, 2.0, 3.0, -4.0, -5.0, -6.0]);
/// // [2, 1] against [3] broadcasts both ways, to [2, 3].
/// assert_eq!(binary(BinaryOp::Sub, &col, &row)?.dims(), &[2, 3]);
/// // Trailing dimensions 3 and 2 do not broadcast.
/// assert!(binary(BinaryOp::Div, &a, &Tensor::zeros(&[2])?).is_err());
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
pub fn binary<T: Float>(op: BinaryOp, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    let mut out = Tensor::zeros_shape(shape);
    binary_into(op, a, b, &mut out)?;
    Ok(out)
}

/// `Ok` when `got` is `want`; else the mismatch `op` reports, saying `why`.
fn expect_shape(op: &'static str, got: Shape, want: Shape, why: &str) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(TensorError::ShapeMismatch {
        op,
        lhs: got,
        rhs: want,
        why: why.into(),
    })
}

/// Adds `scale * g` (of a broadcast shape) into `acc`, summing over the dimensions along which
/// `acc`'s shape was stretched: the adjoint of broadcasting. With `mul`, each term is first
/// multiplied by the matching element of `mul` (which has `g`'s shape), which the product and
/// quotient rules need.
pub fn reduce_to_shape<T: Float>(
    g: &Tensor<T>,
    mul: Option<&Tensor<T>>,
    acc: &mut Tensor<T>,
) -> Result<()> {
    let out = g.shape();
    if broadcast_shapes(acc.shape(), out)? != out {
        return Err(TensorError::ShapeMismatch {
            op: "reduce_to_shape",
            lhs: acc.shape(),
            rhs: out,
            why: "target does not broadcast to the gradient's shape".into(),
        });
    }
    if let Some(m) = mul {
        let why = "multiplier must have the gradient's shape";
        expect_shape("reduce_to_shape", m.shape(), out, why)?;
    }
    let gd = g.data();
    let md = mul.map(|m| m.data());
    let acc_shape = acc.shape();
    let ad = acc.data_mut();
    if ad.len() == gd.len() {
        match md {
            Some(m) => ad
                .iter_mut()
                .zip(gd)
                .zip(m)
                .for_each(|((a, &g), &m)| *a += g * m),
            None => ad.iter_mut().zip(gd).for_each(|(a, &g)| *a += g),
        }
        return Ok(());
    }
    if ad.len() == 1 {
        let s: T = match md {
            Some(m) => gd.iter().zip(m).map(|(&g, &m)| g * m).sum(),
            None => gd.iter().copied().sum(),
        };
        ad[0] += s;
        return Ok(());
    }
    let sa = broadcast_strides(acc_shape, out);
    let sg = out.strides();
    for_each_run(out, &sa, &sg, |ia, ig, _io, len, ta, _tg| {
        let g = &gd[ig..ig + len];
        match (ta, md) {
            (1, None) => ad[ia..ia + len]
                .iter_mut()
                .zip(g)
                .for_each(|(a, &g)| *a += g),
            (1, Some(m)) => ad[ia..ia + len]
                .iter_mut()
                .zip(g)
                .zip(&m[ig..ig + len])
                .for_each(|((a, &g), &m)| *a += g * m),
            (0, None) => ad[ia] += g.iter().copied().sum::<T>(),
            (0, Some(m)) => {
                ad[ia] += g
                    .iter()
                    .zip(&m[ig..ig + len])
                    .map(|(&g, &m)| g * m)
                    .sum::<T>()
            }
            (t, _) => {
                for (k, &gv) in g.iter().enumerate() {
                    let mv = md.map_or(T::one(), |m| m[ig + k]);
                    ad[ia + k * t] += gv * mv;
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(d: &[f64], s: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(d.to_vec(), s).unwrap()
    }

    #[test]
    fn shapes_broadcast_numpy_style() {
        let s = |d: &[usize]| Shape::new(d).unwrap();
        assert_eq!(broadcast_shapes(s(&[2, 3]), s(&[3])).unwrap(), s(&[2, 3]));
        assert_eq!(
            broadcast_shapes(s(&[2, 1]), s(&[1, 4])).unwrap(),
            s(&[2, 4])
        );
        assert_eq!(broadcast_shapes(s(&[]), s(&[5, 2])).unwrap(), s(&[5, 2]));
        assert!(broadcast_shapes(s(&[2, 3]), s(&[2])).is_err());
    }

    #[test]
    fn row_column_and_general_broadcast_values() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let row = t(&[10., 20., 30.], &[3]);
        let col = t(&[100., 200.], &[2, 1]);
        assert_eq!(
            binary(BinaryOp::Add, &a, &row).unwrap().data(),
            &[11., 22., 33., 14., 25., 36.]
        );
        assert_eq!(
            binary(BinaryOp::Sub, &a, &col).unwrap().data(),
            &[-99., -98., -97., -196., -195., -194.]
        );
        assert_eq!(
            binary(BinaryOp::Mul, &col, &row).unwrap().data(),
            &[1000., 2000., 3000., 2000., 4000., 6000.]
        );
        // a [2,1,3] with b [2,1]: out [2,2,3]
        let a3 = t(&[1., 2., 3., 4., 5., 6.], &[2, 1, 3]);
        let b = t(&[1., 2.], &[2, 1]);
        let o = binary(BinaryOp::Div, &a3, &b).unwrap();
        assert_eq!(o.dims(), &[2, 2, 3]);
        assert_eq!(
            o.data(),
            &[1., 2., 3., 0.5, 1., 1.5, 4., 5., 6., 2., 2.5, 3.]
        );
    }

    #[test]
    fn reduce_sums_over_stretched_axes() {
        let g = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let mut row = Tensor::zeros(&[3]).unwrap();
        reduce_to_shape(&g, None, &mut row).unwrap();
        assert_eq!(row.data(), &[5., 7., 9.]);
        let mut col = Tensor::zeros(&[2, 1]).unwrap();
        reduce_to_shape(&g, Some(&g), &mut col).unwrap();
        assert_eq!(col.data(), &[14., 77.]);
        let mut s = Tensor::zeros(&[]).unwrap();
        reduce_to_shape(&g, None, &mut s).unwrap();
        assert_eq!(s.data(), &[21.]);
        let mut mid = Tensor::zeros(&[2, 1, 3]).unwrap();
        let g3 = t(
            &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
            &[2, 2, 3],
        );
        reduce_to_shape(&g3, None, &mut mid).unwrap();
        assert_eq!(mid.data(), &[5., 7., 9., 17., 19., 21.]);
    }
}
