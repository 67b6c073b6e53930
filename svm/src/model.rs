//! A trained multi-class model in LIBSVM's layout, owned by Rust, predicting through LIBSVM.
//!
//! Whatever made the model (the parallel trainer, LIBSVM's own `svm_train`, or a model file), its
//! arrays are copied into Rust vectors and checked for consistency once; LIBSVM's `svm_model`
//! struct then only points into them. `svm_predict` reads the model and the sample and writes
//! nothing shared (its scratch arrays are allocated per call; see `svm.cpp`,
//! `svm_predict_values`), so one model serves every thread at once.

use std::os::raw::c_int;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use libsvm_sys::{svm_model, svm_node, svm_parameter, svm_predict, LINEAR, POLY, RBF, SIGMOID};
use mnist::Scale;
use rayon::prelude::*;

use crate::error::Result;
use crate::features::{Features, END};
use crate::Params;

/// The kernel a model was trained with (models read from files may use any but `precomputed`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `x . y`
    Linear,
    /// `(gamma x . y + coef0)^degree`
    Polynomial {
        /// The exponent.
        degree: i32,
        /// Scale of the dot product.
        gamma: f64,
        /// Offset.
        coef0: f64,
    },
    /// `exp(-gamma |x - y|^2)`
    Rbf {
        /// Width parameter.
        gamma: f64,
    },
    /// `tanh(gamma x . y + coef0)`
    Sigmoid {
        /// Scale of the dot product.
        gamma: f64,
        /// Offset.
        coef0: f64,
    },
}

impl Kernel {
    /// LIBSVM's name of the kernel in model files.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Linear => "linear",
            Kernel::Polynomial { .. } => "polynomial",
            Kernel::Rbf { .. } => "rbf",
            Kernel::Sigmoid { .. } => "sigmoid",
        }
    }

    /// The kernel's gamma, if it has one.
    pub fn gamma(&self) -> Option<f64> {
        match *self {
            Kernel::Linear => None,
            Kernel::Polynomial { gamma, .. }
            | Kernel::Rbf { gamma }
            | Kernel::Sigmoid { gamma, .. } => Some(gamma),
        }
    }

    /// (kernel_type, degree, gamma, coef0) as LIBSVM's parameter struct holds them.
    fn raw(&self) -> (c_int, c_int, f64, f64) {
        match *self {
            Kernel::Linear => (LINEAR as c_int, 0, 0.0, 0.0),
            Kernel::Polynomial {
                degree,
                gamma,
                coef0,
            } => (POLY as c_int, degree, gamma, coef0),
            Kernel::Rbf { gamma } => (RBF as c_int, 0, gamma, 0.0),
            Kernel::Sigmoid { gamma, coef0 } => (SIGMOID as c_int, 0, gamma, coef0),
        }
    }
}

/// Which multi-class SVM formulation produced the model (both predict the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmType {
    /// C-support vector classification (what this crate trains).
    CSvc,
    /// nu-support vector classification (readable from files).
    NuSvc,
}

impl SvmType {
    /// LIBSVM's name in model files.
    pub fn name(self) -> &'static str {
        match self {
            SvmType::CSvc => "c_svc",
            SvmType::NuSvc => "nu_svc",
        }
    }

    fn raw(self) -> c_int {
        match self {
            SvmType::CSvc => libsvm_sys::C_SVC as c_int,
            SvmType::NuSvc => libsvm_sys::NU_SVC as c_int,
        }
    }
}

/// A model's contents before they are checked and wired into LIBSVM's struct.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    pub svm_type: SvmType,
    pub kernel: Kernel,
    /// Training parameters, when known (a model file does not store C).
    pub params: Option<Params>,
    /// Class labels in LIBSVM's order.
    pub labels: Vec<i32>,
    /// Support vectors per class (same order); they sum to the number of support vectors.
    pub n_sv: Vec<i32>,
    /// One offset per pair of classes, in LIBSVM's pair order (0,1), (0,2), ..., (1,2), ...
    pub rho: Vec<f64>,
    /// `nr_class - 1` rows of one coefficient per support vector, row after row.
    pub coef: Vec<f64>,
    /// The support vectors' nodes, each ended by an index of -1, in class order.
    pub nodes: Vec<svm_node>,
    /// Each support vector's row in the training problem (0-based), when known.
    pub support: Option<Vec<usize>>,
}

/// A trained multi-class (one-vs-one) SVM classifier.
pub struct Model {
    /// LIBSVM's view of the model: every pointer points into the vectors below, which are never
    /// modified or reallocated after construction (moving a `Vec` does not move its buffer).
    raw: svm_model,
    nodes: Vec<svm_node>,
    _sv_ptrs: Vec<*mut svm_node>,
    coef: Vec<f64>,
    _coef_ptrs: Vec<*mut f64>,
    rho: Vec<f64>,
    labels: Vec<c_int>,
    n_sv: Vec<c_int>,
    svm_type: SvmType,
    kernel: Kernel,
    params: Option<Params>,
    support: Option<Vec<usize>>,
}

// SAFETY: the raw pointers in `Model` point only into its own heap buffers, which no method
// mutates after construction; LIBSVM's `svm_predict` only reads the model (scratch memory is
// allocated per call, no globals are touched), so sharing `&Model` across threads is sound, and
// moving a `Model` to another thread moves sole ownership of those buffers with it.
unsafe impl Send for Model {}
// SAFETY: see above.
unsafe impl Sync for Model {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("svm_type", &self.svm_type)
            .field("kernel", &self.kernel)
            .field("classes", &self.labels)
            .field("support_per_class", &self.n_sv)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Check `parts` for consistency (everything `svm_predict` indexes must be in bounds) and
    /// wire LIBSVM's struct to them.
    pub(crate) fn from_parts(parts: Parts) -> std::result::Result<Model, String> {
        let Parts {
            svm_type,
            kernel,
            params,
            labels,
            n_sv,
            rho,
            mut coef,
            mut nodes,
            support,
        } = parts;
        let k = labels.len();
        if k == 0 {
            return Err("no classes".into());
        }
        if k > MAX_CLASSES {
            return Err(format!("{k} classes (at most {MAX_CLASSES} supported)"));
        }
        for (i, a) in labels.iter().enumerate() {
            if labels[..i].contains(a) {
                return Err(format!("class label {a} appears twice"));
            }
        }
        if n_sv.len() != k {
            return Err(format!(
                "{} support-vector counts for {k} classes",
                n_sv.len()
            ));
        }
        let mut l: usize = 0;
        for &n in &n_sv {
            let n = usize::try_from(n).map_err(|_| format!("negative support-vector count {n}"))?;
            l = l
                .checked_add(n)
                .filter(|&l| c_int::try_from(l).is_ok())
                .ok_or("more than i32::MAX support vectors")?;
        }
        let pairs = k * (k - 1) / 2;
        if rho.len() != pairs {
            return Err(format!(
                "{} rho values for {pairs} pairs of classes",
                rho.len()
            ));
        }
        if coef.len() != (k - 1) * l {
            return Err(format!(
                "{} coefficients, expected {} ({} rows of {l} support vectors)",
                coef.len(),
                (k - 1) * l,
                k - 1
            ));
        }
        if let Some(v) = rho.iter().chain(&coef).find(|v| !v.is_finite()) {
            return Err(format!("non-finite coefficient {v}"));
        }
        if let Some(s) = &support {
            if s.len() != l {
                return Err(format!(
                    "{} support indices for {l} support vectors",
                    s.len()
                ));
            }
        }
        // Every support vector: indices >= 1 strictly increasing, finite values, a terminator.
        let mut starts = Vec::with_capacity(l);
        let mut start = 0;
        let mut last = 0;
        for (i, n) in nodes.iter().enumerate() {
            if n.index == END {
                starts.push(start);
                start = i + 1;
                last = 0;
            } else if n.index <= last {
                return Err(format!(
                    "support vector {}: feature index {} after {last} (must be >= 1 and increasing)",
                    starts.len() + 1,
                    n.index
                ));
            } else if !n.value.is_finite() {
                return Err(format!(
                    "support vector {}: non-finite value {}",
                    starts.len() + 1,
                    n.value
                ));
            } else {
                last = n.index;
            }
        }
        if start != nodes.len() {
            return Err("last support vector is not terminated".into());
        }
        if starts.len() != l {
            return Err(format!(
                "{} support vectors stored, {l} counted per class",
                starts.len()
            ));
        }
        if let Some(g) = kernel.gamma().filter(|g| !g.is_finite()) {
            return Err(format!("non-finite gamma {g}"));
        }

        let mut labels: Vec<c_int> = labels;
        let mut n_sv: Vec<c_int> = n_sv;
        let mut rho = rho;
        let base = nodes.as_mut_ptr();
        // SAFETY: every start is an index into `nodes` (a row start strictly before its
        // terminator), so the offsets stay inside the allocation.
        let mut sv_ptrs: Vec<*mut svm_node> =
            starts.iter().map(|&s| unsafe { base.add(s) }).collect();
        let coef_base = coef.as_mut_ptr();
        // SAFETY: r * l < coef.len() for r < k - 1 whenever l > 0; for l == 0 the offset is 0.
        let mut coef_ptrs: Vec<*mut f64> = (0..k - 1)
            .map(|r| unsafe { coef_base.add(r * l) })
            .collect();
        let (kernel_type, degree, gamma, coef0) = kernel.raw();
        let training = params.unwrap_or(Params {
            c: 0.0,
            cache_mb: 0.0,
            eps: 0.0,
            shrinking: false,
            ..Params::rbf(0.0, gamma)
        });
        let param = svm_parameter {
            svm_type: svm_type.raw(),
            kernel_type,
            degree,
            gamma,
            coef0,
            cache_size: training.cache_mb,
            eps: training.eps,
            C: training.c,
            nr_weight: 0,
            weight_label: ptr::null_mut(),
            weight: ptr::null_mut(),
            nu: 0.5,
            p: 0.1,
            shrinking: c_int::from(training.shrinking),
            probability: 0,
        };
        let raw = svm_model {
            param,
            nr_class: k as c_int,
            l: l as c_int,
            SV: sv_ptrs.as_mut_ptr(),
            sv_coef: coef_ptrs.as_mut_ptr(),
            rho: rho.as_mut_ptr(),
            probA: ptr::null_mut(),
            probB: ptr::null_mut(),
            sv_indices: ptr::null_mut(),
            label: labels.as_mut_ptr(),
            nSV: n_sv.as_mut_ptr(),
            free_sv: 0,
        };
        Ok(Model {
            raw,
            nodes,
            _sv_ptrs: sv_ptrs,
            coef,
            _coef_ptrs: coef_ptrs,
            rho,
            labels,
            n_sv,
            svm_type,
            kernel,
            params,
            support,
        })
    }

    /// The class of row `i` of `features`.
    ///
    /// # Panics
    /// If `i >= features.len()`.
    pub fn predict_row(&self, features: &Features, i: usize) -> i32 {
        let x = features.row_nodes(i);
        // SAFETY: `self.raw` was checked by `from_parts` (counts agree with array lengths, every
        // support vector is terminated, the kernel is not `precomputed`), `x` ends with an index
        // of -1, and svm_predict only reads both.
        let label = unsafe { svm_predict(&self.raw, x.as_ptr()) };
        label as i32
    }

    /// The class of every row of `features`, computed in parallel on rayon's thread pool.
    pub fn predict(&self, features: &Features) -> Vec<i32> {
        self.predict_with_progress(features, |_| {})
    }

    /// [`Model::predict`], calling `progress(rows_done)` as blocks of rows finish (from the
    /// worker threads, with a count that only grows).
    pub fn predict_with_progress<F>(&self, features: &Features, progress: F) -> Vec<i32>
    where
        F: Fn(usize) + Sync,
    {
        const BLOCK: usize = 32;
        let done = AtomicUsize::new(0);
        let mut out = vec![0; features.len()];
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = self.predict_row(features, b * BLOCK + j);
                }
                let finished = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                progress(finished);
            });
        out
    }

    /// The class of one image (pixels scaled by `scale`, as the training images were).
    pub fn predict_pixels(&self, pixels: &[u8], scale: Scale) -> i32 {
        let mut f = Features::with_capacity(1, pixels.len());
        f.push_pixels(pixels, scale);
        self.predict_row(&f, 0)
    }

    /// The class of one sparse vector (see [`Features::push_sparse`] for the rules).
    pub fn predict_sparse<I: IntoIterator<Item = (u32, f64)>>(&self, row: I) -> Result<i32> {
        let mut f = Features::new();
        f.push_sparse(row)?;
        Ok(self.predict_row(&f, 0))
    }

    /// How many of `labels` the predictions for `features` get right (in parallel).
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn correct(&self, features: &Features, labels: &[i32]) -> usize {
        assert_eq!(features.len(), labels.len(), "one label per row");
        count_equal(&self.predict(features), labels)
    }

    /// The class labels, in LIBSVM's order.
    pub fn classes(&self) -> &[i32] {
        &self.labels
    }

    /// Number of support vectors of each class (same order as [`Model::classes`]).
    pub fn support_per_class(&self) -> &[i32] {
        &self.n_sv
    }

    /// Total number of support vectors.
    pub fn support_count(&self) -> usize {
        self.raw.l as usize
    }

    /// The support vectors' rows in the training problem (0-based, grouped by class), for a
    /// model trained here; `None` for a model read from a file.
    pub fn support_indices(&self) -> Option<&[usize]> {
        self.support.as_deref()
    }

    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The formulation (C-SVC for models trained here).
    pub fn svm_type(&self) -> SvmType {
        self.svm_type
    }

    /// The training parameters, for a model trained here (model files do not store C).
    pub fn params(&self) -> Option<Params> {
        self.params
    }

    /// The offsets of the one-vs-one decision functions, pair (0,1), (0,2), ..., (1,2), ...
    pub fn rho(&self) -> &[f64] {
        &self.rho
    }

    /// Support vector `i`'s coefficients (one per other class, LIBSVM's `sv_coef[.][i]`).
    pub fn coefficients(&self, i: usize) -> Vec<f64> {
        let l = self.support_count();
        assert!(i < l, "support vector {i} of {l}");
        (0..self.labels.len() - 1)
            .map(|r| self.coef[r * l + i])
            .collect()
    }

    /// Support vector `i`'s stored `(index, value)` pairs (non-zeros, and any explicit zeros
    /// its training row had).
    pub fn support_vector(&self, i: usize) -> Vec<(u32, f64)> {
        let l = self.support_count();
        assert!(i < l, "support vector {i} of {l}");
        self.support_vectors().nth(i).unwrap_or_default()
    }

    /// Every support vector's nodes, in order.
    pub(crate) fn support_vectors(&self) -> impl Iterator<Item = Vec<(u32, f64)>> + '_ {
        self.nodes
            .split(|n| n.index == END)
            .take(self.support_count())
            .map(|sv| sv.iter().map(|n| (n.index as u32, n.value)).collect())
    }

    /// The coefficient matrix, `nr_class - 1` rows of one value per support vector.
    pub(crate) fn coef_rows(&self) -> &[f64] {
        &self.coef
    }

    /// LIBSVM's struct, for LIBSVM calls in this crate (tests compare with LIBSVM's own I/O).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &svm_model {
        &self.raw
    }
}

/// Most classes a model may have (LIBSVM keeps k(k-1)/2 decision functions).
pub(crate) const MAX_CLASSES: usize = 1 << 15;

/// How many positions of `a` and `b` hold equal values.
pub(crate) fn count_equal(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}
