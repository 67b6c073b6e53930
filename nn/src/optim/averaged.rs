use super::state::Buffers;
use super::{Optimizer, OptimizerState, ParamStep, Regularization, Scalars};
use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// Another optimiser's steps, plus an exponential moving average of every parameter for
/// evaluation (Polyak averaging, as timm's `ModelEmaV2` or PyTorch's `AveragedModel` with an
/// EMA): after each step `a <- d a + (1-d) w` with `d = min(decay, (1+t)/(10+t))`, `t` the
/// steps before it, so that early on the average follows the weights rather than their
/// random start. Batch norm's running statistics (frozen parameters) are averaged alike, so the
/// average is a whole network. [`Optimizer::swap_averaged`] puts it in the graph to evaluate
/// or save, and back out to train on.
pub struct Averaged<T: Float> {
    /// The optimiser whose weights are averaged.
    pub inner: Box<dyn Optimizer<T>>,
    /// The average's decay per step (0.999: a horizon of some thousand steps).
    pub decay: f64,
    average: Buffers<T>,
    /// Steps averaged.
    t: u64,
    /// Whether the graph holds the average now (between two swaps).
    swapped: bool,
}

impl<T: Float> Averaged<T> {
    /// `inner`'s steps with an average decaying by `decay` per step.
    pub fn new(inner: Box<dyn Optimizer<T>>, decay: f64) -> Self {
        Averaged {
            inner,
            decay,
            average: Buffers::default(),
            t: 0,
            swapped: false,
        }
    }
}

impl<T: Float> Optimizer<T> for Averaged<T> {
    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.inner.set_learning_rate(eta);
    }

    fn state(&self) -> OptimizerState<T> {
        let inner = self.inner.state();
        let scalars = Scalars::Averaged {
            inner: inner.scalars.map(Box::new),
            t: self.t,
        };
        let mut state = OptimizerState::of(scalars, &[]);
        state.buffers = inner.buffers;
        self.average.save("average", &mut state.buffers);
        state
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        // The average covers every parameter of the graph, frozen statistics included.
        let all: Vec<Var> = g.parameters().collect();
        let sizes = state.sizes_for("averaged", g, &all)?;
        let average = Buffers::load(&mut state.buffers, "average", &sizes, "the weight average")?;
        let (inner, t) = match state.scalars {
            Some(Scalars::Averaged { inner, t }) => (inner.map(|b| *b), t),
            _ => (None, 0),
        };
        if (t > 0) != average.all_full(&sizes) {
            return Err(NnError::Config(format!(
                "the weight average after {t} steps holds {} of {} parameters: the state is damaged",
                average.per_param.iter().filter(|b| !b.is_empty()).count(),
                sizes.len()
            )));
        }
        let inner = OptimizerState {
            scalars: inner,
            buffers: state.buffers,
        };
        self.inner.set_state(inner, g, params)?;
        (self.average, self.t) = (average, t);
        Ok(())
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(NnError::Config(format!(
                "the weight average's decay must be in [0, 1), got {}",
                self.decay
            )));
        }
        if self.swapped {
            return Err(NnError::Config(
                "training with the weight average swapped in: swap it back first".into(),
            ));
        }
        self.inner.begin_epoch(params, weights)
    }

    fn regularization(&self) -> Regularization {
        self.inner.regularization()
    }

    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()> {
        self.inner.update(p)
    }

    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        self.inner.step(g, loss, params, weights)?;
        let d = self.decay.min((1 + self.t) as f64 / (10 + self.t) as f64);
        let (d, rest) = (T::of(d), T::of(1.0 - d));
        let all: Vec<Var> = g.parameters().collect();
        self.average.begin(all.len());
        for (k, p) in all.into_iter().enumerate() {
            let w = g.value(p)?.data();
            let a = &mut self.average.per_param[k];
            if a.is_empty() {
                // A fresh average starts at the weights: the first step's average is them.
                a.extend_from_slice(w);
            } else if a.len() != w.len() {
                return Err(NnError::Config(format!(
                    "the weight average: parameter {k} has {} values saved for {}",
                    a.len(),
                    w.len()
                )));
            }
            for (a, &w) in a.iter_mut().zip(w) {
                *a = d * *a + rest * w;
            }
        }
        self.t += 1;
        Ok(())
    }

    fn swap_averaged(&mut self, g: &mut Graph<T>) -> Result<bool> {
        if self.t == 0 {
            return Ok(false);
        }
        let all: Vec<Var> = g.parameters().collect();
        if all.len() != self.average.per_param.len() {
            return Err(NnError::Config(format!(
                "the weight average holds {} parameters, the network {}",
                self.average.per_param.len(),
                all.len()
            )));
        }
        // Checked whole before anything moves: a failed swap leaves both sides as they were.
        for (&p, a) in all.iter().zip(&self.average.per_param) {
            let n = g.value(p)?.numel();
            if n != a.len() {
                return Err(NnError::Config(format!(
                    "the weight average has {} values for a parameter of {n}",
                    a.len()
                )));
            }
        }
        for (p, a) in all.into_iter().zip(&mut self.average.per_param) {
            g.param_mut(p)?.data_mut().swap_with_slice(a);
        }
        self.swapped = !self.swapped;
        Ok(true)
    }
}
