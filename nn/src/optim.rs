//! Optimisers: what a training step does with the gradients. [`Sgd`] is the book's, with each
//! program's way of regularising ([`Regularization`]); momentum or Adam would be another type
//! implementing [`Optimizer`], with no change to [`Network`](crate::Network).

use crate::{NnError, Result};
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
}

/// One step of training: optional terms in the cost, then the backward and the update.
///
/// [`Network::train_epoch`](crate::Network::train_epoch) calls [`begin_epoch`] once, then for
/// every mini-batch [`regularize`] on the recorded cost and [`step`] from what it returns.
///
/// [`begin_epoch`]: Optimizer::begin_epoch
/// [`regularize`]: Optimizer::regularize
/// [`step`]: Optimizer::step
pub trait Optimizer<T: Float> {
    /// The learning rate (named in the error when training diverges).
    fn learning_rate(&self) -> f64;
    /// Checks the settings and prepares per-parameter state before an epoch; `weights` are
    /// the regularised subset of `params`.
    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()>;
    /// The cost to differentiate: `loss` plus any term the optimiser puts in the graph.
    fn regularize(&mut self, _g: &mut Graph<T>, _weights: &[Var], loss: Var) -> Result<Var> {
        Ok(loss)
    }
    /// The backward from `loss` and one update of every parameter.
    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()>;
}

/// Mini-batch stochastic gradient descent, `w <- decay*w - eta*grad`, as the book's three
/// programs do it (the decay is network2's weight decay, 1 otherwise).
#[derive(Debug, Clone)]
pub struct Sgd<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    /// Whether linear layers take their step inside the backward
    /// ([`autograd::Graph::backward_step`]: one pass over each weight matrix instead of five;
    /// on by default). The result is the same up to float rounding.
    pub fused: bool,
    decays: Vec<T>,
}

impl<T: Float> Sgd<T> {
    /// SGD at `eta` with `reg`, the step fused into the backward where an op allows it.
    pub fn new(eta: f64, reg: Regularization) -> Self {
        Sgd {
            eta,
            reg,
            fused: true,
            decays: Vec::new(),
        }
    }

    /// The factor weights are multiplied by before the gradient step.
    fn decay(&self) -> T {
        match self.reg {
            Regularization::WeightDecay { lmbda, n } => {
                T::of(1.0 - self.eta * lmbda / n.max(1) as f64)
            }
            _ => T::one(),
        }
    }

    /// The update after a backward, skipping parameters a fused step already updated:
    /// `w <- decay*w - eta*grad` for `weights`, `b <- b - eta*grad` for the other `params`.
    pub fn update(&self, g: &mut Graph<T>, params: &[Var], weights: &[Var]) -> Result<()> {
        let decay = self.decay();
        let eta = T::of(self.eta);
        for &p in params {
            let d = if weights.contains(&p) {
                decay
            } else {
                T::one()
            };
            if g.stepped(p).is_some() {
                continue;
            }
            let (v, grad) = g.param_and_grad(p)?;
            match grad {
                Some(grad) => v
                    .data_mut()
                    .iter_mut()
                    .zip(grad.data())
                    .for_each(|(w, &gr)| *w = d * *w - eta * gr),
                None if d != T::one() => v.data_mut().iter_mut().for_each(|w| *w *= d),
                None => {}
            }
        }
        Ok(())
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        if !self.eta.is_finite() || self.eta <= 0.0 || !T::of(self.eta).is_finite() {
            return Err(NnError::Config(format!(
                "the learning rate must be a positive number the network's precision holds, got {}",
                self.eta
            )));
        }
        let decay = self.decay();
        self.decays.clear();
        self.decays.extend(
            params
                .iter()
                .map(|p| if weights.contains(p) { decay } else { T::one() }),
        );
        Ok(())
    }

    /// network3's `0.5*lmbda*sum(w^2)/num_batches` over every layer's weights.
    fn regularize(&mut self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        let Regularization::InGraph { lmbda, num_batches } = self.reg else {
            return Ok(loss);
        };
        if lmbda == 0.0 {
            return Ok(loss);
        }
        let mut total: Option<Var> = None;
        for &w in weights {
            let s = g.sum_squares(w)?;
            total = Some(match total {
                Some(t) => g.add(t, s)?,
                None => s,
            });
        }
        let Some(t) = total else { return Ok(loss) };
        let l2 = g.scale(t, T::of(0.5 * lmbda / num_batches.max(1) as f64))?;
        Ok(g.add(loss, l2)?)
    }

    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        if self.fused {
            let sgd = autograd::Sgd {
                eta: T::of(self.eta),
                decay: &self.decays,
            };
            g.backward_step(loss, &sgd)?;
        } else {
            g.backward(loss)?;
        }
        self.update(g, params, weights)
    }
}
