//! Networks from a one-line description, as the `--layers` flag takes them:
//!
//! ```text
//! conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10
//! conv2d:32x3x3,pad:1,nobias bn,relu pool:2 flatten fc:128,init:he bn,relu dropout:0.4 softmax:10
//! ```
//!
//! Layers are separated by spaces; each is `kind:size` (or just `kind`) followed by
//! comma-separated options.
//! - `conv:FxHxW` (options `pool:K`, default 2; an activation; `ties`) is network3's
//!   ConvPoolLayer; the channel count is the previous layer's. `ties` sends the pool's gradient
//!   to every position equal to a window's maximum, as Theano (network3.py) does, instead of to
//!   the first one only ([`PoolGrad`]).
//! - `conv2d:FxKxK` (options `pad:P`, default 0, less than `K`; `stride:S`, default 1; `nobias`; an
//!   activation, default `linear`; `init:NAME`, default `he`; `pool:K`, a `K x K` max-pool
//!   fused after it, stride 1 only) is a plain convolution ([`Conv2d`](crate::Conv2d)).
//! - `bn` (option: an activation, default `linear`) is a batch norm over the previous layer's
//!   features or channels ([`BatchNorm`](crate::BatchNorm)).
//! - `pool:K` is a `K x K` max-pool, `dropout:P` inverted dropout, `flatten` a flatten.
//! - `fc:N` or `fc:INxN` (options: an activation, `dropout:P` (network3's dropout of its
//!   input), `init:NAME`) is a FullyConnectedLayer; with `IN` given, it must equal the previous
//!   layer's output size.
//! - `softmax:N` or `softmax:INxN` (options `dropout:P`, `init:NAME`, default `zeros`) is the
//!   output layer, which must be last: network3's SoftmaxLayer when the cost is
//!   [`Cost::LogLikelihood`] (the cost applies the output nonlinearity, a sigmoid with the
//!   book's other two).
//!
//! Activations: `sigmoid` (network3's default for conv and fc), `tanh`, `relu`, `linear`.
//! Initialisations (`init:`): `outputs` (network3's N(0, 1/n_out), the default of conv and
//! fc), `inputs` (N(0, 1/n_in)), `large` (N(0, 1)), `he` (N(0, 2/n_in)), `zeros`. The input
//! shape is [`build`]'s to say (`[1, 28, 28]` for MNIST, `mnist::IMAGE_DIMS`); conv and pool
//! layers need it as `[channels, height, width]`.

use crate::{Activation, Conv2dConfig, Cost, Init, Network, NnError, PoolGrad, Result};
use tensor::Float;

fn bad(layer: usize, text: &str, why: impl std::fmt::Display) -> NnError {
    NnError::Config(format!("--layers: layer {} ({text:?}): {why}", layer + 1))
}

/// Why `v` is not a whole number of at least `min`: digits past a `usize` are "too large"
/// rather than "not a number".
fn not_whole(v: &str, min: usize) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<usize>().is_err() {
        return format!("{v:?} is too large (at most {})", usize::MAX);
    }
    let what = if min == 0 {
        "whole number"
    } else {
        "positive whole number"
    };
    format!("{v:?} is not a {what}")
}

fn parse_dims(layer: usize, text: &str, s: &str) -> Result<Vec<usize>> {
    s.split('x')
        .map(|d| {
            d.parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(layer, text, not_whole(d, 1)))
        })
        .collect()
}

fn parse_init(s: &str) -> Option<Init> {
    Some(match s {
        "outputs" => Init::ScaledByOutputs,
        "inputs" => Init::ScaledByInputs,
        "large" => Init::Large,
        "he" => Init::He,
        "zeros" => Init::Zeros,
        _ => return None,
    })
}

/// The options of one layer, each checked against what its kind accepts.
struct Options {
    act: Option<Activation>,
    /// The `pool:K` option, if given.
    pool: Option<usize>,
    p_drop: f64,
    pool_grad: PoolGrad,
    pad: usize,
    stride: usize,
    bias: bool,
    init: Option<Init>,
}

impl Options {
    fn parse<'a>(
        i: usize,
        text: &str,
        kind: &str,
        opts: impl Iterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut o = Options {
            act: None,
            pool: None,
            p_drop: 0.0,
            pool_grad: PoolGrad::First,
            pad: 0,
            stride: 1,
            bias: true,
            init: None,
        };
        let accepts: &[&str] = match kind {
            "conv" => &["act", "pool", "ties"],
            "conv2d" => &["act", "pad", "stride", "nobias", "init", "pool"],
            "fc" => &["act", "dropout", "init"],
            "softmax" => &["dropout", "init"],
            "bn" => &["act"],
            _ => &[],
        };
        let whole = |name: &str, v: &str, min: usize| -> Result<usize> {
            v.parse()
                .ok()
                .filter(|&k| k >= min)
                .ok_or_else(|| bad(i, text, format!("{name} {}", not_whole(v, min))))
        };
        for opt in opts {
            let (name, value) = opt.split_once(':').unwrap_or((opt, ""));
            let key = if Activation::parse(opt).is_some() {
                "act"
            } else {
                name
            };
            if !accepts.contains(&key) {
                let known = [
                    "act", "pool", "ties", "pad", "stride", "nobias", "init", "dropout",
                ];
                if !known.contains(&key) {
                    return Err(bad(i, text, format!("unknown option {opt:?}")));
                }
                let what = if key == "act" { "an activation" } else { name };
                return Err(bad(
                    i,
                    text,
                    format!("{kind} layers take no {what} option ({opt:?})"),
                ));
            }
            match key {
                "act" => o.act = Activation::parse(opt),
                "ties" => o.pool_grad = PoolGrad::Ties,
                "pool" => o.pool = Some(whole("pool size", value, 1)?),
                "pad" => o.pad = whole("padding", value, 0)?,
                "stride" => o.stride = whole("stride", value, 1)?,
                "nobias" => o.bias = false,
                "init" => {
                    o.init = Some(parse_init(value).ok_or_else(|| {
                        bad(
                            i,
                            text,
                            format!("unknown init {value:?} (outputs, inputs, large, he, zeros)"),
                        )
                    })?)
                }
                _ => {
                    o.p_drop = parse_probability(i, text, value)?;
                }
            }
        }
        Ok(o)
    }
}

fn parse_probability(i: usize, text: &str, p: &str) -> Result<f64> {
    p.parse()
        .ok()
        .filter(|p| (0.0..1.0).contains(p))
        .ok_or_else(|| {
            bad(
                i,
                text,
                format!("dropout {p:?} is not a probability in [0, 1)"),
            )
        })
}

/// Builds the network a description names (see the module docs), taking samples of shape
/// `input` and trained on `cost`; `seed` as [`Network::new`] takes it.
///
/// ```
/// use nndl_nn::{spec, Cost, LayerKind, Network};
///
/// // network3's conv net, shrunk: 8 5x5 filters and a 2x2 max-pool on 28x28 images, then
/// // 30 ReLU units and a softmax over the 10 digits.
/// let net: Network<f32> = spec::build("conv:8x5x5,pool:2,relu fc:30,relu softmax:10", &[1, 28, 28], Cost::LogLikelihood, 0)?;
/// assert_eq!(net.layers().len(), 3);
/// assert_eq!(net.layers()[0].kind(), LayerKind::ConvPool);
/// assert_eq!(net.layers()[0].output_dims(&[1, 28, 28])?, [8, 12, 12]); // (28 - 4) / 2
/// assert_eq!(net.output_dims(), &[10]);
/// let count: usize = net.parameters().iter().map(|&p| net.graph().value(p).unwrap().numel()).sum();
/// assert_eq!(count, (8 * 25 + 8) + (8 * 12 * 12 * 30 + 30) + (30 * 10 + 10));
///
/// // A mistake names the layer and what is wrong with it.
/// let err = spec::build::<f32>("fc:30 softmax:10 fc:5", &[784], Cost::LogLikelihood, 0)
///     .err()
///     .expect("the softmax layer must be last");
/// assert!(err.to_string().contains("layer 3"), "{err}");
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
pub fn build<T: Float>(spec: &str, input: &[usize], cost: Cost, seed: u64) -> Result<Network<T>> {
    let layers: Vec<&str> = spec.split_whitespace().collect();
    if layers.is_empty() {
        return Err(NnError::Config("--layers: the description is empty".into()));
    }
    let mut net = Network::<T>::new(input, cost, seed);
    let mut has_softmax = false;
    for (i, text) in layers.iter().enumerate() {
        if has_softmax {
            return Err(bad(i, text, "nothing may follow the softmax layer"));
        }
        let mut parts = text.split(',');
        let head = parts.next().unwrap_or("");
        let (kind, size) = head.split_once(':').unwrap_or((head, ""));
        let sized = ["conv", "conv2d", "fc", "softmax", "pool", "dropout"];
        if !sized.contains(&kind) && !["bn", "flatten"].contains(&kind) {
            return Err(bad(
                i,
                text,
                format!("unknown layer kind {kind:?} (conv, conv2d, bn, pool, dropout, flatten, fc, softmax)"),
            ));
        }
        if sized.contains(&kind) && size.is_empty() {
            return Err(bad(i, text, "expected kind:size, e.g. fc:100"));
        }
        if !sized.contains(&kind) && !size.is_empty() {
            return Err(bad(i, text, format!("{kind} takes no size")));
        }
        let o = Options::parse(i, text, kind, parts)?;
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
        let act = |default| o.act.unwrap_or(default);
        let added = match kind {
            "conv" | "conv2d" => {
                let [f, h, w] = parse_dims(i, text, size)?[..] else {
                    return Err(bad(
                        i,
                        text,
                        format!("{kind} size must be FILTERSxHxW, e.g. {kind}:20x5x5"),
                    ));
                };
                if kind == "conv" {
                    let pool = o.pool.unwrap_or(2);
                    net.add_conv_pool(f, h, w, pool, act(Activation::Sigmoid), o.pool_grad)
                } else if h != w {
                    return Err(bad(i, text, "conv2d filters are square (KxK)"));
                } else if o.pad >= h {
                    // A window lying wholly in the padding sees only zeros: such a padding
                    // adds nothing but memory (pad:2^62 once overflowed the shape arithmetic).
                    return Err(bad(
                        i,
                        text,
                        format!("padding {} must be less than the kernel size {h}", o.pad),
                    ));
                } else {
                    let config = Conv2dConfig {
                        pad: o.pad,
                        stride: o.stride,
                        bias: o.bias,
                        activation: act(Activation::Identity),
                        init: o.init.unwrap_or(Init::He),
                        pool: o.pool,
                    };
                    net.add_conv2d(f, h, config)
                }
            }
            "bn" => net.add_batch_norm(act(Activation::Identity)),
            "pool" => net.add_max_pool(whole_size(i, text, size)?),
            "dropout" => net.add_dropout(parse_probability(i, text, size)?),
            "flatten" => net.add_flatten(),
            "fc" => {
                let n = n_out(&parse_dims(i, text, size)?)?;
                let init = o.init.unwrap_or(Init::ScaledByOutputs);
                net.add_fc(n, act(Activation::Sigmoid), init, o.p_drop)
            }
            _ => {
                let n = n_out(&parse_dims(i, text, size)?)?;
                has_softmax = true;
                let init = o.init.unwrap_or(Init::Zeros);
                net.add_fc(n, Activation::Identity, init, o.p_drop)
            }
        };
        added.map_err(|e| {
            // The network names the layer too ("layer N: ..."); said once here.
            let e = e.to_string();
            let prefix = format!("layer {}: ", i + 1);
            bad(i, text, e.strip_prefix(&prefix).unwrap_or(&e))
        })?;
    }
    if !has_softmax {
        return Err(NnError::Config(
            "--layers: the last layer must be softmax:N".into(),
        ));
    }
    Ok(net)
}

fn whole_size(i: usize, text: &str, size: &str) -> Result<usize> {
    match parse_dims(i, text, size)?[..] {
        [k] => Ok(k),
        _ => Err(bad(i, text, "pool size must be one number, e.g. pool:2")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cost, Network, Result};
    use tensor::Float;

    /// What `--layers` builds: MNIST's images, network3's cost.
    fn mnist_shaped<T: Float>(spec: &str, seed: u64) -> Result<Network<T>> {
        super::build(spec, &[1, 28, 28], Cost::LogLikelihood, seed)
    }

    #[test]
    fn the_books_deepest_net_builds_with_the_right_shapes() {
        let net = mnist_shaped::<f32>("conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:1000,relu,dropout:0.5 fc:1000,relu,dropout:0.5 softmax:10,dropout:0.5", 0).unwrap();
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
        let net =
            mnist_shaped::<f32>("conv:20x5x5,relu,ties conv:40x5x5,relu softmax:10", 0).unwrap();
        let d = net.describe();
        assert_eq!(d.matches("gradient to tied maxima").count(), 1, "{d}");
        assert!(
            d.contains("ConvPool(20x1x5x5, pool 2x2, relu, gradient to tied maxima)"),
            "{d}"
        );
    }

    /// The net of `layers` on MNIST's shape, checking its description holds each of `want`.
    fn described(layers: &str, want: &[&str]) -> Network<f32> {
        let net = mnist_shaped::<f32>(layers, 0).unwrap();
        let d = net.describe();
        for w in want {
            assert!(d.contains(w), "{w} not in {d}");
        }
        net
    }

    #[test]
    fn a_conv2d_takes_a_fused_pool() {
        let net = described(
            "conv2d:16x3x3,pad:1,nobias,pool:2 bn,relu conv2d:32x3x3,pad:1,relu,pool:3 flatten softmax:10",
            &[
                "Conv2d(16x1x3x3, padding 1, stride 1, no bias, pool 2x2, identity)",
                "Conv2d(32x16x3x3, padding 1, stride 1, pool 3x3, relu)",
            ],
        );
        // 28 -> 14 (pool 2) -> 4 (pool 3 of 14, the last one dropped).
        assert_eq!(
            net.layers()[0].output_dims(&[1, 28, 28]).unwrap(),
            [16, 14, 14]
        );
        assert_eq!(
            net.layers()[2].output_dims(&[16, 14, 14]).unwrap(),
            [32, 4, 4]
        );
    }

    #[test]
    fn the_modern_layers_build_with_the_right_shapes_and_defaults() {
        let net = described(
            "conv2d:32x3x3,pad:1,nobias bn,relu conv2d:16x5x5,pad:2,stride:2,relu pool:2 flatten dropout:0.25 fc:64,init:he bn,relu softmax:10",
            &[
            "Conv2d(32x1x3x3, padding 1, stride 1, no bias, identity)",
            "BatchNorm(32, relu)",
            "Conv2d(16x32x5x5, padding 2, stride 2, relu)",
            "MaxPool2d(2x2)",
            "Flatten",
            "Dropout(0.25)",
            "FullyConnected(784 -> 64, sigmoid)",
            "BatchNorm(64, relu)",
            "FullyConnected(64 -> 10, identity)",
            ],
        );
        assert_eq!(net.output_dims(), &[10]);
        // 28 -> 28 (pad 1) -> 14 (stride 2) -> 7 (pool): 16 * 7 * 7 = 784 features.
        assert_eq!(
            net.layers()[3].output_dims(&[16, 14, 14]).unwrap(),
            [16, 7, 7]
        );
        // Trained parameters: conv (no bias), bn, conv + bias, fc, bn, softmax; the two
        // batch norms' running statistics are frozen.
        assert_eq!(net.parameters().len(), 1 + 2 + 2 + 2 + 2 + 2);
        assert_eq!(net.graph().parameters().count(), 11 + 4);
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
            ("relu:2 softmax:10", "unknown layer kind"),
            ("pool:2x2 softmax:10", "pool size must be one number"),
            ("fc:100 pool:2 softmax:10", "max-pool layer needs [channels"),
            ("bn:3 softmax:10", "bn takes no size"),
            (
                "conv2d:8x3x3,stride:2,pool:2 softmax:10",
                "a fused pool needs stride 1",
            ),
            ("conv2d:8x3x3,pool:0 softmax:10", "pool size \"0\""),
            ("conv2d:8x3x3,pool:27 softmax:10", "pool does not fit"),
            ("bn,pool:2 softmax:10", "bn layers take no pool option"),
            ("conv2d:8x3x5 softmax:10", "square"),
            (
                "conv2d:8x3x3,pad:-1 softmax:10",
                "padding \"-1\" is not a whole number",
            ),
            (
                "conv2d:8x3x3,stride:0 softmax:10",
                "stride \"0\" is not a positive",
            ),
            ("conv2d:8x3x3,init:xavier softmax:10", "unknown init"),
            (
                "bn,dropout:0.5 softmax:10",
                "bn layers take no dropout option",
            ),
            ("flatten dropout:1 softmax:10", "probability"),
            (
                "flatten conv2d:8x3x3 softmax:10",
                "needs [channels, height, width]",
            ),
            ("fc:100,swish softmax:10", "unknown option"),
            ("fc:100,ties softmax:10", "fc layers take no ties option"),
            ("conv:20x5x5,pool:6,ties softmax:10", "pools up to 5"),
            (
                "conv2d:8x3x3,pad:18446744073709551616 softmax:10",
                "padding \"18446744073709551616\" is too large",
            ),
            ("fc:99999999999999999999 softmax:10", "is too large"),
            (
                "conv2d:8x3x3,pad:3 softmax:10",
                "less than the kernel size 3",
            ),
            ("conv:20x5x5,pool:25 softmax:10", "would leave nothing"),
            ("conv2d:8x3x3,stride:99 pool:2 softmax:10", "layer 2"),
        ] {
            let e = mnist_shaped::<f32>(spec, 0)
                .err()
                .unwrap_or_else(|| panic!("{spec:?} should fail"))
                .to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
    }
}
