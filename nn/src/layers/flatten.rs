//! The flatten between image layers and fully connected ones.

use crate::{Ctx, Layer, LayerKind, NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// `[N, ...]` to `[N, product of the rest]`.
pub struct Flatten;

impl<T: Float> Layer<T> for Flatten {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        let s = g.value(x)?.shape();
        let n = s.dims().first().copied().unwrap_or(0);
        Ok(g.reshape(x, &[n, s.numel() / n.max(1)])?)
    }
    fn weights(&self) -> Vec<Var> {
        Vec::new()
    }
    fn biases(&self) -> Vec<Var> {
        Vec::new()
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let n = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        n.map(|n| vec![n]).ok_or_else(|| {
            NnError::Config(format!(
                "Flatten: {input:?} has more values than a usize counts"
            ))
        })
    }
    fn describe(&self) -> String {
        "Flatten".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Flatten
    }
}
