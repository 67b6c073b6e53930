//! The book's fully connected layer, with network3's dropout of its input.

use super::dropout_input;
use crate::memory::{product, Footprint};
use crate::{Activation, Ctx, Init, Layer, LayerKind, Mode, NnError, Result};
use autograd::{Graph, Var};
use rand::Rng;
use tensor::Float;

/// Which dropout: network3's (mask in training, output `w.x` scaled by `1 - p` in
/// evaluation; the default) or modern inverted dropout (mask scaled by `1/(1-p)` in training,
/// nothing in evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropoutStyle {
    /// As network3.py.
    #[default]
    Network3,
    /// Inverted dropout.
    Inverted,
}

/// A fully connected layer `activation(x . w^T + b)`, `w` stored `[n_out, n_in]` as the book
/// and PyTorch store it, with optional dropout on its input.
pub struct FullyConnected {
    /// Weights `[n_out, n_in]`.
    pub w: Var,
    /// Biases `[n_out]`.
    pub b: Var,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    p_dropout: f64,
    style: DropoutStyle,
}

/// What a [`FullyConnected`] layer computes besides its sizes. The default is network3's
/// `FullyConnectedLayer`'s: sigmoid, weights N(0, 1/n_out), no dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FcConfig {
    /// Applied to `x . w^T + b`.
    pub activation: Activation,
    /// Draws the weights and biases.
    pub init: Init,
    /// Probability of dropping each input value in training (network3's dropout), in `[0, 1)`.
    pub p_dropout: f64,
}

impl Default for FcConfig {
    fn default() -> Self {
        FcConfig {
            activation: Activation::Sigmoid,
            init: Init::ScaledByOutputs,
            p_dropout: 0.0,
        }
    }
}

impl FullyConnected {
    /// A new `n_in -> n_out` layer with parameters named `{name}.w`, `{name}.b` on `g`.
    pub fn new<T: Float, R: Rng + ?Sized>(
        g: &mut Graph<T>,
        name: &str,
        n_in: usize,
        n_out: usize,
        config: FcConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let FcConfig {
            activation,
            init,
            p_dropout,
        } = config;
        if n_in == 0 || n_out == 0 {
            return Err(NnError::Config(format!(
                "fully connected layer {name}: sizes must be positive, got {n_in} -> {n_out}"
            )));
        }
        if !(0.0..1.0).contains(&p_dropout) {
            return Err(NnError::Config(format!(
                "layer {name}: dropout probability {p_dropout} is not in [0, 1)"
            )));
        }
        let w = g.parameter(
            format!("{name}.w"),
            init.weights(&[n_out, n_in], n_in, n_out, rng)?,
        );
        let b = g.parameter(format!("{name}.b"), init.biases(n_out, rng)?);
        Ok(FullyConnected {
            w,
            b,
            n_in,
            n_out,
            activation,
            p_dropout,
            style: DropoutStyle::Network3,
        })
    }

    /// Switches the dropout style.
    pub fn with_dropout_style(mut self, style: DropoutStyle) -> Self {
        self.style = style;
        self
    }

    /// Input size.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output size.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The dropout probability of its input.
    pub fn p_dropout(&self) -> f64 {
        self.p_dropout
    }
}

impl<T: Float> Layer<T> for FullyConnected {
    fn forward(&self, g: &mut Graph<T>, x: Var, cx: &mut Ctx<'_>) -> Result<Var> {
        let s = g.value(x)?.shape();
        // Flatten [batch, ...] to [batch, n_in] (a conv layer's output feeding this one).
        let x = if s.ndim() != 2 {
            let b = s.dims().first().copied().unwrap_or(1);
            g.reshape(x, &[b, s.numel() / b.max(1)])?
        } else {
            x
        };
        let scale_eval =
            self.p_dropout > 0.0 && cx.mode == Mode::Eval && self.style == DropoutStyle::Network3;
        let z = if scale_eval {
            // network3: activation((1 - p) * x.w + b).
            let xw = g.linear(x, self.w, None)?;
            let s = g.scale(xw, T::of(1.0 - self.p_dropout))?;
            g.add(s, self.b)?
        } else {
            let x = dropout_input(g, x, self.p_dropout, self.style, cx)?;
            g.linear(x, self.w, Some(self.b))?
        };
        self.activation.apply(g, z)
    }
    fn weights(&self) -> Vec<Var> {
        vec![self.w]
    }
    fn biases(&self) -> Vec<Var> {
        vec![self.b]
    }
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>> {
        let n = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if n != Some(self.n_in) {
            return Err(NnError::Config(format!(
                "{} expects {} inputs but the previous layer gives {:?} = {}",
                Layer::<T>::describe(self),
                self.n_in,
                input,
                n.map_or("more than a usize counts".into(), |n| n.to_string())
            )));
        }
        Ok(vec![self.n_out])
    }
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> Footprint {
        let copies = mode.copies();
        let ins = product(input).saturating_mul(batch);
        let outs = (self.n_out as u128).saturating_mul(batch);
        // An image input is first copied flat.
        let flat = if input.len() == 1 { 0 } else { ins * copies };
        let dropout = match mode {
            // The mask, the dropped input and its gradient.
            Mode::Train if self.p_dropout > 0.0 => ins.saturating_mul(3),
            // network3's evaluation: x.w, its scaling by 1 - p, the bias added.
            Mode::Eval if self.p_dropout > 0.0 && self.style == DropoutStyle::Network3 => {
                outs.saturating_mul(2)
            }
            _ => 0,
        };
        let ops = if self.activation == Activation::Identity {
            1
        } else {
            2
        };
        // The backward's transposed output gradient (the fused SGD step's).
        let scratch = if mode == Mode::Train { outs } else { 0 };
        Footprint {
            kept: flat
                .saturating_add(dropout)
                .saturating_add(outs.saturating_mul(ops * copies)),
            scratch,
            index_bytes: 0,
        }
    }
    fn describe(&self) -> String {
        let d = if self.p_dropout > 0.0 {
            format!(", dropout {}", self.p_dropout)
        } else {
            String::new()
        };
        format!(
            "FullyConnected({} -> {}, {}{d})",
            self.n_in,
            self.n_out,
            self.activation.name()
        )
    }
    fn kind(&self) -> LayerKind {
        LayerKind::FullyConnected
    }
    fn as_fully_connected(&self) -> Option<&FullyConnected> {
        Some(self)
    }
}
