//! How much memory a training step and an evaluation forward of a [`Network`] take, estimated
//! before anything is allocated, so that a mini-batch too large for the machine is refused in
//! one line instead of aborting the process on a failed allocation.
//!
//! [`Plan::of`] (a training step) and [`Plan::eval`] (an evaluation forward) add up, layer by
//! layer ([`crate::Layer::footprint`]), what the graph holds at the end of the step:
//! - every op's output on the tape and, in training, its gradient (gradients of tape nodes are
//!   kept until the next reset);
//! - what ops save for their backward: the fused conv-pool's im2col columns (`C*KH*KW` per
//!   output position of every image), pools' 32-bit argmax indices, dropout masks, the
//!   softmax's probabilities;
//! - scratch: per-thread im2col columns and partial filter gradients of convolutions. The
//!   graph's buffer pool keeps every buffer for the next step, keyed by length, so scratch of
//!   different sizes adds up rather than being shared;
//! - the input batch, and the parameters with their gradients and up to two optimiser moments
//!   (Adam's; in evaluation the parameters only).
//!
//! Not counted: the data sets (MNIST's 50,000 training images are 157 MB as f32), the ragged
//! last mini-batch (its buffers have other lengths; at most one more batch of that size), and
//! the GEMM libraries' packing buffers (a few MB per thread).
//!
//! The estimate was calibrated against the peak RSS of real runs (the table in [`Plan`]'s
//! docs): within 1.1x on the nets whose activations dominate, and on the side of too much.
//!
//! [`check_training`] is the one call a program makes after building its net: training and
//! evaluation buffers live side by side in the pool, so their sum is held against the limit:
//! the explicit one, else `NNDL_MAX_MEMORY`, else [`default_limit`].

use crate::{Cost, Mode, Network, NnError, Result};
use tensor::Float;

/// What one layer holds for a batch (see the module docs), in elements of the network's float
/// type except the indices. Arithmetic saturates: `u128::MAX` means "more than anyone has".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Elements kept until the step ends: outputs, their gradients, what ops save.
    pub kept: u128,
    /// Elements of scratch the graph's buffer pool keeps for the next step.
    pub scratch: u128,
    /// Bytes of 32-bit indices (pools' argmax), not pooled but live during the step.
    pub index_bytes: u128,
}

impl Footprint {
    /// Bytes in all, for elements of `elem` bytes.
    pub fn bytes(&self, elem: u128) -> u128 {
        self.kept
            .saturating_add(self.scratch)
            .saturating_mul(elem)
            .saturating_add(self.index_bytes)
    }
}

/// `factors` multiplied, saturating at `u128::MAX` (a size past it is too large anyway).
pub fn mul(factors: &[u128]) -> u128 {
    factors.iter().fold(1u128, |p, &f| p.saturating_mul(f))
}

/// The number of values of one sample of shape `dims`, as a `u128` (saturating).
pub fn product(dims: &[usize]) -> u128 {
    dims.iter().fold(1u128, |p, &d| p.saturating_mul(d as u128))
}

/// The parallel tasks a batch is split into (one block of per-task scratch each).
pub fn tasks(batch: u128) -> u128 {
    (tensor::threads() as u128).clamp(1, batch.max(1))
}

/// One layer's share of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// The layer's position, counted from 1 (as `--layers` errors count).
    pub layer: usize,
    /// Its description ([`crate::Layer::describe`]).
    pub name: String,
    /// Bytes it holds.
    pub bytes: u128,
}

/// The memory a training step ([`Plan::of`]) or an evaluation forward ([`Plan::eval`]) of a
/// network at one batch size takes, layer by layer. All sizes in bytes; see the module docs for
/// what is counted.
///
/// Calibrated against peak RSS (`/usr/bin/time -v`, f32, `--threads 1`, less the 66 MB of
/// the same program training `fc:10 softmax:10`, which holds the data sets):
///
/// | run | plan ([`check_training`]'s sum) | measured |
/// |---|---|---|
/// | modern's recipe, mini-batch 1000, evaluation 200 | 1.51 GB | 1.38 GB |
/// | modern's recipe, mini-batch 64, evaluation 10000 | 7.05 GB | 6.75 GB |
/// | network3 `conv:20x5x5,relu conv:40x5x5,relu fc:100,relu softmax:10`, 10 and 10000 | 2.21 GB | 2.08 GB |
/// | network3 `conv:20x5x5 fc:100 softmax:10`, 1000 and 1000 | 125 MB | 76 MB |
///
/// The plan errs high, by 1.05-1.1x on the nets where activations dominate and up to 1.7x
/// on small ones (allocator and GEMM buffers it does not model, pages never touched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Samples per batch.
    pub batch: usize,
    /// Training step or evaluation forward.
    pub mode: Mode,
    /// The input batch.
    pub input_bytes: u128,
    /// Each layer's share.
    pub layers: Vec<LayerPlan>,
    /// The cost's buffers (probabilities, one-hot targets).
    pub cost_bytes: u128,
    /// Parameters, with gradients and optimiser moments in training.
    pub parameter_bytes: u128,
}

impl Plan {
    /// The plan of one training step of `net` on a mini-batch of `batch` samples.
    pub fn of<T: Float>(net: &Network<T>, batch: usize) -> Result<Plan> {
        Plan::new(net, batch, Mode::Train)
    }

    /// The plan of one evaluation forward of `net` on `batch` samples (no backward recorded).
    pub fn eval<T: Float>(net: &Network<T>, batch: usize) -> Result<Plan> {
        Plan::new(net, batch, Mode::Eval)
    }

    fn new<T: Float>(net: &Network<T>, batch: usize, mode: Mode) -> Result<Plan> {
        if batch == 0 {
            return Err(NnError::Config(
                "a batch must hold at least 1 sample".into(),
            ));
        }
        let elem = std::mem::size_of::<T>() as u128;
        let b = batch as u128;
        let mut dims = net.input_dims().to_vec();
        let input_bytes = mul(&[product(&dims), b, elem]);
        let mut layers = Vec::with_capacity(net.layers().len());
        for (i, l) in net.layers().iter().enumerate() {
            let bytes = l.footprint(&dims, b, mode).bytes(elem);
            layers.push(LayerPlan {
                layer: i + 1,
                name: l.describe(),
                bytes,
            });
            dims = l
                .output_dims(&dims)
                .map_err(|e| NnError::Config(format!("layer {}: {e}", i + 1)))?;
        }
        let outputs = mul(&[product(&dims), b, elem]);
        // Log-likelihood keeps the softmax's probabilities; the other costs a one-hot target,
        // the sigmoid of the outputs and its gradient.
        let cost_bytes = match net.cost() {
            Cost::LogLikelihood => outputs,
            _ => outputs.saturating_mul(3),
        };
        let params: u128 = net
            .graph()
            .parameters()
            .filter_map(|p| net.graph().value(p).ok())
            .map(|t| t.numel() as u128)
            .sum();
        let copies = match mode {
            Mode::Train => 4,
            Mode::Eval => 1,
        };
        Ok(Plan {
            batch,
            mode,
            input_bytes,
            layers,
            cost_bytes,
            parameter_bytes: mul(&[params, copies, elem]),
        })
    }

    /// Bytes in all.
    pub fn total(&self) -> u128 {
        self.layers
            .iter()
            .map(|l| l.bytes)
            .fold(self.input_bytes, u128::saturating_add)
            .saturating_add(self.cost_bytes)
            .saturating_add(self.parameter_bytes)
    }

    /// The layer holding the most bytes (the first of equals).
    pub fn largest(&self) -> Option<&LayerPlan> {
        self.layers
            .iter()
            .reduce(|a, l| if l.bytes > a.bytes { l } else { a })
    }

    /// Fails with one line naming the batch, the total, the layer holding the most and the
    /// limit when the plan needs more than `limit_bytes`.
    pub fn check(&self, limit_bytes: u64) -> Result<()> {
        if self.total() <= limit_bytes as u128 {
            return Ok(());
        }
        let kinds = match self.mode {
            Mode::Train => "activations, gradients and scratch",
            Mode::Eval => "activations and scratch",
        };
        Err(NnError::Memory(format!(
            "{} needs about {} for {kinds}{}, over the limit of {}; {}",
            self.what(),
            format_bytes(self.total()),
            self.most(),
            format_bytes(limit_bytes as u128),
            self.hint()
        )))
    }

    fn what(&self) -> String {
        match self.mode {
            Mode::Train => format!("a mini-batch of {}", self.batch),
            Mode::Eval => format!("an evaluation batch of {}", self.batch),
        }
    }

    fn most(&self) -> String {
        match self.largest() {
            Some(l) => format!(
                " (most at layer {}, {}: {})",
                l.layer,
                l.name,
                format_bytes(l.bytes)
            ),
            None => String::new(),
        }
    }

    fn hint(&self) -> &'static str {
        match self.mode {
            Mode::Train => {
                "use a smaller --mini-batch or raise the limit (--max-memory or NNDL_MAX_MEMORY)"
            }
            Mode::Eval => {
                "use a smaller --eval-batch or raise the limit (--max-memory or NNDL_MAX_MEMORY)"
            }
        }
    }
}

/// `bytes` for people: `512 B`, `3.1 MB`, `251 GB` (decimal units, 3 significant digits).
pub fn format_bytes(bytes: u128) -> String {
    if bytes == u128::MAX {
        return "more than 10^38 bytes".into();
    }
    const UNITS: [&str; 7] = ["KB", "MB", "GB", "TB", "PB", "EB", "ZB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if v >= 1000.0 {
        return format!("{:.3e} bytes", bytes as f64);
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// A size as `NNDL_MAX_MEMORY` takes it: bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (powers of 1024; `B`/`iB` after it allowed, `1.5G` too). `None` if it is not one.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return None,
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift);
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * (1u64 << shift) as f64;
    (v.is_finite() && v >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The limit when none is given: 3/4 of the least of the machine's memory (`MemTotal` of
/// `/proc/meminfo`), the cgroup's limit (`/sys/fs/cgroup/memory.max`) and the process's
/// address-space limit (`ulimit -v`, `prlimit --as`, from `/proc/self/limits`): the rest is
/// left to the data sets, the program and the estimate's error. `None`, no limit, where none of
/// these can be read (not Linux): then only sizes past `u64` are refused.
pub fn default_limit() -> Option<u64> {
    default_limit_and_source().map(|(l, _)| l)
}

/// [`default_limit`] and which of the three it is 3/4 of.
fn default_limit_and_source() -> Option<(u64, &'static str)> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mem_total = read("/proc/meminfo").and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    });
    let cgroup = read("/sys/fs/cgroup/memory.max").and_then(|s| s.trim().parse::<u64>().ok());
    let address_space = read("/proc/self/limits").and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("Max address space"))?;
        // "Max address space  <soft>  <hard>  bytes": the soft limit is the one enforced.
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    let (least, source) = [
        (mem_total, "this machine's memory"),
        (cgroup, "the cgroup's memory limit"),
        (address_space, "the address-space limit"),
    ]
    .into_iter()
    .filter_map(|(v, s)| Some((v?, s)))
    .min_by_key(|&(v, _)| v)?;
    Some((least / 4 * 3, source))
}

/// The limit to check against and where it came from: `limit` if given, else
/// `NNDL_MAX_MEMORY` (a size as [`parse_size`] reads it, or `off` for none), else
/// [`default_limit`]. `None`: no limit.
pub fn resolve_limit(limit: Option<u64>) -> Result<Option<(u64, String)>> {
    if let Some(l) = limit {
        return Ok(Some((l, String::new())));
    }
    if let Some(v) = std::env::var_os("NNDL_MAX_MEMORY") {
        let v = v.to_string_lossy();
        if v.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        return match parse_size(&v) {
            Some(b) if b > 0 => Ok(Some((b, " (NNDL_MAX_MEMORY)".into()))),
            _ => Err(NnError::Config(format!(
                "NNDL_MAX_MEMORY={v:?} is not a size (bytes, or with K, M, G or T; or off)"
            ))),
        };
    }
    Ok(default_limit_and_source().map(|(l, from)| (l, format!(" (3/4 of {from})"))))
}

/// Refuses, in one line, a training run of `net` whose mini-batch of `mini_batch` samples, or
/// whose evaluation at `eval_batch`, or the two together (the graph's pool keeps both sets of
/// buffers), would need more memory than the limit ([`resolve_limit`]: `limit`, else
/// `NNDL_MAX_MEMORY`, else 3/4 of the machine's). Pass the batches as the run will use them:
/// a mini-batch larger than the training set is the training set.
pub fn check_training<T: Float>(
    net: &Network<T>,
    mini_batch: usize,
    eval_batch: usize,
    limit: Option<u64>,
) -> Result<()> {
    let Some((limit, source)) = resolve_limit(limit)? else {
        return Ok(());
    };
    let train = Plan::of(net, mini_batch)?;
    let eval = Plan::eval(net, eval_batch)?;
    let with_source = |r: Result<()>| {
        r.map_err(|e| match e {
            NnError::Memory(m) => {
                let over = format!("over the limit of {}", format_bytes(limit as u128));
                NnError::Memory(m.replacen(&over, &format!("{over}{source}"), 1))
            }
            other => other,
        })
    };
    with_source(train.check(limit))?;
    with_source(eval.check(limit))?;
    // The pool hands buffers out by length: at equal batches evaluation reuses the training
    // step's (it needs a subset of them); otherwise both sets stay. Parameters count once.
    let both = if mini_batch == eval_batch {
        train.total().max(eval.total())
    } else {
        train
            .total()
            .saturating_add(eval.total())
            .saturating_sub(eval.parameter_bytes)
    };
    if both <= limit as u128 {
        return Ok(());
    }
    let most = match (train.largest(), eval.largest()) {
        (Some(t), Some(e)) if e.bytes > t.bytes => eval.most(),
        _ => train.most(),
    };
    Err(NnError::Memory(format!(
        "a mini-batch of {} (about {}) and an evaluation batch of {} (about {}) need about {} together{most}, over the limit of {}{source}; use a smaller --mini-batch or --eval-batch, or raise the limit (--max-memory or NNDL_MAX_MEMORY)",
        mini_batch,
        format_bytes(train.total()),
        eval_batch,
        format_bytes(eval.total()),
        format_bytes(both),
        format_bytes(limit as u128),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `--layers` builds: MNIST's images, network3's cost.
    pub(super) fn mnist_shaped(spec: &str) -> crate::Result<Network<f32>> {
        crate::spec::build(spec, &[1, 28, 28], Cost::LogLikelihood, 0)
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("20000000T"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(19_200_000_000), "19.2 GB");
        assert_eq!(format_bytes(251_000_000_000), "251 GB");
        assert_eq!(format_bytes(u128::MAX), "more than 10^38 bytes");
    }

    #[test]
    fn a_batch_too_large_is_refused_naming_the_layer_with_the_most() {
        let net = mnist_shaped("conv2d:64x3x3,pad:1 pool:2 fc:10 softmax:10").unwrap();
        let plan = Plan::of(&net, 10_000_000).unwrap();
        let e = plan.check(19_200_000_000).unwrap_err().to_string();
        assert!(
            e.starts_with("a mini-batch of 10000000 needs about")
                && e.contains("most at layer 1, Conv2d(64x1x3x3")
                && e.contains("over the limit of 19.2 GB")
                && !e.contains('\n'),
            "{e}"
        );
        assert!(Plan::of(&net, 10).unwrap().check(1 << 30).is_ok());
        // Training holds gradients as well: more than an evaluation of the same batch.
        assert!(plan.total() > Plan::eval(&net, 10_000_000).unwrap().total());
        // A size past u128 saturates and is refused, not wrapped.
        let huge = Plan::of(&net, usize::MAX).unwrap();
        assert!(huge.check(u64::MAX).is_err());
        assert!(Plan::of(&net, 0).is_err());
    }

    #[test]
    fn training_and_evaluation_are_held_against_the_limit_together() {
        let net = mnist_shaped("fc:100 softmax:10").unwrap();
        let (t, e) = (
            Plan::of(&net, 1000).unwrap(),
            Plan::eval(&net, 500).unwrap(),
        );
        let both = t.total() + e.total() - e.parameter_bytes;
        let limit = (t.total().max(e.total()) + both) / 2;
        let err = check_training(&net, 1000, 500, Some(limit as u64))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("together") && err.contains("--eval-batch"),
            "{err}"
        );
        assert!(check_training(&net, 1000, 500, Some(both as u64)).is_ok());
        // At equal batches evaluation reuses the training step's buffers.
        assert!(check_training(&net, 1000, 1000, Some(t.total() as u64)).is_ok());
    }
}

#[cfg(test)]
mod calibration {
    use super::tests::mnist_shaped;
    use super::*;

    /// The plans the module docs compare with measured peak RSS
    /// (`cargo test --release -p nn calibration -- --ignored --nocapture`).
    #[test]
    #[ignore = "prints figures for calibration by hand"]
    fn print_plans() {
        let recipe =
            "conv2d:32x3x3,pad:1,nobias bn,relu conv2d:32x3x3,pad:1,nobias bn,relu pool:2 \
conv2d:64x3x3,pad:1,nobias bn,relu conv2d:64x3x3,pad:1,nobias bn,relu pool:2 \
flatten fc:128,linear,init:he bn,relu dropout:0.4 softmax:10";
        for (spec, batch) in [
            (recipe, 64),
            (recipe, 100),
            (recipe, 1000),
            (recipe, 10000),
            ("conv:20x5x5 fc:100 softmax:10", 10),
            ("conv:20x5x5 fc:100 softmax:10", 1000),
            ("conv:20x5x5 fc:100 softmax:10", 10000),
            (
                "conv:20x5x5,relu conv:40x5x5,relu fc:100,relu softmax:10",
                10000,
            ),
            ("fc:10 softmax:10", 1000),
        ] {
            let net = mnist_shaped(spec).unwrap();
            let (t, e) = (
                Plan::of(&net, batch).unwrap(),
                Plan::eval(&net, batch).unwrap(),
            );
            println!(
                "{spec:.40} @ {batch}: train {} eval {} (params {})",
                format_bytes(t.total()),
                format_bytes(e.total()),
                format_bytes(t.parameter_bytes)
            );
        }
    }
}
