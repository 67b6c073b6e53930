//! RBF kernel matrices computed up front, for LIBSVM's precomputed-kernel mode (`-t 4`).
//!
//! LIBSVM's own kernel evaluation walks two sparse rows per value, a branchy loop that costs
//! ~0.5 us per value on MNIST and dominates training. Here the dot products of a whole binary
//! problem come from one matrix product (the workspace's f32 GEMM, in blocks of rows), and
//! `K(a, b) = exp(-gamma (|a|^2 + |b|^2 - 2 a.b))` is laid out as LIBSVM's precomputed format
//! wants it: row `a` is `0:serial(a)`, then `b:K(a, b)` for every `b`, then the terminator.
//! The solver then only reads values.

use std::os::raw::c_int;

use libsvm_sys::svm_node;
use tensor::{MatMut, MatRef};

use crate::error::{Error, Result};
use crate::features::{Features, END};

/// Rows per GEMM block: the f32 scratch is `BLOCK x rows`.
const BLOCK: usize = 256;

/// Largest binary problem handled this way: its matrix takes 16 bytes x rows^2 (4 GB here).
pub(crate) const MAX_ROWS: usize = 16_384;

/// Largest dense copy of a binary problem's rows, in f32 values (1 GB).
const MAX_DENSE: usize = 1 << 28;

/// The RBF kernel matrix of rows `rows` of `features` in LIBSVM's precomputed layout, written
/// into `nodes` (cleared first; reusing one buffer across problems saves the page faults of a
/// fresh 2 GB allocation each time): for each row `a`, `l + 2` nodes `{0, a + 1}`,
/// `{b + 1, K(a, b)}` for `b` in `0..l`, `{-1, 0}`.
pub(crate) fn rbf_matrix(
    features: &Features,
    rows: &[usize],
    gamma: f64,
    nodes: &mut Vec<svm_node>,
) -> Result<()> {
    nodes.clear();
    let l = rows.len();
    if l > MAX_ROWS {
        return Err(Error::InvalidProblem(format!(
            "a binary problem of {l} rows is too large for precomputed kernels (at most \
             {MAX_ROWS}: 16 bytes x rows^2); use KernelEvaluation::Libsvm"
        )));
    }
    let d = rows
        .iter()
        .filter_map(|&r| features.row(r).last().map(|(i, _)| i as usize))
        .max()
        .unwrap_or(0)
        .max(1);
    if l.saturating_mul(d) > MAX_DENSE {
        return Err(Error::InvalidProblem(format!(
            "{l} rows of {d} features are too many for precomputed kernels (a dense copy is \
             made); use KernelEvaluation::Libsvm"
        )));
    }
    // Dense f32 copy of the rows, and their squared norms summed in f64 over the sparse values.
    let mut x = vec![0f32; l * d];
    let mut square = vec![0f64; l];
    for (a, &r) in rows.iter().enumerate() {
        let mut s = 0.0;
        for (i, v) in features.row(r) {
            x[a * d + i as usize - 1] = v as f32;
            s += v * v;
        }
        square[a] = s;
    }
    nodes.reserve_exact(l * (l + 2));
    let mut dots = vec![0f32; BLOCK.min(l) * l];
    for a0 in (0..l).step_by(BLOCK) {
        let a1 = (a0 + BLOCK).min(l);
        let m = a1 - a0;
        // dots[a - a0][b] = x_a . x_b for a in a0..a1, every b.
        let block = MatRef::new(&x[a0 * d..a1 * d], m, d);
        let all = MatRef::new(&x, l, d).t();
        tensor::gemm(
            1.0f32,
            block,
            all,
            0.0,
            MatMut::new(&mut dots[..m * l], m, l),
        );
        for a in a0..a1 {
            nodes.push(svm_node {
                index: 0,
                value: (a + 1) as f64,
            });
            let row = &dots[(a - a0) * l..(a - a0 + 1) * l];
            for (b, &dot) in row.iter().enumerate() {
                let distance = if a == b {
                    0.0
                } else {
                    (square[a] + square[b] - 2.0 * f64::from(dot)).max(0.0)
                };
                nodes.push(svm_node {
                    index: (b + 1) as c_int,
                    value: (-gamma * distance).exp(),
                });
            }
            nodes.push(svm_node {
                index: END,
                value: 0.0,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINATOR_FOR_TEST: svm_node = svm_node {
        index: END,
        value: 0.0,
    };

    #[test]
    fn matrix_has_libsvms_precomputed_layout_and_rbf_values() {
        let mut f = Features::new();
        f.push_dense([1.0, 0.0, 0.5]).unwrap();
        f.push_dense([0.0, 0.0, 0.0]).unwrap();
        f.push_dense([0.25, 2.0, 0.0]).unwrap();
        let rows = [2, 0, 1];
        let gamma = 0.3;
        let mut m = vec![TERMINATOR_FOR_TEST; 99];
        rbf_matrix(&f, &rows, gamma, &mut m).unwrap();
        assert_eq!(m.len(), 3 * 5);
        let dense: [[f64; 3]; 3] = [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.25, 2.0, 0.0]];
        for (a, &ra) in rows.iter().enumerate() {
            let row = &m[a * 5..(a + 1) * 5];
            assert_eq!((row[0].index, row[0].value), (0, (a + 1) as f64));
            assert_eq!(row[4].index, END);
            for (b, &rb) in rows.iter().enumerate() {
                let d2: f64 = (0..3).map(|k| (dense[ra][k] - dense[rb][k]).powi(2)).sum();
                let expected = (-gamma * d2).exp();
                assert_eq!(row[b + 1].index, (b + 1) as c_int);
                assert!((row[b + 1].value - expected).abs() < 1e-7, "{a} {b}");
            }
            assert_eq!(row[a + 1].value, 1.0);
        }
    }

    #[test]
    fn oversized_problems_are_refused() {
        let mut f = Features::new();
        f.push_sparse([(1 << 30, 1.0)]).unwrap();
        let mut m = Vec::new();
        let e = rbf_matrix(&f, &[0; 300], 1.0, &mut m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too many for precomputed"), "{e}");
        let e = rbf_matrix(&f, &vec![0; MAX_ROWS + 1], 1.0, &mut m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large for precomputed"), "{e}");
    }
}
