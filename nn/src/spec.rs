//! Networks from a one-line description, as `network3`'s `--layers` flag takes them:
//!
//! ```text
//! conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10
//! ```
//!
//! Layers are separated by spaces; each is `kind:size` followed by comma-separated options.
//! - `conv:FxHxW` (options `pool:K`, default 2; an activation; `ties`) is network3's
//!   ConvPoolLayer; the channel count is the previous layer's. `ties` sends the pool's gradient
//!   to every position equal to a window's maximum, as Theano (network3.py) does, instead of to
//!   the first one only ([`PoolGrad`]).
//! - `fc:N` or `fc:INxN` (options: an activation, `dropout:P`) is a FullyConnectedLayer; with
//!   `IN` given, it must equal the previous layer's output size.
//! - `softmax:N` or `softmax:INxN` (option `dropout:P`) is network3's SoftmaxLayer (zero
//!   initialised); it must be last, and makes the cost the log-likelihood.
//!
//! Activations: `sigmoid` (network3's default), `tanh`, `relu`, `linear`. Inputs are MNIST
//! images, `[1, 28, 28]`.

use crate::{Activation, Cost, Init, Network, NnError, PoolGrad, Result};
use tensor::Float;

fn bad(layer: usize, text: &str, why: impl std::fmt::Display) -> NnError {
    NnError::Config(format!("--layers: layer {} ({text:?}): {why}", layer + 1))
}

fn parse_dims(layer: usize, text: &str, s: &str) -> Result<Vec<usize>> {
    s.split('x')
        .map(|d| {
            d.parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(layer, text, format!("{d:?} is not a positive whole number")))
        })
        .collect()
}

/// Builds the network a description names (see the module docs), on MNIST-shaped inputs.
pub fn build<T: Float>(spec: &str, seed: u64) -> Result<Network<T>> {
    let layers: Vec<&str> = spec.split_whitespace().collect();
    if layers.is_empty() {
        return Err(NnError::Config("--layers: the description is empty".into()));
    }
    let mut net = Network::<T>::new(&[1, 28, 28], Cost::LogLikelihood, seed);
    let mut has_softmax = false;
    for (i, text) in layers.iter().enumerate() {
        if has_softmax {
            return Err(bad(i, text, "nothing may follow the softmax layer"));
        }
        let mut parts = text.split(',');
        let head = parts.next().unwrap_or("");
        let (kind, size) = head
            .split_once(':')
            .ok_or_else(|| bad(i, text, "expected kind:size, e.g. fc:100"))?;
        let dims = parse_dims(i, text, size)?;
        let (mut act, mut pool, mut p_drop) = (Activation::Sigmoid, 2usize, 0.0f64);
        let mut pool_grad = PoolGrad::First;
        for opt in parts {
            if let Some(a) = Activation::parse(opt) {
                act = a;
            } else if opt == "ties" {
                if kind != "conv" {
                    return Err(bad(
                        i,
                        text,
                        "ties is an option of conv layers (their max-pool)",
                    ));
                }
                pool_grad = PoolGrad::Ties;
            } else if let Some(k) = opt.strip_prefix("pool:") {
                pool = k.parse().ok().filter(|&k| k > 0).ok_or_else(|| {
                    bad(
                        i,
                        text,
                        format!("pool size {k:?} is not a positive whole number"),
                    )
                })?;
            } else if let Some(p) = opt.strip_prefix("dropout:") {
                p_drop = p
                    .parse()
                    .ok()
                    .filter(|p| (0.0..1.0).contains(p))
                    .ok_or_else(|| {
                        bad(
                            i,
                            text,
                            format!("dropout {p:?} is not a probability in [0, 1)"),
                        )
                    })?;
            } else {
                return Err(bad(i, text, format!("unknown option {opt:?}")));
            }
        }
        let previous: usize = net.output_dims().iter().product();
        let n_out = |dims: &[usize]| -> Result<usize> {
            match *dims {
                [n] => Ok(n),
                [n_in, n] if n_in == previous => Ok(n),
                [n_in, _] => Err(bad(
                    i,
                    text,
                    format!(
                        "declares {n_in} inputs but the previous layer gives {previous} ({:?})",
                        net.output_dims()
                    ),
                )),
                _ => Err(bad(i, text, "size must be N or INxN")),
            }
        };
        match kind {
            "conv" => {
                let [f, h, w] = dims[..] else {
                    return Err(bad(
                        i,
                        text,
                        "conv size must be FILTERSxHxW, e.g. conv:20x5x5",
                    ));
                };
                if p_drop > 0.0 {
                    return Err(bad(i, text, "network3's conv-pool layer has no dropout"));
                }
                net.add_conv_pool(f, h, w, pool, act, pool_grad)
                    .map_err(|e| bad(i, text, e))?;
            }
            "fc" => {
                let n = n_out(&dims)?;
                net.add_fc(n, act, Init::ScaledByOutputs, p_drop)
                    .map_err(|e| bad(i, text, e))?;
            }
            "softmax" => {
                let n = n_out(&dims)?;
                net.add_fc(n, Activation::Identity, Init::Zeros, p_drop)
                    .map_err(|e| bad(i, text, e))?;
                has_softmax = true;
            }
            other => {
                return Err(bad(
                    i,
                    text,
                    format!("unknown layer kind {other:?} (conv, fc, softmax)"),
                ))
            }
        }
    }
    if !has_softmax {
        return Err(NnError::Config(
            "--layers: the last layer must be softmax:N".into(),
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::build;

    #[test]
    fn the_books_deepest_net_builds_with_the_right_shapes() {
        let net = build::<f32>("conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:1000,relu,dropout:0.5 fc:1000,relu,dropout:0.5 softmax:10,dropout:0.5", 0).unwrap();
        assert_eq!(net.layers().len(), 5);
        assert_eq!(net.output_dims(), &[10]);
        let d = net.describe();
        assert!(
            d.contains("ConvPool(40x20x5x5")
                && d.contains("FullyConnected(640 -> 1000, relu, dropout 0.5)"),
            "{d}"
        );
    }

    #[test]
    fn ties_selects_theanos_pool_gradient_on_that_layer_only() {
        let net = build::<f32>("conv:20x5x5,relu,ties conv:40x5x5,relu softmax:10", 0).unwrap();
        let d = net.describe();
        assert_eq!(d.matches("gradient to tied maxima").count(), 1, "{d}");
        assert!(
            d.contains("ConvPool(20x1x5x5, pool 2x2, relu, gradient to tied maxima)"),
            "{d}"
        );
    }

    #[test]
    fn bad_descriptions_say_which_layer_and_why() {
        for (spec, needle) in [
            ("", "empty"),
            ("fc:100", "last layer must be softmax"),
            (
                "conv:20x5x5 fc:2000x100 softmax:10",
                "declares 2000 inputs but the previous layer gives 2880",
            ),
            ("fc:100,relu softmax:10 fc:10", "nothing may follow"),
            ("fc:abc softmax:10", "not a positive whole number"),
            ("fc:100,dropout:1.5 softmax:10", "probability"),
            ("conv:20x5 softmax:10", "FILTERSxHxW"),
            ("fc:100 conv:20x5x5 softmax:10", "conv-pool"),
            ("conv:20x30x30 softmax:10", "at least 30x30"),
            ("pool:2 softmax:10", "unknown layer kind"),
            ("fc:100,swish softmax:10", "unknown option"),
            ("fc:100,ties softmax:10", "ties is an option of conv layers"),
            ("conv:20x5x5,pool:6,ties softmax:10", "pools up to 5"),
        ] {
            let e = build::<f32>(spec, 0)
                .err()
                .unwrap_or_else(|| panic!("{spec:?} should fail"))
                .to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
    }
}
