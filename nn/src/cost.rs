//! The book's three costs.

use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// The book's three costs. Each takes the last layer's pre-activation `z` and applies the
/// output nonlinearity itself, fused where that is stable and cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// network.py: sigmoid output, `0.5 ||a - y||^2` against one-hot targets.
    Quadratic,
    /// network2.py: sigmoid output, cross-entropy against one-hot targets (gradient `a - y`).
    CrossEntropy,
    /// network3.py: softmax output, `-log p[y]` (gradient `p - y`).
    LogLikelihood,
}

impl Cost {
    /// The class name network2.py's JSON files use.
    pub fn network2_name(self) -> &'static str {
        match self {
            Cost::Quadratic => "QuadraticCost",
            Cost::CrossEntropy => "CrossEntropyCost",
            Cost::LogLikelihood => "LogLikelihoodCost",
        }
    }

    /// Parses network2's class name.
    pub fn from_network2_name(s: &str) -> Option<Self> {
        Some(match s {
            "QuadraticCost" => Cost::Quadratic,
            "CrossEntropyCost" => Cost::CrossEntropy,
            "LogLikelihoodCost" => Cost::LogLikelihood,
            _ => return None,
        })
    }

    /// The mean cost of the mini-batch on the graph.
    pub fn loss<T: Float>(self, g: &mut Graph<T>, z: Var, labels: &[usize]) -> Result<Var> {
        if self == Cost::LogLikelihood {
            return Ok(g.softmax_cross_entropy(z, labels)?);
        }
        let s = g.value(z)?.shape();
        let classes = s.dims().get(1).copied().unwrap_or(0);
        if s.ndim() != 2 {
            return Err(NnError::Config(format!(
                "the cost needs [batch, classes] outputs, got {s}"
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(NnError::Config(format!(
                "label {bad} does not fit the network's {classes} outputs"
            )));
        }
        let y = g.input_with(s.dims(), |d| {
            d.iter_mut().for_each(|v| *v = T::zero());
            for (r, &l) in labels.iter().enumerate() {
                d[r * classes + l] = T::one();
            }
        })?;
        Ok(match self {
            Cost::Quadratic => {
                let a = g.sigmoid(z)?;
                g.quadratic_cost(a, y)?
            }
            _ => g.sigmoid_cross_entropy(z, y)?,
        })
    }
}
