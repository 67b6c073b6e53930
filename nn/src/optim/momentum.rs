use super::state::{no_more, Buffers};
use super::{check_eta, Optimizer, OptimizerState, ParamStep, Regularization, Scalars};
use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// Momentum-based gradient descent (chapter 3): each parameter keeps a velocity,
/// `v <- mu*v - eta*grad`, `w <- w + v`; `mu = 0` is plain SGD. Under network2's weight decay
/// the gradient includes `(lmbda/n) w`, as the decay is that term's step.
///
/// With `nesterov`, the step looks ahead along the velocity (Sutskever et al. 2013):
/// `v <- mu*v - eta*grad`, `w <- w + mu*v - eta*grad`, which is PyTorch's
/// `SGD(nesterov=True)` while `eta` is constant.
#[derive(Debug, Clone)]
pub struct Momentum<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// The momentum coefficient mu (the book's "friction" is `1 - mu`).
    pub mu: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    /// Nesterov's look-ahead step.
    pub nesterov: bool,
    velocities: Buffers<T>,
}

impl<T: Float> Momentum<T> {
    /// Momentum SGD at `eta` with coefficient `mu` and `reg`, velocities starting at zero.
    pub fn new(eta: f64, mu: f64, reg: Regularization) -> Self {
        Momentum {
            eta,
            mu,
            reg,
            nesterov: false,
            velocities: Buffers::default(),
        }
    }

    /// Nesterov momentum at `eta` with coefficient `mu` and `reg`.
    pub fn nesterov(eta: f64, mu: f64, reg: Regularization) -> Self {
        Momentum {
            nesterov: true,
            ..Momentum::new(eta, mu, reg)
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
        // Nesterov's look-ahead takes the new velocity's next step, mu*v, with this one.
        let ahead = if self.nesterov { mu } else { T::one() };
        let minus = if self.nesterov { T::one() } else { T::zero() };
        match p.grad {
            Some(gr) => {
                for ((v, w), &d) in v.iter_mut().zip(w.iter_mut()).zip(gr) {
                    let step = eta * (d + c * *w);
                    *v = mu * *v - step;
                    *w += ahead * *v - minus * step;
                }
            }
            None => {
                for (v, w) in v.iter_mut().zip(w.iter_mut()) {
                    let step = eta * c * *w;
                    *v = mu * *v - step;
                    *w += ahead * *v - minus * step;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::Tensor;

    /// `w` after each of `n` steps on `sum (w - 3)^2`-like gradients `2 w` from w = 1.
    fn path(mut opt: Momentum<f64>, n: usize) -> Vec<f64> {
        let mut g = Graph::new();
        let w = g.parameter("w", Tensor::from_vec(vec![1.0], &[1]).unwrap());
        opt.begin_epoch(&[w], &[w]).unwrap();
        (0..n)
            .map(|_| {
                let loss = g.sum_squares(w).unwrap();
                opt.step(&mut g, loss, &[w], &[w]).unwrap();
                g.reset();
                g.value(w).unwrap().data()[0]
            })
            .collect()
    }

    #[test]
    fn nesterov_is_pytorchs_sgd_with_nesterov() {
        // PyTorch, written out: b <- mu b + grad; w <- w - lr (grad + mu b).
        let (lr, mu) = (0.1, 0.9);
        let (mut w, mut b) = (1.0f64, 0.0f64);
        let mut want = Vec::new();
        for _ in 0..6 {
            let grad = 2.0 * w;
            b = mu * b + grad;
            w -= lr * (grad + mu * b);
            want.push(w);
        }
        let got = path(Momentum::nesterov(lr, mu, Regularization::None), 6);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-14, "{got:?} vs {want:?}");
        }
        // Plain momentum takes another path (the look-ahead matters).
        let plain = path(Momentum::new(lr, mu, Regularization::None), 6);
        assert!((plain[1] - want[1]).abs() > 1e-3);
    }
}
