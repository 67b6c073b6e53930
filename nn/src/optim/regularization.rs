use crate::Result;
use autograd::{Graph, Var};
use tensor::Float;

/// How weights are regularised, as each of the book's programs does it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularization {
    /// None (network.py).
    None,
    /// network2.py: `w <- (1 - eta*lmbda/n) w - eta * grad`, `n` the training-set size.
    WeightDecay {
        /// lambda.
        lmbda: f64,
        /// Training-set size.
        n: usize,
    },
    /// network3.py: `0.5*lmbda*sum(w^2)/num_batches` added to the cost in the graph.
    InGraph {
        /// lambda.
        lmbda: f64,
        /// Number of mini-batches per epoch.
        num_batches: usize,
    },
    /// Chapter 3's L1 exercise: `(lmbda/n) sum |w|` added to the cost in the graph, so the
    /// step is `w <- w - (eta*lmbda/n) sgn(w) - eta * grad` (`sgn(0) = 0`).
    L1 {
        /// lambda.
        lmbda: f64,
        /// Training-set size.
        n: usize,
    },
}

impl Regularization {
    /// The factor network2's weight decay multiplies weights by before the step at `eta`
    /// (1 for the others, whose terms are in the graph).
    pub(crate) fn decay(self, eta: f64) -> f64 {
        match self {
            Regularization::WeightDecay { lmbda, n } => 1.0 - eta * lmbda / n.max(1) as f64,
            _ => 1.0,
        }
    }

    /// `lmbda/n` of network2's weight decay: its term's coefficient in the gradient (0 for
    /// the others).
    pub(crate) fn decay_gradient(self) -> f64 {
        match self {
            Regularization::WeightDecay { lmbda, n } => lmbda / n.max(1) as f64,
            _ => 0.0,
        }
    }

    /// `loss` plus the regularisation term of the in-graph kinds (network3's L2, L1).
    pub fn add_to<T: Float>(self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        let (coef, l1) = match self {
            Regularization::InGraph { lmbda, num_batches } => {
                (0.5 * lmbda / num_batches.max(1) as f64, false)
            }
            Regularization::L1 { lmbda, n } => (lmbda / n.max(1) as f64, true),
            _ => return Ok(loss),
        };
        if coef == 0.0 {
            return Ok(loss);
        }
        let mut total: Option<Var> = None;
        for &w in weights {
            let s = if l1 { g.sum_abs(w)? } else { g.sum_squares(w)? };
            total = Some(match total {
                Some(t) => g.add(t, s)?,
                None => s,
            });
        }
        let Some(t) = total else { return Ok(loss) };
        let term = g.scale(t, T::of(coef))?;
        Ok(g.add(loss, term)?)
    }
}
