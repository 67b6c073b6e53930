//! network3's conv-pool layer: a valid convolution, a max-pool, then bias and activation.

use crate::memory::{mul, product, tasks, Footprint};
use crate::{Activation, Ctx, Init, Layer, LayerKind, Mode, NnError, Result};
use autograd::{Graph, Var};
use rand::Rng;
use tensor::pool::PoolGrad;
use tensor::Float;

/// network3's `ConvPoolLayer`: valid convolution (no bias), then `pool x pool` max-pooling,
/// then `activation(pooled + b)` with one bias per filter.
pub struct ConvPool {
    /// Filters `[n_filters, channels, h, w]`.
    pub w: Var,
    /// Biases `[n_filters]`.
    pub b: Var,
    filter: [usize; 4],
    pool: usize,
    activation: Activation,
    /// Where the pool's gradient goes at ties (network3's Theano: every tied maximum).
    pub pool_grad: PoolGrad,
}

impl ConvPool {
    /// A new layer with filters `[n_filters, channels, h, w]`; weights N(0, 1/n_out) with
    /// `n_out = n_filters*h*w / pool^2` and biases N(0, 1), as network3 draws them.
    pub fn new<T: Float, R: Rng + ?Sized>(
        g: &mut Graph<T>,
        name: &str,
        filter: [usize; 4],
        pool: usize,
        activation: Activation,
        rng: &mut R,
    ) -> Result<Self> {
        if filter.contains(&0) || pool == 0 {
            return Err(NnError::Config(format!(
                "conv-pool layer {name}: filter {filter:?} and pool {pool} must be positive"
            )));
        }
        let [f, c, h, w] = filter;
        // Checked: the layer may be built directly, without Network's size check first.
        let fans = (
            c.checked_mul(h).and_then(|v| v.checked_mul(w)),
            f.checked_mul(h)
                .and_then(|v| v.checked_mul(w))
                .zip(pool.checked_mul(pool))
                .map(|(n, p)| n / p),
        );
        let (Some(n_in), Some(n_out)) = fans else {
            return Err(NnError::Config(format!(
                "conv-pool layer {name}: filter {filter:?} with pool {pool} is too large"
            )));
        };
        let wt = Init::ScaledByOutputs.weights(&filter, n_in, n_out.max(1), rng)?;
        let w = g.parameter(format!("{name}.w"), wt);
        let b = g.parameter(format!("{name}.b"), Init::Large.biases(f, rng)?);
        Ok(ConvPool {
            w,
            b,
            filter,
            pool,
            activation,
            pool_grad: PoolGrad::First,
        })
    }
}

impl<T: Float> Layer<T> for ConvPool {
    fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> Result<Var> {
        let s = g.value(x)?.shape();
        let [_, c, h, w] = self.filter;
        // Accept [batch, c*h*w] as well as NCHW (MNIST mini-batches arrive flat).
        let x = if s.ndim() == 2 {
            let side = ((s[1] / c) as f64).sqrt() as usize;
            if side * side * c != s[1] {
                return Err(NnError::Config(format!(
                    "conv-pool: cannot view {} inputs as {c} square channels",
                    s[1]
                )));
            }
            g.reshape(x, &[s[0], c, side, side])?
        } else {
            x
        };
        let _ = (h, w);
        // One fused op: conv, pool, + bias, activation (the same as composing g.conv2d,
        // g.max_pool2d, g.add and the activation, tested against it).
        let act = self.activation.kernel();
        Ok(g.conv_pool(x, self.w, self.b, self.pool, act, self.pool_grad)?)
    }
    fn weights(&self) -> Vec<Var> {
        vec![self.w]
    }
    fn biases(&self) -> Vec<Var> {
        vec![self.b]
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let [f, c, h, w] = self.filter;
        let (ic, ih, iw) = match *input {
            [ic, ih, iw] => (ic, ih, iw),
            [n] => {
                let side = ((n / c.max(1)) as f64).sqrt() as usize;
                (c, side, if side * side * c == n { side } else { 0 })
            }
            _ => (0, 0, 0),
        };
        if ic != c || ih < h || iw < w {
            return Err(NnError::Config(format!(
                "{} needs {c} channels of at least {h}x{w}, but the previous layer gives {input:?}",
                Layer::<T>::describe(self)
            )));
        }
        let (oh, ow) = (ih - h + 1, iw - w + 1);
        let p = self.pool;
        if oh / p == 0 || ow / p == 0 {
            return Err(NnError::Config(format!(
                "{}: a {p}x{p} pool of its {oh}x{ow} convolution output would leave nothing",
                Layer::<T>::describe(self)
            )));
        }
        // The fused op stores each window's argmax as a 32-bit index into one image's
        // convolution output.
        if oh
            .checked_mul(ow)
            .and_then(|s| s.checked_mul(f))
            .is_none_or(|n| u32::try_from(n).is_err())
        {
            return Err(NnError::Config(format!(
                "{}: one image's {f}x{oh}x{ow} convolution output is past the 2^32 values its pool indexes",
                Layer::<T>::describe(self)
            )));
        }
        Ok(vec![f, oh / p, ow / p])
    }
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> Footprint {
        let Ok(out) = Layer::<T>::output_dims(self, input) else {
            return Footprint::default();
        };
        let [f, c, kh, kw] = self.filter;
        // The unpooled convolution's side: from the input when it is an image, else (flat
        // input viewed as one) from the pooled side.
        let (oh, ow) = match *input {
            [_, h, w] => (h + 1 - kh, w + 1 - kw),
            _ => (out[1] * self.pool, out[2] * self.pool),
        };
        let [f, ckk, sp, t] = [f, c * kh * kw, oh * ow, 0].map(|v| v as u128);
        let t = t.max(tasks(batch));
        let outputs = product(&out).saturating_mul(batch);
        // The op keeps the whole batch's im2col columns for its backward (in evaluation they
        // are made all the same and go back to the pool).
        let cols = mul(&[batch, ckk, sp]);
        let forward = mul(&[t, f, sp]);
        let scratch = match mode {
            Mode::Train => {
                let per_task = mul(&[f, ckk]) + f + mul(&[f, sp]) + mul(&[ckk, sp]);
                forward + mul(&[t, per_task]) + mul(&[f, ckk]) + f
            }
            Mode::Eval => forward.saturating_add(cols),
        };
        Footprint {
            kept: outputs
                .saturating_mul(mode.copies())
                .saturating_add(match mode {
                    Mode::Train => cols,
                    Mode::Eval => 0,
                }),
            scratch,
            index_bytes: outputs.saturating_mul(4),
        }
    }
    fn describe(&self) -> String {
        let [f, c, h, w] = self.filter;
        let ties = match self.pool_grad {
            PoolGrad::First => "",
            PoolGrad::Ties => ", gradient to tied maxima",
        };
        format!(
            "ConvPool({f}x{c}x{h}x{w}, pool {p}x{p}, {}{ties})",
            self.activation.name(),
            p = self.pool
        )
    }
    fn kind(&self) -> LayerKind {
        LayerKind::ConvPool
    }
}
