//! The book's layers: fully connected (with network3's dropout) and conv-pool.

mod convpool;
mod fc;

pub use convpool::ConvPool;
pub use fc::{DropoutStyle, FullyConnected};

use crate::{Ctx, Mode, Result};
use autograd::{Graph, Var};
use rand::RngCore;
use tensor::Float;

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
    let below = (p * 4_294_967_296.0).round() as u64;
    let pick = |bits: u64| if bits < below { T::zero() } else { keep };
    // Two 32-bit draws from each 64-bit output of the generator.
    let mut pairs = mask.data_mut().chunks_exact_mut(2);
    for pair in &mut pairs {
        let r = cx.rng.next_u64();
        pair[0] = pick(r & 0xffff_ffff);
        pair[1] = pick(r >> 32);
    }
    for m in pairs.into_remainder() {
        *m = pick(cx.rng.next_u32() as u64);
    }
    Ok(g.dropout(x, mask)?)
}
