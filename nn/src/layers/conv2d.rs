//! A padded, strided convolution, the one that came after the book's conv-pool layer, with
//! an optional max-pool fused after it.

use super::image_dims;
use crate::memory::{mul, product, tasks, Footprint};
use crate::{Activation, Ctx, Init, Layer, LayerKind, Mode, NnError, Result};
use autograd::{Graph, Var};
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
    pool: Option<usize>,
    activation: Activation,
}

/// How a [`Conv2d`] convolves, besides its filter shape. The default is the `--layers`
/// grammar's (`conv2d:FxKxK` with no options): no padding, stride 1, a bias, no activation,
/// He initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Zeros added on every side of the image.
    pub pad: usize,
    /// Step between windows.
    pub stride: usize,
    /// Whether the layer has biases (not before a batch norm, which cancels them).
    pub bias: bool,
    /// Applied to the convolution's (or the pool's) output.
    pub activation: Activation,
    /// Draws the filters, with fan-in `c*kh*kw`.
    pub init: Init,
    /// A max-pool of `k x k` windows after the convolution (stride 1 only), fused with it:
    /// each image is convolved and pooled while its convolution output is in cache, the
    /// same values and gradients as a [`MaxPool2d`](crate::MaxPool2d) layer after it.
    pub pool: Option<usize>,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            pad: 0,
            stride: 1,
            bias: true,
            activation: Activation::Identity,
            init: Init::He,
            pool: None,
        }
    }
}

impl Conv2d {
    /// `filter = [f, c, kh, kw]`; weights drawn by `config.init` with fan-in `c*kh*kw`, biases
    /// zero.
    pub fn new<T: Float, R: Rng + ?Sized>(
        g: &mut Graph<T>,
        name: &str,
        filter: [usize; 4],
        config: Conv2dConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let Conv2dConfig {
            pad,
            stride,
            bias,
            activation,
            init,
            pool,
        } = config;
        if filter.contains(&0) || stride == 0 || pool == Some(0) {
            return Err(NnError::Config(format!(
                "conv2d layer {name}: filter {filter:?}, stride {stride} and pool {pool:?} must be positive"
            )));
        }
        if pool.is_some() && stride != 1 {
            return Err(NnError::Config(format!(
                "conv2d layer {name}: a fused pool needs stride 1, not {stride} (add a pool layer after it instead)"
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
            pool,
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
        if let Some(k) = self.pool {
            let (act, first) = (self.activation.kernel(), tensor::pool::PoolGrad::First);
            return Ok(g.conv2d_pool(x, self.w, self.b, self.pad, k, act, first)?);
        }
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
        let k = self.pool.unwrap_or(1);
        match (side(h, kh), side(w, kw)) {
            (Some(oh), Some(ow)) if ic == c && oh >= k && ow >= k => Ok(vec![f, oh / k, ow / k]),
            (Some(oh), Some(ow)) if ic == c => Err(NnError::Config(format!(
                "{}: a {k}x{k} pool does not fit its {oh}x{ow} convolution output",
                Layer::<T>::describe(self)
            ))),
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
        // The convolution's positions (before a fused pool).
        let k = self.pool.unwrap_or(1) as u128;
        let sp = product(&out[1..]).saturating_mul(k * k);
        let t = tasks(batch);
        // The convolution's output, and the activation's when it has one; a fused pool
        // keeps only its own output (activated in place) and each window's argmax.
        let ops = if self.activation == Activation::Identity || self.pool.is_some() {
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
            index_bytes: if self.pool.is_some() {
                outputs.saturating_mul(4)
            } else {
                0
            },
        }
    }
    fn describe(&self) -> String {
        let [f, c, kh, kw] = self.filter;
        let bias = if self.b.is_some() { "" } else { ", no bias" };
        let pool = self
            .pool
            .map_or(String::new(), |k| format!(", pool {k}x{k}"));
        format!(
            "Conv2d({f}x{c}x{kh}x{kw}, padding {}, stride {}{bias}{pool}, {})",
            self.pad,
            self.stride,
            self.activation.name()
        )
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Conv2d
    }
}
