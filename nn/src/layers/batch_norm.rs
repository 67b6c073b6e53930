//! Batch normalisation, with the running statistics evaluation uses.

use crate::{Activation, Ctx, Layer, LayerKind, Mode, NnError, Result};
use autograd::{BatchStats, Graph, Var};
use tensor::{Float, Tensor};

/// Batch normalisation (Ioffe and Szegedy 2015) over the features of `[N, C]` or the
/// channels of `[N, C, H, W]`, then an activation: `act(gamma (x - mean) / sqrt(var + eps) +
/// beta)`. In training the statistics are the mini-batch's (biased variance) and a running
/// average of them is kept (`momentum` 0.1, unbiased variance, as PyTorch); in evaluation the
/// running averages are used. The running averages are frozen parameters of the graph, so
/// checkpoints and saved networks carry them.
pub struct BatchNorm {
    /// Scale `[C]`, initially ones.
    pub gamma: Var,
    /// Shift `[C]`, initially zeros.
    pub beta: Var,
    /// Running mean `[C]` (frozen: no gradient).
    pub running_mean: Var,
    /// Running variance `[C]` (frozen: no gradient).
    pub running_var: Var,
    channels: usize,
    eps: f64,
    momentum: f64,
    activation: Activation,
}

impl BatchNorm {
    /// A batch norm of `channels` features or channels with PyTorch's defaults (eps 1e-5,
    /// momentum 0.1).
    pub fn new<T: Float>(
        g: &mut Graph<T>,
        name: &str,
        channels: usize,
        activation: Activation,
    ) -> Result<Self> {
        if channels == 0 {
            return Err(NnError::Config(format!(
                "batch norm {name}: needs at least one channel"
            )));
        }
        let ones = Tensor::full(&[channels], T::one())?;
        let zeros = Tensor::zeros(&[channels])?;
        let gamma = g.parameter(format!("{name}.gamma"), ones.clone());
        let beta = g.parameter(format!("{name}.beta"), zeros.clone());
        let running_mean = g.parameter(format!("{name}.running_mean"), zeros);
        let running_var = g.parameter(format!("{name}.running_var"), ones);
        g.set_frozen(running_mean, true)?;
        g.set_frozen(running_var, true)?;
        Ok(BatchNorm {
            gamma,
            beta,
            running_mean,
            running_var,
            channels,
            eps: 1e-5,
            momentum: 0.1,
            activation,
        })
    }

    /// Folds one mini-batch's statistics into the running averages.
    fn track<T: Float>(&self, g: &mut Graph<T>, stats: &BatchStats) -> Result<()> {
        let m = self.momentum;
        let unbias = stats.count as f64 / (stats.count.max(2) - 1) as f64;
        for (stat, batch, factor) in [
            (self.running_mean, &stats.mean, 1.0),
            (self.running_var, &stats.var, unbias),
        ] {
            for (r, b) in g.param_mut(stat)?.data_mut().iter_mut().zip(batch) {
                *r = T::of((1.0 - m) * r.f64() + m * factor * b);
            }
        }
        Ok(())
    }
}

impl<T: Float> Layer<T> for BatchNorm {
    fn forward(&self, g: &mut Graph<T>, x: Var, cx: &mut Ctx<'_>) -> Result<Var> {
        let s = g.value(x)?.shape();
        if s.ndim() < 2 || s[1] != self.channels {
            return Err(NnError::Config(format!(
                "{} got a batch of shape {:?}",
                Layer::<T>::describe(self),
                s.dims()
            )));
        }
        // One fused op (statistics, normalisation, activation), tested against the same
        // computation as graph ops in autograd: a dozen passes over the batch fewer.
        let act = self.activation.kernel();
        if cx.mode == Mode::Train {
            let (y, stats) = g.batch_norm(x, self.gamma, self.beta, self.eps, act)?;
            self.track(g, &stats)?;
            Ok(y)
        } else {
            let stat = |v: Var| -> Result<Vec<f64>> {
                Ok(g.value(v)?.data().iter().map(|e| e.f64()).collect())
            };
            let (mean, var) = (stat(self.running_mean)?, stat(self.running_var)?);
            Ok(g.batch_norm_with(x, self.gamma, self.beta, (&mean, &var), self.eps, act)?)
        }
    }
    fn weights(&self) -> Vec<Var> {
        vec![self.gamma]
    }
    fn biases(&self) -> Vec<Var> {
        vec![self.beta]
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input.first() {
            Some(&c) if c == self.channels && matches!(input.len(), 1 | 3) => Ok(input.to_vec()),
            _ => Err(NnError::Config(format!(
                "{} needs [{c}] or [{c}, height, width] input, but the previous layer gives {input:?}",
                Layer::<T>::describe(self),
                c = self.channels
            ))),
        }
    }
    fn describe(&self) -> String {
        format!("BatchNorm({}, {})", self.channels, self.activation.name())
    }
    fn kind(&self) -> LayerKind {
        LayerKind::BatchNorm
    }
}
