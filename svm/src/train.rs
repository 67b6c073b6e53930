//! Training: LIBSVM's one-vs-one C-SVC, with its binary problems solved in parallel.
//!
//! LIBSVM's `svm_train` solves the k(k-1)/2 binary problems of a k-class problem one after the
//! other on one thread (45 for the ten digits). They are independent, so [`train`] hands each one
//! to LIBSVM's `svm_train` as a two-class problem on rayon's thread pool, exactly as `svm_train`
//! builds it (same rows, same order, labels +1/-1), and assembles the multi-class model the way
//! `svm_train` does. The result is the model `svm_train` itself gives ([`train_sequential`]);
//! a test checks they are identical.
//!
//! With [`KernelEvaluation::Precomputed`] each binary problem's kernel matrix is computed first
//! (`precomputed.rs`) and LIBSVM's solver runs on it as a precomputed kernel; the model is then
//! assembled from the original sparse rows, an ordinary RBF model.

use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use libsvm_sys::{
    svm_check_parameter, svm_free_and_destroy_model, svm_model, svm_node, svm_parameter,
    svm_problem, svm_set_print_string_function, svm_train,
};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::features::{group_classes, Features, Problem, END};
use crate::model::{Kernel, Model, Parts, SvmType, MAX_CLASSES};
use crate::params::KernelEvaluation;
use crate::{precomputed, Params};

/// LIBSVM's print hook: everything LIBSVM would print goes nowhere.
extern "C" fn print_nothing(_: *const c_char) {}

/// Point LIBSVM's output at [`print_nothing`] (once per process, before any LIBSVM call).
pub(crate) fn silence_libsvm() {
    static ONCE: Once = Once::new();
    // SAFETY: sets LIBSVM's global print hook to a function that ignores its argument; done
    // once, before any training can read the hook.
    ONCE.call_once(|| unsafe { svm_set_print_string_function(Some(print_nothing)) });
}

/// Train a C-SVC with the RBF kernel on `problem`, the binary one-vs-one problems solved in
/// parallel on rayon's current thread pool.
///
/// With [`KernelEvaluation::Libsvm`] the result equals what LIBSVM's `svm_train` gives
/// ([`train_sequential`]); with [`KernelEvaluation::Precomputed`] it agrees to rounding.
/// Memory: up to `params.cache_mb` of kernel cache per thread, plus the kernel matrix of each
/// binary problem being solved when precomputed.
pub fn train(problem: &Problem, params: &Params) -> Result<Model> {
    train_with_progress(problem, params, |_, _| {})
}

/// [`train`], calling `progress(done, total)` each time one of the `total` binary problems
/// has been solved (from the worker threads; `done` only grows).
pub fn train_with_progress<F>(problem: &Problem, params: &Params, progress: F) -> Result<Model>
where
    F: Fn(usize, usize) + Sync,
{
    check(problem, params)?;
    let (classes, members) = group_classes(problem.labels());
    let k = classes.len();
    if k > MAX_CLASSES {
        return Err(Error::InvalidProblem(format!(
            "{k} classes (at most {MAX_CLASSES} supported)"
        )));
    }
    let pairs: Vec<(usize, usize)> = (0..k)
        .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
        .collect();
    let total = pairs.len();
    let done = AtomicUsize::new(0);
    let features = problem.features();
    // Largest problems first, each worker taking the next unsolved one when it is free (greedy
    // longest-first scheduling), so no thread is left with a big problem at the end.
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&p| {
        let (i, j) = pairs[p];
        std::cmp::Reverse(members[i].len() + members[j].len())
    });
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Binary>>>> = (0..total).map(|_| Mutex::new(None)).collect();
    let workers = rayon::current_num_threads().clamp(1, total.max(1));
    (0..workers).into_par_iter().for_each(|_| {
        // This worker's kernel matrix buffer, reused from one binary problem to the next (the
        // largest comes first, so it is allocated once).
        let mut matrix: Vec<svm_node> = Vec::new();
        while let Some(&p) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            // Solve pair (i, j): rows of class i labelled +1, then rows of class j labelled -1.
            let (i, j) = pairs[p];
            let rows: Vec<usize> = members[i].iter().chain(&members[j]).copied().collect();
            let y: Vec<f64> = std::iter::repeat_n(1.0, members[i].len())
                .chain(std::iter::repeat_n(-1.0, members[j].len()))
                .collect();
            let what = || format!("classes {} and {}", classes[i], classes[j]);
            let result = match params.kernels {
                KernelEvaluation::Libsvm => {
                    let raw = RawProblem::new(features, rows.into_iter(), y.into_iter());
                    solve_binary(raw, &params.to_raw(), what)
                }
                KernelEvaluation::Precomputed => {
                    precomputed::rbf_matrix(features, &rows, params.gamma, &mut matrix).and_then(
                        |()| {
                            let raw = RawProblem::from_matrix(&matrix, rows.len() + 2, y);
                            solve_binary(raw, &params.to_raw_precomputed(), what)
                        },
                    )
                }
            };
            let failed = result.is_err();
            *slots[p].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            if failed {
                // Stop handing out work: the error is returned below.
                next.store(total, Ordering::Relaxed);
                return;
            }
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(finished, total);
        }
    });
    let mut solved = Vec::with_capacity(total);
    let mut first_error = None;
    for slot in slots {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(binary)) => solved.push(binary),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {} // not started because another pair failed
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    assert_eq!(solved.len(), total, "every binary problem was solved");
    Ok(assemble(features, &classes, &members, &solved, params))
}

/// Train with LIBSVM's own `svm_train`, its binary problems solved one after the other on the
/// calling thread, kernels evaluated by LIBSVM whatever `params.kernels` says: what
/// scikit-learn's `SVC.fit` runs. Same result as [`train`] with [`KernelEvaluation::Libsvm`].
pub fn train_sequential(problem: &Problem, params: &Params) -> Result<Model> {
    check(problem, params)?;
    let raw_param = params.to_raw();
    let y = problem.labels().iter().map(|&l| f64::from(l));
    let mut raw = RawProblem::new(problem.features(), 0..problem.len(), y);
    let prob = raw.as_raw();
    // SAFETY: `prob` points at `raw`'s arrays and at rows of `problem.features()`, all alive
    // across the call and each row terminated; the parameters passed `svm_check_parameter`.
    // svm_train reads them (it copies the pointer array before permuting it).
    let model = OwnedModel(unsafe { svm_train(&prob, &raw_param) });
    if model.0.is_null() {
        return Err(Error::TrainingFailed {
            what: "whole problem".into(),
        });
    }
    // SAFETY: a model just returned by svm_train is complete and consistent, and its support
    // vectors point into `problem.features()`, still alive.
    let parts = unsafe { copy_trained_model(&*model.0, *params) };
    Model::from_parts(parts).map_err(|detail| Error::TrainingFailed {
        what: format!("whole problem (inconsistent model: {detail})"),
    })
}

/// Validate the parameters ourselves, then ask LIBSVM's `svm_check_parameter`.
fn check(problem: &Problem, params: &Params) -> Result<()> {
    silence_libsvm();
    params.validate()?;
    let raw_param = params.to_raw();
    let y = problem.labels().iter().map(|&l| f64::from(l));
    let mut raw = RawProblem::new(problem.features(), 0..problem.len(), y);
    let prob = raw.as_raw();
    // SAFETY: valid problem and parameter structs alive across the call; the returned pointer
    // is NULL or a static C string.
    let message = unsafe { svm_check_parameter(&prob, &raw_param) };
    if message.is_null() {
        Ok(())
    } else {
        // SAFETY: LIBSVM returns a pointer to a NUL-terminated string literal.
        let text = unsafe { std::ffi::CStr::from_ptr(message) };
        Err(Error::Rejected(text.to_string_lossy().into_owned()))
    }
}

/// LIBSVM's `svm_problem` over rows that live elsewhere (in a `Features`, or in a precomputed
/// kernel matrix): the arrays it points at live here, the rows for `'a`.
struct RawProblem<'a> {
    x: Vec<*mut svm_node>,
    y: Vec<f64>,
    _rows: PhantomData<&'a [svm_node]>,
}

impl<'a> RawProblem<'a> {
    /// Rows `rows` of `features`, labelled `y`.
    fn new(
        features: &'a Features,
        rows: impl Iterator<Item = usize>,
        y: impl Iterator<Item = f64>,
    ) -> Self {
        // LIBSVM declares the nodes mutable but never writes them.
        let x = rows
            .map(|r| features.row_nodes(r).as_ptr().cast_mut())
            .collect();
        RawProblem {
            x,
            y: y.collect(),
            _rows: PhantomData,
        }
    }

    /// Consecutive rows of `width` nodes each in `nodes` (a precomputed kernel matrix).
    fn from_matrix(nodes: &'a [svm_node], width: usize, y: Vec<f64>) -> Self {
        let x = nodes
            .chunks_exact(width)
            .map(|row| row.as_ptr().cast_mut())
            .collect();
        RawProblem {
            x,
            y,
            _rows: PhantomData,
        }
    }

    fn as_raw(&mut self) -> svm_problem {
        debug_assert_eq!(self.x.len(), self.y.len());
        svm_problem {
            l: c_int::try_from(self.x.len()).expect("Problem::new bounds the row count"),
            y: self.y.as_mut_ptr(),
            x: self.x.as_mut_ptr(),
        }
    }
}

/// A model allocated by LIBSVM, freed on drop. Its support vectors are never freed by LIBSVM
/// (`free_sv` is 0 for trained models): they belong to our `Features`.
struct OwnedModel(*mut svm_model);

impl Drop for OwnedModel {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a non-null model from svm_train, freed exactly once.
            unsafe { svm_free_and_destroy_model(&mut self.0) };
        }
    }
}

/// One solved binary problem: the signed dual coefficient of each of its rows, and rho.
struct Binary {
    alpha: Vec<f64>,
    rho: f64,
}

/// Solve one two-class problem with `svm_train` and read back its dual coefficients.
fn solve_binary(
    mut raw: RawProblem<'_>,
    param: &svm_parameter,
    what: impl Fn() -> String,
) -> Result<Binary> {
    // LIBSVM's coefficients are alpha * y, so a row that is not a support vector of this pair
    // has the coefficient 0 * y: -0.0 on the -1 side. Start from the same values, so the model
    // is identical to svm_train's to the bit (the sign of zero shows in model files).
    let mut alpha: Vec<f64> = raw.y.iter().map(|&y| 0.0 * y).collect();
    let n = raw.x.len();
    let prob = raw.as_raw();
    // SAFETY: as in `train_sequential`; LIBSVM's training touches no global state but the print
    // hook, which is set once before, so concurrent calls on distinct problems are sound.
    let model = OwnedModel(unsafe { svm_train(&prob, param) });
    if model.0.is_null() {
        return Err(Error::TrainingFailed { what: what() });
    }
    // SAFETY: non-null model just returned by svm_train.
    let m = unsafe { &*model.0 };
    // Both classes are present, and as the +1 rows come first LIBSVM keeps +1 as label 0, so
    // sv_coef[0] holds alpha_i * y_i for the support vectors in row order.
    let sane = m.nr_class == 2 && m.l >= 0 && !m.label.is_null() && {
        // SAFETY: label has nr_class = 2 entries.
        unsafe { *m.label == 1 }
    };
    if !sane {
        return Err(Error::TrainingFailed {
            what: format!("{} (unexpected binary model layout)", what()),
        });
    }
    let l = m.l as usize;
    // SAFETY: for a trained two-class model, sv_coef has 1 row of l values, sv_indices l
    // values (1-based rows of the problem) and rho 1 value.
    let (coef, indices, rho) = unsafe {
        (
            std::slice::from_raw_parts(*m.sv_coef, l),
            std::slice::from_raw_parts(m.sv_indices, l),
            *m.rho,
        )
    };
    for (&c, &idx) in coef.iter().zip(indices) {
        let row = usize::try_from(idx - 1).ok().filter(|&r| r < n);
        let Some(row) = row else {
            return Err(Error::TrainingFailed {
                what: format!("{} (support index {idx} out of range)", what()),
            });
        };
        alpha[row] = c;
    }
    Ok(Binary { alpha, rho })
}

/// Build the multi-class model from the solved pairs as LIBSVM's `svm_train` does: a row is a
/// support vector if any pair gives it a non-zero coefficient; support vectors are grouped by
/// class; the coefficients of class i's vectors in classifier (i, j) go to row j-1, those of
/// class j's vectors to row i.
fn assemble(
    features: &Features,
    classes: &[i32],
    members: &[Vec<usize>],
    solved: &[Binary],
    params: &Params,
) -> Model {
    let k = classes.len();
    // nonzero[c][t]: is member t of class c a support vector?
    let mut nonzero: Vec<Vec<bool>> = members.iter().map(|m| vec![false; m.len()]).collect();
    let mut p = 0;
    for i in 0..k {
        for j in i + 1..k {
            let ci = members[i].len();
            for (t, a) in solved[p].alpha.iter().enumerate() {
                if a.abs() > 0.0 {
                    if t < ci {
                        nonzero[i][t] = true;
                    } else {
                        nonzero[j][t - ci] = true;
                    }
                }
            }
            p += 1;
        }
    }
    let n_sv: Vec<usize> = nonzero
        .iter()
        .map(|nz| nz.iter().filter(|&&b| b).count())
        .collect();
    let l: usize = n_sv.iter().sum();
    let mut nz_start = vec![0; k];
    for c in 1..k {
        nz_start[c] = nz_start[c - 1] + n_sv[c - 1];
    }
    let mut support = Vec::with_capacity(l);
    let mut nodes = Vec::new();
    for (c, m) in members.iter().enumerate() {
        for (t, &row) in m.iter().enumerate() {
            if nonzero[c][t] {
                support.push(row);
                nodes.extend_from_slice(features.row_nodes(row));
            }
        }
    }
    let mut coef = vec![0.0; (k - 1) * l];
    let mut p = 0;
    for i in 0..k {
        for j in i + 1..k {
            let ci = members[i].len();
            let alpha = &solved[p].alpha;
            let mut q = nz_start[i];
            for t in 0..ci {
                if nonzero[i][t] {
                    coef[(j - 1) * l + q] = alpha[t];
                    q += 1;
                }
            }
            let mut q = nz_start[j];
            for t in 0..members[j].len() {
                if nonzero[j][t] {
                    coef[i * l + q] = alpha[ci + t];
                    q += 1;
                }
            }
            p += 1;
        }
    }
    let parts = Parts {
        svm_type: SvmType::CSvc,
        kernel: Kernel::Rbf {
            gamma: params.gamma,
        },
        params: Some(*params),
        labels: classes.to_vec(),
        n_sv: n_sv.iter().map(|&n| n as i32).collect(),
        rho: solved.iter().map(|b| b.rho).collect(),
        coef,
        nodes,
        support: Some(support),
    };
    Model::from_parts(parts).expect("the assembled model is consistent by construction")
}

/// Copy a model LIBSVM just trained into Rust-owned parts.
///
/// # Safety
/// `m` must be a classification model returned by `svm_train` whose support vectors are alive.
unsafe fn copy_trained_model(m: &svm_model, params: Params) -> Parts {
    let k = m.nr_class as usize;
    let l = m.l as usize;
    let slice = |p: *const c_int, n: usize| -> Vec<i32> {
        if n == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p, n).to_vec()
        }
    };
    let labels = slice(m.label, k);
    let n_sv = slice(m.nSV, k);
    let rho = if k > 1 {
        std::slice::from_raw_parts(m.rho, k * (k - 1) / 2).to_vec()
    } else {
        Vec::new()
    };
    let mut coef = Vec::with_capacity((k.saturating_sub(1)) * l);
    for r in 0..k.saturating_sub(1) {
        if l > 0 {
            coef.extend_from_slice(std::slice::from_raw_parts(*m.sv_coef.add(r), l));
        }
    }
    let mut nodes = Vec::new();
    for i in 0..l {
        let mut p: *const svm_node = *m.SV.add(i);
        loop {
            let n = *p;
            nodes.push(n);
            if n.index == END {
                break;
            }
            p = p.add(1);
        }
    }
    let support = (l > 0 && !m.sv_indices.is_null()).then(|| {
        std::slice::from_raw_parts(m.sv_indices, l)
            .iter()
            .map(|&i| i as usize - 1)
            .collect()
    });
    Parts {
        svm_type: SvmType::CSvc,
        kernel: Kernel::Rbf {
            gamma: params.gamma,
        },
        params: Some(params),
        labels,
        n_sv,
        rho,
        coef,
        nodes,
        support: Some(support.unwrap_or_default()),
    }
}
