use super::state::{no_more, Buffers};
use super::{check_eta, Optimizer, OptimizerState, ParamStep, Regularization, Scalars};
use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// Momentum-based gradient descent (chapter 3): each parameter keeps a velocity,
/// `v <- mu*v - eta*grad`, `w <- w + v`; `mu = 0` is plain SGD. Under network2's weight decay
/// the gradient includes `(lmbda/n) w`, as the decay is that term's step.
#[derive(Debug, Clone)]
pub struct Momentum<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// The momentum coefficient mu (the book's "friction" is `1 - mu`).
    pub mu: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    velocities: Buffers<T>,
}

impl<T: Float> Momentum<T> {
    /// Momentum SGD at `eta` with coefficient `mu` and `reg`, velocities starting at zero.
    pub fn new(eta: f64, mu: f64, reg: Regularization) -> Self {
        Momentum {
            eta,
            mu,
            reg,
            velocities: Buffers::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for Momentum<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::of(
            Scalars::Momentum,
            &[("momentum.velocity", &self.velocities)],
        )
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        let sizes = state.sizes_for("momentum", g, params)?;
        self.velocities = Buffers::load(
            &mut state.buffers,
            "momentum.velocity",
            &sizes,
            "momentum's velocities",
        )?;
        no_more(&state)
    }

    fn begin_epoch(&mut self, params: &[Var], _weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)?;
        if !(0.0..1.0).contains(&self.mu) {
            return Err(NnError::Config(format!(
                "the momentum coefficient must be in [0, 1), got {}",
                self.mu
            )));
        }
        self.velocities.begin(params.len());
        Ok(())
    }

    fn regularization(&self) -> Regularization {
        self.reg
    }

    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()> {
        let (eta, mu) = (T::of(self.eta), T::of(self.mu));
        let c = if p.decayed {
            T::of(self.reg.decay_gradient())
        } else {
            T::zero()
        };
        let (v, w) = (self.velocities.get(p.index, p.value.len())?, p.value);
        match p.grad {
            Some(gr) => {
                for ((v, w), &d) in v.iter_mut().zip(w.iter_mut()).zip(gr) {
                    *v = mu * *v - eta * (d + c * *w);
                    *w += *v;
                }
            }
            None => {
                for (v, w) in v.iter_mut().zip(w.iter_mut()) {
                    *v = mu * *v - eta * c * *w;
                    *w += *v;
                }
            }
        }
        Ok(())
    }
}
