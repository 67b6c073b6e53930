//! The op set. One file per family; in each, the graph method is the forward, the `Op`
//! implementation beside it is the backward, and the tests at the bottom gradcheck it.
//! Adding an op means adding a file here (and a `mod` line), nothing else.

mod arith;
mod conv;
mod dropout;
mod loss;
mod matmul;
mod pool;
mod reduce;
mod shape;
mod softmax;
mod unary;

pub use unary::{Exp, Log, Relu, Sigmoid, Softplus, Tanh, UnaryFn};

#[cfg(test)]
pub(crate) mod testing {
    //! The one-line op test: random inputs of given shapes through `f`, checked by gradcheck.
    use crate::{gradcheck_fn, AutogradError, GradcheckConfig, Graph, Var};
    use rand::{Rng, SeedableRng};
    use tensor::Tensor;

    /// Random tensors of the given shapes, entries in +-[0.1, 1.0] (away from kinks at 0).
    pub fn randoms(shapes: &[&[usize]], seed: u64) -> Vec<Tensor<f64>> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        shapes
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                let d = (0..n)
                    .map(|_| {
                        rng.random_range(0.1..1.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 }
                    })
                    .collect();
                Tensor::from_vec(d, s).unwrap()
            })
            .collect()
    }

    /// Gradchecks `f` on random inputs of `shapes`; panics with the report on failure.
    pub fn check(
        shapes: &[&[usize]],
        f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
    ) {
        check_on(randoms(shapes, 42), f)
    }

    /// Gradchecks `f` on the given inputs.
    pub fn check_on(
        inputs: Vec<Tensor<f64>>,
        f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
    ) {
        match gradcheck_fn(&inputs, f, GradcheckConfig::default()) {
            Ok(r) => assert!(r.checked > 0),
            Err(e) => panic!("{e}"),
        }
    }
}
