//! Monitors: the divergence check (training stops on a step that can only produce garbage)
//! and chapter 5's speed of learning per layer.

use crate::{Mode, Network, Result, Samples};
use autograd::{Graph, Var};
use tensor::Float;

impl<T: Float> Network<T> {
    /// Chapter 5's speed of learning of each hidden layer: `||dC/db^l||`, the length of the
    /// gradient of the mean (unregularised) cost over the samples `idx` with respect to layer
    /// `l`'s biases, for every layer but the output one. Evaluation mode (no dropout, no
    /// random numbers drawn), nothing updated: training continues as if it had not been called.
    pub fn layer_speeds<S: Samples>(&mut self, data: &S, idx: &[usize]) -> Result<Vec<f64>> {
        self.graph.reset();
        let r = (|| {
            let loss = self.batch_loss(data, idx, Mode::Eval)?;
            self.graph.backward(loss)?;
            let hidden = self.layers().len().saturating_sub(1);
            Ok(self.layers()[..hidden]
                .iter()
                .map(|l| {
                    l.biases()
                        .iter()
                        .filter_map(|&b| self.graph.grad(b))
                        .flat_map(|g| g.data().iter().map(|v| v.f64() * v.f64()))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect())
        })();
        self.graph.reset();
        r
    }
}

/// How often (in mini-batches) [`Network::train_epoch`](crate::Network::train_epoch) scans
/// every parameter for NaN or infinity: a scan costs about a tenth of an SGD update, so this
/// keeps it under 1%.
pub(crate) const SCAN_EVERY: usize = 16;

/// Why training diverged in the step just taken, if it did: every gradient is exactly zero
/// although the cost is not (every unit saturated: nothing will change again), or, with
/// `scan`, a parameter holds a NaN or infinity. The gradient test reads the biases' gradients,
/// and the weights' only when those are all zero.
pub(crate) fn divergence<T: Float>(
    g: &Graph<T>,
    params: &[Var],
    weights: &[Var],
    cost: f64,
    scan: bool,
) -> Option<String> {
    let all_zero = |ps: &mut dyn Iterator<Item = Var>| {
        for p in ps {
            let zero = match (g.handed_over(p), g.grad(p)) {
                (Some(nonzero), _) => !nonzero,
                (None, Some(gr)) => gr.data().iter().all(|&v| v == T::zero()),
                (None, None) => true,
            };
            if !zero {
                return false;
            }
        }
        true
    };
    let some_grad = params
        .iter()
        .any(|&p| g.grad(p).is_some() || g.handed_over(p).is_some());
    if cost != 0.0
        && some_grad
        && all_zero(&mut params.iter().copied().filter(|p| !weights.contains(p)))
        && all_zero(&mut weights.iter().copied())
    {
        return Some(format!(
            "every gradient is exactly zero while the cost is {cost} (the units saturated: \
             the net stopped learning)"
        ));
    }
    if scan {
        for &p in params {
            let Ok(t) = g.value(p) else { continue };
            let finite = t.data().iter().fold(true, |ok, v| ok & v.is_finite());
            if !finite {
                let name = g.name(p).unwrap_or("?");
                let bad = t
                    .data()
                    .iter()
                    .find(|v| !v.is_finite())
                    .map_or(f64::NAN, |v| v.f64());
                return Some(format!("parameter {name} holds {bad}"));
            }
        }
    }
    None
}
