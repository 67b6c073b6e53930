//! A standalone max-pool (the book's pools are part of its conv-pool layer).

use super::image_dims;
use crate::memory::{product, Footprint};
use crate::{Ctx, Layer, LayerKind, Mode, NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

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
    fn kind(&self) -> LayerKind {
        LayerKind::MaxPool2d
    }
}
