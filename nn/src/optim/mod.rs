//! Optimisers: what a training step does with the gradients. [`Sgd`] is the book's, with each
//! program's way of regularising ([`Regularization`]); [`Momentum`] is chapter 3's
//! momentum-based gradient descent; [`Adam`] is past the book, and [`Averaged`] wraps any of
//! them to keep a moving average of the weights for evaluation. None needs a change to
//! [`Network`](crate::Network).
//!
//! An optimiser is a per-parameter [`Optimizer::update`]; the step around it (the backward,
//! the loop over the parameters) is [`Optimizer::step`], written once here. nn owns every
//! setting of the update (rate, weight decay, L2 or L1 term, the weight average); the graph
//! only computes gradients, and hands a linear layer's over unformed to an optimiser that
//! asks for it ([`Optimizer::differentiate`], SGD's fused update).

mod adam;
mod averaged;
mod momentum;
mod one_cycle;
mod regularization;
mod sgd;
mod state;

pub use adam::Adam;
pub use averaged::Averaged;
pub use momentum::Momentum;
pub use one_cycle::OneCycle;
pub use regularization::Regularization;
pub use sgd::Sgd;
pub use state::{OptimizerState, Scalars};

use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// One parameter's update in a step.
pub struct ParamStep<'a, T> {
    /// Its position among the trained parameters (the index of its optimiser state).
    pub index: usize,
    /// Its value, to update.
    pub value: &'a mut [T],
    /// Its gradient; `None` when the loss does not reach it.
    pub grad: Option<&'a [T]>,
    /// Whether weight regularisation applies to it (a weight, not a bias).
    pub decayed: bool,
}

/// One step of training: optional terms in the cost, then the backward and the update.
///
/// [`Network::train_epoch`](crate::Network::train_epoch) calls [`begin_epoch`] once, then for
/// every mini-batch adds [`regularization`]'s term to the recorded cost and takes [`step`].
/// An optimiser implements [`update`], one parameter's update from its gradient; the rest has
/// defaults.
///
/// [`begin_epoch`]: Optimizer::begin_epoch
/// [`regularization`]: Optimizer::regularization
/// [`step`]: Optimizer::step
/// [`update`]: Optimizer::update
///
/// Each optimiser's first steps on `loss = w^2` from `w = 1` (gradient `2w`), at `eta = 0.1`:
///
/// ```
/// use nndl_nn::{Adam, Graph, Momentum, Optimizer, Regularization, Sgd, Tensor};
///
/// /// `w` after `n` steps of `opt`.
/// fn after(opt: &mut dyn Optimizer<f64>, n: usize) -> nndl_nn::Result<f64> {
///     let mut g = Graph::new();
///     let w = g.parameter("w", Tensor::from_vec(vec![1.0], &[1])?);
///     opt.begin_epoch(&[w], &[w])?;
///     for _ in 0..n {
///         let loss = g.sum_squares(w)?;
///         opt.step(&mut g, loss, &[w], &[w])?;
///         g.reset();
///     }
///     Ok(g.value(w)?.data()[0])
/// }
/// let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
///
/// // SGD: w <- w - eta*2w, so 0.8 then 0.64.
/// assert!(close(after(&mut Sgd::new(0.1, Regularization::None), 2)?, 0.64));
/// // Momentum 0.9: the same first step; the second adds 0.9 of the first (v = -0.18 - 0.16).
/// let mut momentum = Momentum::new(0.1, 0.9, Regularization::None);
/// assert!(close(after(&mut momentum, 2)?, 0.8 - 0.34));
/// // Adam: the first step is eta whatever the gradient's scale (m/sqrt(v) = 1).
/// assert!(close(after(&mut Adam::new(0.1), 1)?, 0.9));
/// // network2's weight decay shrinks the weights by 1 - eta*lmbda/n first: 0.99 - 0.2.
/// let mut decayed = Sgd::new(0.1, Regularization::WeightDecay { lmbda: 5.0, n: 50 });
/// assert!(close(after(&mut decayed, 1)?, 0.79));
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
pub trait Optimizer<T: Float> {
    /// The learning rate (named in the error when training diverges).
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (a schedule's change between epochs).
    fn set_learning_rate(&mut self, eta: f64);
    /// The term the cost carries for the weights (network3's L2, chapter 3's L1), or
    /// network2's weight decay, which [`Optimizer::update`] applies.
    fn regularization(&self) -> Regularization {
        Regularization::None
    }
    /// Checks the settings and prepares per-parameter state before an epoch; `weights` are
    /// the regularised subset of `params`.
    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()>;
    /// Updates one parameter from its gradient.
    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()>;
    /// The backward from `loss`: a plain one, or one handing gradients to the optimiser
    /// where the graph completes them (SGD's fused update; those parameters are then not
    /// passed to [`Optimizer::update`]).
    fn differentiate(&mut self, g: &mut Graph<T>, loss: Var, _weights: &[Var]) -> Result<()> {
        Ok(g.backward(loss)?)
    }
    /// Called once a step's gradients are known, before its updates (Adam counts steps).
    fn begin_step(&mut self) {}
    /// The backward from `loss` and one update of every parameter.
    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        self.differentiate(g, loss, weights)?;
        self.begin_step();
        for (index, &p) in params.iter().enumerate() {
            if g.handed_over(p).is_some() {
                continue;
            }
            let decayed = weights.contains(&p);
            let (value, grad) = g.param_and_grad(p)?;
            self.update(ParamStep {
                index,
                value: value.data_mut(),
                grad: grad.map(|t| t.data()),
                decayed,
            })?;
        }
        Ok(())
    }
    /// What a resumed run needs to continue exactly (momentum's velocities, Adam's moments);
    /// empty for an optimiser with no state.
    fn state(&self) -> OptimizerState<T> {
        OptimizerState::default()
    }
    /// Restores what [`Optimizer::state`] gave, for training `params` of `g` (the trained
    /// parameters, as [`Network::parameters`](crate::Network::parameters) lists them). Every
    /// buffer and count is checked against the network: a damaged or foreign state is an
    /// error, never silently reset.
    fn set_state(&mut self, state: OptimizerState<T>, g: &Graph<T>, params: &[Var]) -> Result<()> {
        let _ = (g, params);
        if state.buffers.is_empty() && state.scalars.is_none() {
            Ok(())
        } else {
            Err(NnError::Config(
                "this optimiser keeps no state, but the saved run has some: resume with the same optimiser".into(),
            ))
        }
    }
    /// Exchanges the graph's parameters with the weights evaluation should use, if the
    /// optimiser keeps any ([`Averaged`]'s average); a second call swaps them back. Returns
    /// whether anything was swapped.
    fn swap_averaged(&mut self, _g: &mut Graph<T>) -> Result<bool> {
        Ok(false)
    }
}

/// Fails unless `eta` is a positive number `T` holds.
pub(crate) fn check_eta<T: Float>(eta: f64) -> Result<()> {
    if !eta.is_finite() || eta <= 0.0 || !T::of(eta).is_finite() {
        return Err(NnError::Config(format!(
            "the learning rate must be a positive number the network's precision holds, got {eta}"
        )));
    }
    Ok(())
}
