//! Inverted dropout as a layer of its own (network3's dropout is an option of
//! [`FullyConnected`](crate::FullyConnected)).

use super::{dropout_input, DropoutStyle};
use crate::memory::{product, Footprint};
use crate::{Ctx, Layer, LayerKind, Mode, NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

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
    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }
}
