use super::state::{no_more, Buffers};
use super::{check_eta, Optimizer, OptimizerState, ParamStep, Scalars};
use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// Adam (Kingma and Ba, 2015) as PyTorch's `Adam`/`AdamW`: per parameter the moving averages
/// `m <- b1 m + (1-b1) g` and `v <- b2 v + (1-b2) g^2`, and the step
/// `w <- w - eta (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`. Weight decay applies to the
/// weights (not the biases): added to the gradient (`Adam`'s L2) or, `decoupled`, as
/// `w <- w - eta wd w` before the step (`AdamW`).
#[derive(Debug, Clone)]
pub struct Adam<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// Decay of the first moment's average.
    pub beta1: f64,
    /// Decay of the second moment's average.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Weight decay of the weights.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) rather than L2 in the gradient.
    pub decoupled: bool,
    m: Buffers<T>,
    v: Buffers<T>,
    /// Steps taken.
    t: u64,
}

impl<T: Float> Adam<T> {
    /// Adam at `eta` with PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8, no weight decay).
    pub fn new(eta: f64) -> Self {
        Adam {
            eta,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            m: Buffers::default(),
            v: Buffers::default(),
            t: 0,
        }
    }

    /// AdamW: Adam with decoupled weight decay `wd` of the weights.
    pub fn adamw(eta: f64, wd: f64) -> Self {
        Adam {
            weight_decay: wd,
            decoupled: true,
            ..Adam::new(eta)
        }
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn state(&self) -> OptimizerState<T> {
        let scalars = Scalars::Adam { t: self.t };
        OptimizerState::of(scalars, &[("adam.m", &self.m), ("adam.v", &self.v)])
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        let sizes = state.sizes_for("adam", g, params)?;
        let m = Buffers::load(&mut state.buffers, "adam.m", &sizes, "Adam's first moments")?;
        let v = Buffers::load(
            &mut state.buffers,
            "adam.v",
            &sizes,
            "Adam's second moments",
        )?;
        let t = match state.scalars {
            Some(Scalars::Adam { t }) => t,
            _ => 0,
        };
        no_more(&state)?;
        // Both moments start at a parameter's first gradient, and the second is a mean of
        // squares; a state where they disagree was not written by a step.
        let pairs_agree = m.per_param.len() == v.per_param.len()
            && m.per_param
                .iter()
                .zip(&v.per_param)
                .all(|(a, b)| a.len() == b.len());
        let steps_agree = (t == 0) == m.per_param.iter().all(Vec::is_empty);
        if !pairs_agree || !steps_agree || v.per_param.iter().flatten().any(|&x| x < T::zero()) {
            return Err(NnError::Config(format!(
                "Adam's saved moments do not belong together (step count {t}): the state is damaged"
            )));
        }
        (self.m, self.v, self.t) = (m, v, t);
        Ok(())
    }

    fn begin_epoch(&mut self, params: &[Var], _weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)?;
        let unit = |x: f64| (0.0..1.0).contains(&x);
        let ok = unit(self.beta1)
            && unit(self.beta2)
            && self.eps > 0.0
            && self.eps.is_finite()
            && (0.0..f64::INFINITY).contains(&self.weight_decay);
        if !ok {
            return Err(NnError::Config(format!(
                "Adam needs betas in [0, 1), eps > 0 and weight decay >= 0, got {}, {}, {}, {}",
                self.beta1, self.beta2, self.eps, self.weight_decay
            )));
        }
        self.m.begin(params.len());
        self.v.begin(params.len());
        Ok(())
    }

    fn begin_step(&mut self) {
        self.t += 1;
    }

    /// A parameter the loss does not reach is left alone, as PyTorch does.
    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()> {
        let Some(grad) = p.grad else { return Ok(()) };
        let t = self.t.min(i32::MAX as u64) as i32;
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let (step, root_c2) = (T::of(self.eta / c1), T::of(c2.sqrt()));
        let eps = T::of(self.eps);
        let wd = if p.decayed {
            T::of(self.weight_decay)
        } else {
            T::zero()
        };
        let n = p.value.len();
        let (m, v) = (self.m.get(p.index, n)?, self.v.get(p.index, n)?);
        let shrink = T::one() - T::of(self.eta) * wd;
        for (((w, &d), m), v) in p.value.iter_mut().zip(grad).zip(m).zip(v) {
            let d = if self.decoupled { d } else { d + wd * *w };
            *m = b1 * *m + (T::one() - b1) * d;
            *v = b2 * *v + (T::one() - b2) * d * d;
            if self.decoupled {
                *w *= shrink;
            }
            *w -= step * *m / ((*v).sqrt() / root_c2 + eps);
        }
        Ok(())
    }
}
