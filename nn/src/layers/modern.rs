//! The layers the field added after the book, each a composition of graph ops (no gradient
//! code): a padded, strided [`Conv2d`], [`BatchNorm`], a standalone [`MaxPool2d`], inverted
//! [`Dropout`] and [`Flatten`].

use super::{dropout_input, DropoutStyle};
use crate::memory::{mul, product, tasks, Footprint};
use crate::{Activation, Ctx, Init, Layer, Mode, NnError, Result};
use autograd::{BatchStats, Graph, Var};
use rand::Rng;
use tensor::{Float, Tensor};

/// `[N, ...]` viewed as `[N, C, H, W]` when `dims` (one sample's shape) is `[C, H, W]`: MNIST
/// mini-batches arrive flat.
fn as_images<T: Float>(g: &mut Graph<T>, x: Var, chw: [usize; 3]) -> Result<Var> {
    let s = g.value(x)?.shape();
    let per: usize = chw.iter().product();
    if s.ndim() == 4 && s.dims()[1..] == chw {
        return Ok(x);
    }
    let n = s.dims().first().copied().unwrap_or(0);
    if s.numel() != n * per {
        return Err(NnError::Config(format!(
            "cannot view a batch of shape {:?} as images {chw:?}",
            s.dims()
        )));
    }
    Ok(g.reshape(x, &[n, chw[0], chw[1], chw[2]])?)
}

fn image_dims(what: &str, input: &[usize]) -> Result<[usize; 3]> {
    match *input {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(NnError::Config(format!(
            "{what} needs [channels, height, width] input, not the output of shape {input:?}"
        ))),
    }
}

/// A 2-D convolution with zero padding and stride, an optional bias and an activation:
/// PyTorch's `Conv2d(c, f, (kh, kw), stride, padding, bias)` followed by the activation.
pub struct Conv2d {
    /// Filters `[f, c, kh, kw]`.
    pub w: Var,
    /// Biases `[f]`, if the layer has them (not before a batch norm, which cancels them).
    pub b: Option<Var>,
    filter: [usize; 4],
    pad: usize,
    stride: usize,
    activation: Activation,
}

impl Conv2d {
    /// `filter = [f, c, kh, kw]`; weights drawn by `init` with fan-in `c*kh*kw`, biases zero.
    #[allow(clippy::too_many_arguments)]
    pub fn new<T: Float, R: Rng + ?Sized>(
        g: &mut Graph<T>,
        name: &str,
        filter: [usize; 4],
        pad: usize,
        stride: usize,
        bias: bool,
        activation: Activation,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if filter.contains(&0) || stride == 0 {
            return Err(NnError::Config(format!(
                "conv2d layer {name}: filter {filter:?} and stride {stride} must be positive"
            )));
        }
        let [f, c, kh, kw] = filter;
        // Checked: the layer may be built directly, without Network's size check first.
        let kk = kh.checked_mul(kw);
        let fans = (
            kk.and_then(|k| k.checked_mul(c)),
            kk.and_then(|k| k.checked_mul(f)),
        );
        let (Some(fan_in), Some(fan_out)) = fans else {
            return Err(NnError::Config(format!(
                "conv2d layer {name}: filter {filter:?} is too large"
            )));
        };
        let w = init.weights(&filter, fan_in, fan_out, rng)?;
        let w = g.parameter(format!("{name}.w"), w);
        let b =
            bias.then(|| g.parameter(format!("{name}.b"), Tensor::zeros(&[f]).unwrap_or_default()));
        Ok(Conv2d {
            w,
            b,
            filter,
            pad,
            stride,
            activation,
        })
    }
}

impl<T: Float> Layer<T> for Conv2d {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        let [_, c, _, _] = self.filter;
        let s = g.value(x)?.shape();
        let x = if s.ndim() == 4 {
            x
        } else {
            let per = s.numel() / s.dims().first().copied().unwrap_or(1).max(1);
            let side = ((per / c.max(1)) as f64).sqrt() as usize;
            as_images(g, x, [c, side, side])?
        };
        let y = g.conv2d_padded(x, self.w, self.b, self.pad, self.stride)?;
        self.activation.apply(g, y)
    }
    fn weights(&self) -> Vec<Var> {
        vec![self.w]
    }
    fn biases(&self) -> Vec<Var> {
        self.b.into_iter().collect()
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let [f, c, kh, kw] = self.filter;
        let [ic, h, w] = image_dims("a conv2d layer", input)?;
        let (p, s) = (self.pad, self.stride);
        let side = |size, k| tensor::conv::out_side(size, p, k, s);
        match (side(h, kh), side(w, kw)) {
            (Some(oh), Some(ow)) if ic == c => Ok(vec![f, oh, ow]),
            _ => Err(NnError::Config(format!(
                "{} needs {c} channels of at least {kh}x{kw} once padded by {p}, but the previous layer gives {input:?}",
                Layer::<T>::describe(self)
            ))),
        }
    }
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> Footprint {
        let Ok(out) = Layer::<T>::output_dims(self, input) else {
            return Footprint::default();
        };
        let [f, c, kh, kw] = self.filter;
        let (f, ckk) = (f as u128, (c * kh * kw) as u128);
        let sp = product(&out[1..]);
        let t = tasks(batch);
        // The convolution's output, and the activation's when it has one.
        let ops = if self.activation == Activation::Identity {
            1
        } else {
            2
        };
        let outputs = product(&out).saturating_mul(batch);
        // Per task, one image's im2col columns forward; backward, the partial filter and bias
        // gradients and the columns and their gradient (the backward unfolds again rather
        // than keep the batch's columns).
        let forward = mul(&[t, ckk, sp]);
        let scratch = match mode {
            Mode::Train => {
                let per_task = f * ckk + f + mul(&[2, ckk, sp]);
                forward.saturating_add(mul(&[t, per_task])) + f * ckk + f
            }
            Mode::Eval => forward,
        };
        Footprint {
            kept: mul(&[outputs, ops, mode.copies()]),
            scratch,
            index_bytes: 0,
        }
    }
    fn describe(&self) -> String {
        let [f, c, kh, kw] = self.filter;
        let bias = if self.b.is_some() { "" } else { ", no bias" };
        format!(
            "Conv2d({f}x{c}x{kh}x{kw}, padding {}, stride {}{bias}, {})",
            self.pad,
            self.stride,
            self.activation.name()
        )
    }
}

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
}

/// Max-pooling over non-overlapping `k x k` windows (leftover rows and columns dropped).
pub struct MaxPool2d {
    /// Window side (and stride).
    pub k: usize,
}

impl<T: Float> Layer<T> for MaxPool2d {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        Ok(g.max_pool2d(x, self.k)?)
    }
    fn weights(&self) -> Vec<Var> {
        Vec::new()
    }
    fn biases(&self) -> Vec<Var> {
        Vec::new()
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let [c, h, w] = image_dims("a max-pool layer", input)?;
        if self.k == 0 || h < self.k || w < self.k {
            return Err(NnError::Config(format!(
                "a {k}x{k} max-pool needs an image of at least {k}x{k}, not {input:?}",
                k = self.k
            )));
        }
        Ok(vec![c, h / self.k, w / self.k])
    }
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> Footprint {
        let outputs = match Layer::<T>::output_dims(self, input) {
            Ok(out) => product(&out).saturating_mul(batch),
            Err(_) => return Footprint::default(),
        };
        // The argmax of every window is kept for the backward (made in evaluation too).
        Footprint {
            kept: outputs.saturating_mul(mode.copies()),
            scratch: 0,
            index_bytes: outputs.saturating_mul(4),
        }
    }
    fn describe(&self) -> String {
        format!("MaxPool2d({k}x{k})", k = self.k)
    }
}

/// Inverted dropout: in training each value is zeroed with probability `p` and the kept ones
/// scaled by `1/(1-p)`; in evaluation the layer is the identity.
pub struct Dropout {
    /// Probability of dropping a value.
    pub p: f64,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)`.
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(NnError::Config(format!(
                "dropout probability {p} is not in [0, 1)"
            )));
        }
        Ok(Dropout { p })
    }
}

impl<T: Float> Layer<T> for Dropout {
    fn forward(&self, g: &mut Graph<T>, x: Var, cx: &mut Ctx<'_>) -> Result<Var> {
        dropout_input(g, x, self.p, DropoutStyle::Inverted, cx)
    }
    fn weights(&self) -> Vec<Var> {
        Vec::new()
    }
    fn biases(&self) -> Vec<Var> {
        Vec::new()
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> Footprint {
        // Training: the mask, the output and its gradient; evaluation: the identity.
        let kept = match mode {
            Mode::Train if self.p > 0.0 => product(input).saturating_mul(batch).saturating_mul(3),
            _ => 0,
        };
        Footprint {
            kept,
            ..Default::default()
        }
    }
    fn describe(&self) -> String {
        format!("Dropout({})", self.p)
    }
}

/// `[N, ...]` to `[N, product of the rest]`.
pub struct Flatten;

impl<T: Float> Layer<T> for Flatten {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        let s = g.value(x)?.shape();
        let n = s.dims().first().copied().unwrap_or(0);
        Ok(g.reshape(x, &[n, s.numel() / n.max(1)])?)
    }
    fn weights(&self) -> Vec<Var> {
        Vec::new()
    }
    fn biases(&self) -> Vec<Var> {
        Vec::new()
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let n = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        n.map(|n| vec![n]).ok_or_else(|| {
            NnError::Config(format!(
                "Flatten: {input:?} has more values than a usize counts"
            ))
        })
    }
    fn describe(&self) -> String {
        "Flatten".into()
    }
}
