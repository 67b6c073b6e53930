//! The layers, one file each: the book's (fully connected with network3's dropout, and
//! conv-pool) and the ones that came after it (padded convolution, batch norm, max-pool,
//! inverted dropout, flatten).

mod batch_norm;
mod conv2d;
mod conv_pool;
mod dropout;
mod flatten;
mod fully_connected;
mod max_pool2d;

pub use batch_norm::BatchNorm;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use conv_pool::ConvPool;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use fully_connected::{DropoutStyle, FcConfig, FullyConnected};
pub use max_pool2d::MaxPool2d;

use crate::{Ctx, Mode, NnError, Result};
use autograd::{Graph, Var};
use rand::RngCore;
use tensor::Float;

/// One sample's shape as `[channels, height, width]`, or why `what` cannot take it.
fn image_dims(what: &str, input: &[usize]) -> Result<[usize; 3]> {
    match *input {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(NnError::Config(format!(
            "{what} needs [channels, height, width] input, not the output of shape {input:?}"
        ))),
    }
}

/// How dropout treats the two modes.
pub(crate) fn dropout_input<T: Float>(
    g: &mut Graph<T>,
    x: Var,
    p: f64,
    style: DropoutStyle,
    cx: &mut Ctx<'_>,
) -> Result<Var> {
    if p <= 0.0 || cx.mode == Mode::Eval {
        return Ok(x);
    }
    // network3: keep with probability 1 - p, no rescaling; inverted: rescale kept by 1/(1-p).
    let keep = match style {
        DropoutStyle::Network3 => T::one(),
        DropoutStyle::Inverted => T::of(1.0 / (1.0 - p)),
    };
    let shape = g.value(x)?.shape();
    let mut mask = g.alloc(shape);
    // Dropped when a uniform 32-bit draw falls below p * 2^32: one cheap draw per element
    // (a float draw per element was 4% of a dropout net's step).
    // One draw from the network's generator seeds the mask's counter-based stream.
    tensor::unary::bernoulli_mask(cx.rng.next_u64(), p, keep, mask.data_mut());
    Ok(g.dropout(x, mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dropout_masks_drop_the_asked_fraction_and_differ_between_calls() {
        let mut g = Graph::<f32>::new();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
        let mut cx = Ctx {
            mode: Mode::Train,
            rng: &mut rng,
        };
        let x = g.input(tensor::Tensor::full(&[100, 1001], 1.0f32).unwrap());
        let a = dropout_input(&mut g, x, 0.3, DropoutStyle::Network3, &mut cx).unwrap();
        let b = dropout_input(&mut g, x, 0.3, DropoutStyle::Network3, &mut cx).unwrap();
        let (va, vb) = (g.value(a).unwrap().data(), g.value(b).unwrap().data());
        let dropped = va.iter().filter(|&&v| v == 0.0).count() as f64 / va.len() as f64;
        // 100,100 Bernoulli(0.3) draws: the standard deviation of the fraction is 0.0014.
        assert!((dropped - 0.3).abs() < 0.01, "dropped {dropped}");
        assert!(va.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_ne!(va, vb, "two masks of one step are independent draws");
        // Odd and even positions (the two halves of one hash) are dropped alike.
        let odd = va.iter().skip(1).step_by(2).filter(|&&v| v == 0.0).count() as f64
            / (va.len() / 2) as f64;
        assert!((odd - 0.3).abs() < 0.015, "odd positions dropped {odd}");
    }
}
