//! The one-cycle learning-rate schedule, set before every step.

use super::{Optimizer, OptimizerState, ParamStep, Regularization, Scalars};
use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// Another optimiser with its learning rate set before every step: a linear rise from 0 to
/// `peak` over the first `warmup` of `total` steps, then a linear fall to 0 at step `total`
/// (Smith's one-cycle policy as the fast CIFAR-10 and MNIST runs use it; PyTorch's
/// `OneCycleLR` with `anneal_strategy="linear"`, `three_phase=False`, and no floor).
///
/// The rate of step `t` (from 0) is `peak * (t + 1) / warmup` while `t < warmup`, then
/// `peak * (total - t) / (total - warmup)`, so the last step of the run still moves the
/// weights and none is taken at rate 0. Steps past `total` are an error: the schedule was
/// sized for the run.
///
/// ```
/// use nndl_nn::{OneCycle, Optimizer, Regularization, Sgd};
///
/// let mut opt = OneCycle::<f64>::new(Box::new(Sgd::new(1.0, Regularization::None)), 0.4, 2, 6)?;
/// let rates: Vec<f64> = (0..6).map(|t| opt.rate_at(t)).collect();
/// assert_eq!(rates, [0.2, 0.4, 0.4, 0.30000000000000004, 0.2, 0.1]);
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
pub struct OneCycle<T: Float> {
    inner: Box<dyn Optimizer<T>>,
    peak: f64,
    warmup: usize,
    total: usize,
    t: usize,
}

impl<T: Float> OneCycle<T> {
    /// `inner` on the schedule: `warmup` of `total` steps rising to `peak`.
    pub fn new(
        inner: Box<dyn Optimizer<T>>,
        peak: f64,
        warmup: usize,
        total: usize,
    ) -> Result<Self> {
        if total == 0 || warmup > total || !(peak.is_finite() && peak > 0.0) {
            return Err(NnError::Config(format!(
                "one-cycle: {warmup} warm-up steps of {total} up to rate {peak}: needs a positive \
                 peak and 0 <= warm-up <= total, total >= 1"
            )));
        }
        Ok(OneCycle {
            inner,
            peak,
            warmup,
            total,
            t: 0,
        })
    }

    /// The learning rate of step `t` (counting from 0).
    pub fn rate_at(&self, t: usize) -> f64 {
        if t < self.warmup {
            self.peak * (t + 1) as f64 / self.warmup as f64
        } else {
            let fall = (self.total - self.warmup).max(1) as f64;
            self.peak * self.total.saturating_sub(t) as f64 / fall
        }
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.t
    }
}

impl<T: Float> Optimizer<T> for OneCycle<T> {
    /// The peak: what a checkpoint saves and [`Optimizer::set_learning_rate`] restores (the
    /// schedule sets each step's rate from it).
    fn learning_rate(&self) -> f64 {
        self.peak
    }

    /// Sets the peak.
    fn set_learning_rate(&mut self, eta: f64) {
        self.peak = eta;
    }

    fn state(&self) -> OptimizerState<T> {
        let inner = self.inner.state();
        OptimizerState {
            scalars: Some(Scalars::OneCycle {
                inner: inner.scalars.map(Box::new),
                t: self.t as u64,
            }),
            buffers: inner.buffers,
        }
    }

    fn set_state(&mut self, state: OptimizerState<T>, g: &Graph<T>, params: &[Var]) -> Result<()> {
        let Some(Scalars::OneCycle { inner, t }) = state.scalars else {
            return Err(NnError::Config(
                "the saved optimiser state is not a one-cycle schedule's: resume with the same optimiser".into(),
            ));
        };
        let t = usize::try_from(t)
            .ok()
            .filter(|&t| t <= self.total)
            .ok_or_else(|| {
                NnError::Config(format!(
                    "the saved one-cycle schedule is at step {t} of a {}-step run",
                    self.total
                ))
            })?;
        let inner = OptimizerState {
            scalars: inner.map(|b| *b),
            buffers: state.buffers,
        };
        self.inner.set_state(inner, g, params)?;
        self.t = t;
        Ok(())
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        self.inner.begin_epoch(params, weights)
    }

    fn regularization(&self) -> Regularization {
        self.inner.regularization()
    }

    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()> {
        self.inner.update(p)
    }

    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        if self.t >= self.total {
            return Err(NnError::Config(format!(
                "one-cycle: step {} of a schedule sized for {}",
                self.t + 1,
                self.total
            )));
        }
        self.inner.set_learning_rate(self.rate_at(self.t));
        self.inner.step(g, loss, params, weights)?;
        self.t += 1;
        Ok(())
    }

    fn swap_averaged(&mut self, g: &mut Graph<T>) -> Result<bool> {
        self.inner.swap_averaged(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Momentum, Sgd};
    use tensor::Tensor;

    #[test]
    fn each_step_takes_the_scheduled_rate() {
        // SGD on sum w^2 from w = 1: w <- w (1 - 2 eta_t), eta_t the schedule's.
        let mut opt =
            OneCycle::<f64>::new(Box::new(Sgd::new(9.0, Regularization::None)), 0.1, 3, 10)
                .unwrap();
        let mut g = Graph::new();
        let w = g.parameter("w", Tensor::from_vec(vec![1.0], &[1]).unwrap());
        opt.begin_epoch(&[w], &[w]).unwrap();
        let mut want = 1.0;
        for t in 0..10 {
            let eta = opt.rate_at(t);
            let loss = g.sum_squares(w).unwrap();
            opt.step(&mut g, loss, &[w], &[w]).unwrap();
            g.reset();
            want *= 1.0 - 2.0 * eta;
            assert!(
                (g.value(w).unwrap().data()[0] - want).abs() < 1e-15,
                "step {t}"
            );
        }
        let rates: Vec<f64> = (0..10).map(|t| opt.rate_at(t)).collect();
        assert!((rates[2] - 0.1).abs() < 1e-15 && rates[0] > 0.0 && rates[9] > 0.0);
        assert!(rates.windows(2).take(2).all(|p| p[1] > p[0]));
        assert!(rates.windows(2).skip(2).all(|p| p[1] < p[0]));
        // An 11th step overruns the schedule.
        let loss = g.sum_squares(w).unwrap();
        assert!(opt.step(&mut g, loss, &[w], &[w]).is_err());
    }

    #[test]
    fn state_round_trips_and_refuses_a_foreign_one() {
        let mut g = Graph::<f64>::new();
        let w = g.parameter("w", Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let mk = || {
            OneCycle::<f64>::new(
                Box::new(Momentum::new(0.1, 0.9, Regularization::None)),
                0.1,
                2,
                8,
            )
            .unwrap()
        };
        let mut a = mk();
        a.begin_epoch(&[w], &[w]).unwrap();
        for _ in 0..3 {
            let loss = g.sum_squares(w).unwrap();
            a.step(&mut g, loss, &[w], &[w]).unwrap();
            g.reset();
        }
        let mut b = mk();
        b.set_state(a.state(), &g, &[w]).unwrap();
        assert_eq!(b.steps(), 3);
        assert_eq!(b.state(), a.state());
        let json = a.state().scalars_json();
        assert_eq!(json["optimizer"], "one_cycle");
        assert!(mk()
            .set_state(
                Momentum::<f64>::new(0.1, 0.9, Regularization::None).state(),
                &g,
                &[w]
            )
            .is_err());
        assert!(
            OneCycle::<f64>::new(Box::new(Sgd::new(0.1, Regularization::None)), 0.1, 9, 8).is_err()
        );
    }
}
