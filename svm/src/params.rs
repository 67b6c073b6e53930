//! Training parameters: C-SVC with the RBF kernel, as scikit-learn's `SVC()` runs LIBSVM.

use std::ptr;

use libsvm_sys::{svm_parameter, C_SVC, PRECOMPUTED, RBF};

use crate::error::{Error, Result};

/// C-SVC training parameters for the RBF kernel `exp(-gamma * |x - y|^2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// The penalty C of misclassified training points (> 0).
    pub c: f64,
    /// The RBF kernel's gamma (> 0).
    pub gamma: f64,
    /// Kernel cache per binary problem being solved, in MB (> 0); training runs one binary
    /// problem per thread, so the total is this times the number of threads.
    pub cache_mb: f64,
    /// Stopping tolerance of the solver (> 0): LIBSVM's `-e`, scikit-learn's `tol`.
    pub eps: f64,
    /// LIBSVM's shrinking heuristics (scikit-learn's `shrinking=True`).
    pub shrinking: bool,
    /// How [`crate::train`] gets kernel values.
    pub kernels: KernelEvaluation,
}

/// How kernel values are computed while training (prediction always uses LIBSVM's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelEvaluation {
    /// LIBSVM computes each value from the sparse rows when its solver needs one, as
    /// `svm_train` does: the model is bit-identical to `svm_train`'s.
    #[default]
    Libsvm,
    /// Each binary problem's whole kernel matrix is computed first, its dot products by one
    /// matrix product (f32 GEMM), and handed to LIBSVM's solver as a precomputed kernel (its
    /// `-t 4`): ~3x faster training on MNIST. Kernel values may differ from LIBSVM's in the
    /// last bits, so the model agrees with `svm_train`'s to rounding; on the book's 50,000
    /// images it came out byte-identical. Memory: 16 bytes x rows^2 per binary problem being
    /// solved (1.9 GB for MNIST's largest pair of digits), one per thread.
    Precomputed,
}

impl Params {
    /// The book's `svm.SVC()`: C = 1 and gamma = 1/784 (scikit-learn's default for MNIST then).
    pub const BOOK: Params = Params::rbf(1.0, 1.0 / 784.0);

    /// C and gamma with scikit-learn's other defaults: 200 MB cache, eps 1e-3, shrinking on;
    /// kernels evaluated by LIBSVM.
    pub const fn rbf(c: f64, gamma: f64) -> Params {
        Params {
            c,
            gamma,
            cache_mb: 200.0,
            eps: 1e-3,
            shrinking: true,
            kernels: KernelEvaluation::Libsvm,
        }
    }

    /// Check every value is finite and positive, naming the first that is not.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("C", self.c),
            ("gamma", self.gamma),
            ("cache_mb", self.cache_mb),
            ("eps", self.eps),
        ] {
            if !value.is_finite() {
                return Err(Error::InvalidParameter {
                    name,
                    value,
                    requirement: "must be a finite number",
                });
            }
            if value <= 0.0 {
                return Err(Error::InvalidParameter {
                    name,
                    value,
                    requirement: "must be > 0",
                });
            }
        }
        Ok(())
    }

    /// LIBSVM's parameter struct for these settings.
    pub(crate) fn to_raw(self) -> svm_parameter {
        svm_parameter {
            svm_type: C_SVC as _,
            kernel_type: RBF as _,
            degree: 3,
            gamma: self.gamma,
            coef0: 0.0,
            cache_size: self.cache_mb,
            eps: self.eps,
            C: self.c,
            nr_weight: 0,
            weight_label: ptr::null_mut(),
            weight: ptr::null_mut(),
            nu: 0.5,
            p: 0.1,
            shrinking: i32::from(self.shrinking),
            probability: 0,
        }
    }
}

impl Params {
    /// The parameters for a binary problem whose kernel matrix is precomputed.
    pub(crate) fn to_raw_precomputed(self) -> svm_parameter {
        svm_parameter {
            kernel_type: PRECOMPUTED as _,
            ..self.to_raw()
        }
    }
}

impl Default for Params {
    /// [`Params::BOOK`].
    fn default() -> Self {
        Params::BOOK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (Params::rbf(0.0, 0.1), "C = 0: must be > 0"),
            (Params::rbf(-1.0, 0.1), "C = -1: must be > 0"),
            (Params::rbf(1.0, 0.0), "gamma = 0: must be > 0"),
            (Params::rbf(1.0, -0.5), "gamma = -0.5: must be > 0"),
            (
                Params::rbf(f64::NAN, 0.1),
                "C = NaN: must be a finite number",
            ),
            (
                Params::rbf(1.0, f64::INFINITY),
                "gamma = inf: must be a finite number",
            ),
            (
                Params {
                    cache_mb: 0.0,
                    ..Params::BOOK
                },
                "cache_mb = 0",
            ),
            (
                Params {
                    eps: -1e-3,
                    ..Params::BOOK
                },
                "eps = -0.001",
            ),
        ];
        for (p, needle) in cases {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should contain {needle}");
        }
        Params::BOOK.validate().unwrap();
    }

    #[test]
    fn raw_parameters_match_scikit_learn_svc() {
        let raw = Params::BOOK.to_raw();
        assert_eq!(raw.svm_type, C_SVC as i32);
        assert_eq!(raw.kernel_type, RBF as i32);
        assert_eq!(raw.C, 1.0);
        assert_eq!(raw.gamma, 1.0 / 784.0);
        assert_eq!(raw.eps, 1e-3);
        assert_eq!(raw.cache_size, 200.0);
        assert_eq!(raw.shrinking, 1);
        assert_eq!(raw.probability, 0);
    }
}
