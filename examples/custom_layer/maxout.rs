//! A layer nndl does not ship, written as a user would: a 2-piece maxout layer
//! `max(x.w1^T + b1, x.w2^T + b2)`, built from graph ops alone (max(a, b) = b + relu(a - b)).
//! There is no gradient code here: autograd differentiates the forward.

use autograd::{Graph, Var};
use nn::{Ctx, Init, Layer, NnError, Result};
use rand::Rng;
use tensor::Float;

/// Two linear pieces and their elementwise maximum.
pub struct Maxout {
    /// First piece's weights `[n_out, n_in]`.
    pub w1: Var,
    /// First piece's biases.
    pub b1: Var,
    /// Second piece's weights.
    pub w2: Var,
    /// Second piece's biases.
    pub b2: Var,
    n_in: usize,
    n_out: usize,
}

impl Maxout {
    /// A new layer with N(0, 1/n_in) weights.
    pub fn new<T: Float, R: Rng + ?Sized>(
        g: &mut Graph<T>,
        name: &str,
        n_in: usize,
        n_out: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let init = Init::ScaledByInputs;
        let mut p = |suffix: &str, dims: &[usize], rng: &mut R| -> Result<Var> {
            let t = if dims.len() == 2 {
                init.weights(dims, n_in, n_out, rng)?
            } else {
                init.biases(dims[0], rng)?
            };
            Ok(g.parameter(format!("{name}.{suffix}"), t))
        };
        Ok(Maxout {
            w1: p("w1", &[n_out, n_in], rng)?,
            b1: p("b1", &[n_out], rng)?,
            w2: p("w2", &[n_out, n_in], rng)?,
            b2: p("b2", &[n_out], rng)?,
            n_in,
            n_out,
        })
    }
}

impl<T: Float> Layer<T> for Maxout {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        let a = g.linear(x, self.w1, Some(self.b1))?;
        let b = g.linear(x, self.w2, Some(self.b2))?;
        let d = g.sub(a, b)?;
        let r = g.relu(d)?;
        Ok(g.add(b, r)?)
    }
    fn weights(&self) -> Vec<Var> {
        vec![self.w1, self.w2]
    }
    fn biases(&self) -> Vec<Var> {
        vec![self.b1, self.b2]
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.iter().product::<usize>() != self.n_in {
            return Err(NnError::Config(format!(
                "maxout expects {} inputs, got {input:?}",
                self.n_in
            )));
        }
        Ok(vec![self.n_out])
    }
    fn describe(&self) -> String {
        format!("Maxout({} -> {}, 2 pieces)", self.n_in, self.n_out)
    }
}
