//! The book's three costs.

use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// The book's three costs. Each takes the last layer's pre-activation `z` and applies the
/// output nonlinearity itself, fused where that is stable and cheaper.
///
/// At `z = 0` every output is 1/2 (sigmoid) or 1/C (softmax), so the costs of a sample of
/// class 0 among 2 are known numbers:
///
/// ```
/// use nndl_nn::{Cost, Graph, Tensor};
///
/// let cost_at_zero = |cost: Cost| -> nndl_nn::Result<(f64, Vec<f64>)> {
///     let mut g = Graph::<f64>::new();
///     let z = g.parameter("z", Tensor::zeros(&[1, 2])?); // one sample, two outputs
///     let c = cost.loss(&mut g, z, &[0])?;
///     g.backward(c)?;
///     Ok((g.value(c)?.data()[0], g.grad(z).unwrap().data().to_vec()))
/// };
/// let ln2 = 2f64.ln();
/// // 0.5 ||a - y||^2 = 0.5 (0.25 + 0.25); gradient (a - y) a (1 - a).
/// assert_eq!(cost_at_zero(Cost::Quadratic)?, (0.25, vec![-0.125, 0.125]));
/// // -sum y ln a + (1 - y) ln(1 - a) = 2 ln 2; gradient a - y.
/// let (c, grad) = cost_at_zero(Cost::CrossEntropy)?;
/// assert!((c - 2.0 * ln2).abs() < 1e-15 && grad == [-0.5, 0.5]);
/// // -ln p[0] = ln 2; gradient p - y.
/// let (c, grad) = cost_at_zero(Cost::LogLikelihood)?;
/// assert!((c - ln2).abs() < 1e-15 && grad == [-0.5, 0.5]);
///
/// assert_eq!(Cost::from_network2_name(Cost::CrossEntropy.network2_name()), Some(Cost::CrossEntropy));
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
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

/// The log-likelihood cost against smoothed targets, `(1 - eps) (-log p[y]) + eps mean_k
/// (-log p[k])` averaged over the mini-batch: composed of the tape's ops, so its gradient,
/// `p - ((1 - eps) y + eps / C)`, needs no code of its own.
pub(crate) fn smoothed_log_likelihood<T: Float>(
    g: &mut Graph<T>,
    z: Var,
    labels: &[usize],
    eps: f64,
) -> Result<Var> {
    let hit = g.softmax_cross_entropy(z, labels)?;
    let logp = g.log_softmax(z)?;
    let spread = g.mean(logp)?;
    let hit = g.scale(hit, T::of(1.0 - eps))?;
    let spread = g.scale(spread, T::of(eps))?;
    Ok(g.sub(hit, spread)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::Tensor;

    #[test]
    fn smoothed_cost_and_its_gradient() {
        let (zs, labels, eps) = (vec![0.3, -1.2, 2.0, 0.5, 0.1, -0.4], [2usize, 0], 0.1);
        let mut g = Graph::<f64>::new();
        let z = g.parameter("z", Tensor::from_vec(zs.clone(), &[2, 3]).unwrap());
        let c = smoothed_log_likelihood(&mut g, z, &labels, eps).unwrap();
        g.backward(c).unwrap();
        let (mut want, mut grad) = (0.0, vec![]);
        for (r, row) in zs.chunks(3).enumerate() {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for (k, &v) in row.iter().enumerate() {
                let (p, t) = (
                    (v - m).exp() / s,
                    (1.0 - eps) * f64::from(k == labels[r]) + eps / 3.0,
                );
                want -= t * (p.ln()) / 2.0;
                grad.push((p - t) / 2.0);
            }
        }
        assert!((g.value(c).unwrap().data()[0] - want).abs() < 1e-14);
        for (a, b) in g.grad(z).unwrap().data().iter().zip(&grad) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
    }
}
