//! A layer's gradients checked in one call: `nndl_nn::gradcheck_layer` (f64 against finite
//! differences, with the nondeterminism check and kink detection), `gradcheck_layer_with`
//! (any [`CheckOptions`], fast mode included) and `precision_check_layer` (the f32 kernels
//! against f64).

use crate::{Ctx, Layer, Mode};
use autograd::{
    gradcheck_with, gradgradcheck, precision_check, CheckOptions, CheckReport, GradcheckConfig,
    GradcheckError, GradcheckReport, Graph, PrecisionConfig, PrecisionReport, Var,
};
use rand::SeedableRng;
use tensor::{Float, Tensor};

/// The seed of the generator every forward of a check draws dropout masks from, so that each
/// evaluation (and the f32 and f64 runs of a precision check) sees the same mask.
const MASK_SEED: u64 = 77;

/// The input `x` (as a parameter named `x`), then the layer's weights and biases.
fn inputs<T: Float>(g: &mut Graph<T>, layer: &dyn Layer<T>, x: Tensor<T>) -> (Var, Vec<Var>) {
    let xv = g.parameter("x", x);
    let mut wrt = vec![xv];
    wrt.extend(layer.weights());
    wrt.extend(layer.biases());
    (xv, wrt)
}

/// The layer's forward with a fixed dropout mask.
fn forward<'a, T: Float>(
    layer: &'a dyn Layer<T>,
    xv: Var,
    mode: Mode,
) -> impl FnMut(&mut Graph<T>) -> autograd::Result<Var> + 'a {
    move |g: &mut Graph<T>| {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(MASK_SEED);
        let mut cx = Ctx {
            mode,
            rng: &mut rng,
        };
        Ok(layer.forward(g, xv, &mut cx)?)
    }
}

/// Checks the gradients autograd derives from `layer.forward` against central finite
/// differences in f64, with respect to the input `x` (put on `g` as a parameter named `x`),
/// the layer's weights and its biases, in `mode`. Dropout draws the same mask at every
/// evaluation, so a layer with dropout is checked in training mode too.
///
/// This is [`gradcheck_layer_with`] with [`CheckOptions::default()`]: every element, a
/// bitwise nondeterminism check of the backward, and kink detection (an input at a ReLU zero
/// or a max-pool tie is reported in [`CheckReport::kinks`], not failed); it returns the
/// worst element.
///
/// ```
/// use nndl_nn::rand::SeedableRng;
/// use nndl_nn::{gradcheck_layer, Activation, FcConfig, FullyConnected, Graph, Init, Mode, Pcg64, Tensor};
///
/// let mut g = Graph::<f64>::new();
/// let mut rng = Pcg64::seed_from_u64(1);
/// let config = FcConfig { activation: Activation::Tanh, init: Init::ScaledByOutputs, p_dropout: 0.5 };
/// let fc = FullyConnected::new(&mut g, "fc", 6, 4, config, &mut rng)?;
/// let x = Tensor::randn(&[3, 6], 0.0, 1.0, &mut rng)?;
/// let report = gradcheck_layer(&mut g, &fc, x, Mode::Train)?;
/// assert_eq!(report.checked, 3 * 6 + 4 * 6 + 4); // input, weights, biases
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradcheck_layer(
    g: &mut Graph<f64>,
    layer: &dyn Layer<f64>,
    x: Tensor<f64>,
    mode: Mode,
) -> Result<GradcheckReport, GradcheckError> {
    gradcheck_layer_with(g, layer, x, mode, CheckOptions::default()).map(|r| r.worst)
}

/// [`gradcheck_layer`] with the options of the complete check: fast mode for a large layer,
/// the nondeterminism tolerance, kink detection (see [`CheckOptions`]). Returns the whole
/// report (the kinks found, fast mode's projections).
pub fn gradcheck_layer_with(
    g: &mut Graph<f64>,
    layer: &dyn Layer<f64>,
    x: Tensor<f64>,
    mode: Mode,
    opts: CheckOptions,
) -> Result<CheckReport, GradcheckError> {
    let (xv, wrt) = inputs(g, layer, x);
    gradcheck_with(g, &wrt, forward(layer, xv, mode), opts)
}

/// The second-order check of a layer (PyTorch's `gradgradcheck`): the gradient of the
/// layer's projected output with respect to the input `x`, its weights and biases is recorded
/// on the tape ([`Graph::gradients`]), and the gradient of a random projection of *that* is
/// compared with central differences of the first-order gradient, in f64. What a Hessian-
/// vector product or a gradient penalty through the layer relies on. Dropout draws the same
/// mask at every evaluation.
///
/// ```
/// use nndl_nn::rand::SeedableRng;
/// use nndl_nn::{gradgradcheck_layer, Activation, FcConfig, FullyConnected, Graph, Init, Mode, Pcg64, Tensor};
///
/// let mut g = Graph::<f64>::new();
/// let config = FcConfig { activation: Activation::Sigmoid, init: Init::ScaledByInputs, p_dropout: 0.0 };
/// let fc = FullyConnected::new(&mut g, "fc", 5, 3, config, &mut Pcg64::seed_from_u64(1))?;
/// let x = Tensor::randn(&[4, 5], 0.0, 1.0, &mut Pcg64::seed_from_u64(2))?;
/// let report = gradgradcheck_layer(&mut g, &fc, x, Mode::Train)?;
/// assert_eq!(report.checked, 4 * 5 + 3 * 5 + 3); // x, w and b
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradgradcheck_layer(
    g: &mut Graph<f64>,
    layer: &dyn Layer<f64>,
    x: Tensor<f64>,
    mode: Mode,
) -> Result<GradcheckReport, GradcheckError> {
    let (xv, wrt) = inputs(g, layer, x);
    gradgradcheck(
        g,
        &wrt,
        forward(layer, xv, mode),
        GradcheckConfig::default(),
    )
}

/// The precision check of a layer: the same layer built in f32 (`layer32` on `g32`) and in
/// f64 (`layer64` on `g64`, e.g. from the same seed), run forward and backward on the input
/// `x` in `mode`, the f32 output and gradients (input, weights, biases) compared with the
/// f64 ones by [`precision_check`] (whose doc derives the tolerance). The f32 run executes
/// the kernels training uses: the instruction set selected at run time and the fused ops.
///
/// The bound's `n` (the longest sum, [`PrecisionConfig::terms`]), when `cfg` leaves it
/// `None`, is worked out for nn's layers from their shapes, and for a layer of another kind
/// is the number of elements of the input and parameters:
/// - fully connected, `w [out, in]`: `z = x w^T + b` sums `in` products, `dx = dz w` sums
///   `out`, `dw = dz^T x` and `db` sum over the batch: `max(in, out, batch)`;
/// - convolution (and the conv-pool's), `w [f, c, kh, kw]` and `p` output positions per
///   image: an output sums `c kh kw` products, an input's gradient at most `f kh kw`, a
///   filter's or bias's gradient `batch p`: `max(c kh kw, f kh kw, batch p)` (for the
///   conv-pool, `p` is the valid convolution's `(h - kh + 1)(w - kw + 1)`);
/// - batch norm: `batch` times a channel's spatial positions (its statistics and the
///   backward's sums);
/// - max-pool (non-overlapping windows: no sums), dropout (one product), flatten (a copy): 1.
///
/// `x` is rounded to f32 and every parameter of `g64` set to its f32 counterpart (paired in
/// creation order), so both runs compute the same function of the same numbers. Dropout
/// draws the same mask in both. `x` becomes a parameter named `x` of each graph.
///
/// ```
/// use nndl_nn::rand::SeedableRng;
/// use nndl_nn::{precision_check_layer, Activation, FcConfig, FullyConnected, Graph, Init, Mode};
/// use nndl_nn::{Pcg64, PrecisionConfig, Tensor};
///
/// let config = FcConfig { activation: Activation::Sigmoid, init: Init::ScaledByInputs, p_dropout: 0.0 };
/// let (mut g32, mut g64) = (Graph::<f32>::new(), Graph::<f64>::new());
/// let fc32 = FullyConnected::new(&mut g32, "fc", 20, 10, config, &mut Pcg64::seed_from_u64(1))?;
/// let fc64 = FullyConnected::new(&mut g64, "fc", 20, 10, config, &mut Pcg64::seed_from_u64(1))?;
/// let x = Tensor::randn(&[8, 20], 0.0, 1.0, &mut Pcg64::seed_from_u64(2))?;
/// let r = precision_check_layer(&mut g32, &fc32, &mut g64, &fc64, &x, Mode::Train, PrecisionConfig::default())?;
/// assert!(r.ratio <= 1.0, "{r}"); // the worst element's error over its tolerance
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn precision_check_layer(
    g32: &mut Graph<f32>,
    layer32: &dyn Layer<f32>,
    g64: &mut Graph<f64>,
    layer64: &dyn Layer<f64>,
    x: &Tensor<f64>,
    mode: Mode,
    cfg: PrecisionConfig,
) -> Result<PrecisionReport, GradcheckError> {
    let narrow: Vec<f32> = x.data().iter().map(|&v| v as f32).collect();
    let x32 = Tensor::from_shape_vec(x.shape(), narrow).map_err(autograd::AutogradError::from)?;
    // Widened back: the f64 run's input is the f32 one exactly. (`precision_check` copies
    // every parameter from g32 to g64 anyway, x included.)
    let x64 = Tensor::from_shape_vec(
        x.shape(),
        x32.data().iter().map(|&v| f64::from(v)).collect(),
    )
    .map_err(autograd::AutogradError::from)?;
    let cfg = PrecisionConfig {
        terms: cfg.terms.or_else(|| longest_sum(g32, layer32, x.dims())),
        ..cfg
    };
    let (xv32, wrt32) = inputs(g32, layer32, x32);
    let (xv64, wrt64) = inputs(g64, layer64, x64);
    precision_check(
        g32,
        &wrt32,
        forward(layer32, xv32, mode),
        g64,
        &wrt64,
        forward(layer64, xv64, mode),
        cfg,
    )
}

/// The number of terms of the longest sum in the forward or backward of one of nn's layers
/// on a batch of shape `x` (`[batch, ...]`), by the rules in [`precision_check_layer`]'s
/// doc; `None` for a layer of another kind, or shapes that do not fit.
fn longest_sum(g: &Graph<f32>, layer: &dyn Layer<f32>, x: &[usize]) -> Option<usize> {
    use crate::LayerKind;
    let batch = *x.first()?;
    let per_sample: usize = x[1..].iter().product();
    let w = |g: &Graph<f32>| -> Option<Vec<usize>> {
        let w = *layer.weights().first()?;
        Some(g.value(w).ok()?.dims().to_vec())
    };
    let n = match layer.kind() {
        LayerKind::FullyConnected => {
            let w = w(g)?;
            w[0].max(w[1]).max(batch)
        }
        LayerKind::Conv2d => {
            let w = w(g)?;
            let out = layer.output_dims(&x[1..]).ok()?;
            let positions: usize = out[1..].iter().product();
            (w[1] * w[2] * w[3])
                .max(w[0] * w[2] * w[3])
                .max(batch * positions)
        }
        LayerKind::ConvPool => {
            let w = w(g)?;
            let (h, wd) = match x.len() {
                4 => (x[2], x[3]),
                // [batch, c*h*w] with square channels, as the layer accepts.
                2 => {
                    let side = ((x[1] / w[1]) as f64).sqrt() as usize;
                    (side, side)
                }
                _ => return None,
            };
            let positions = (h.checked_sub(w[2])? + 1) * (wd.checked_sub(w[3])? + 1);
            (w[1] * w[2] * w[3])
                .max(w[0] * w[2] * w[3])
                .max(batch * positions)
        }
        LayerKind::BatchNorm => batch * per_sample / x.get(1).copied()?.max(1),
        LayerKind::MaxPool2d | LayerKind::Dropout | LayerKind::Flatten => 1,
        _ => return None,
    };
    Some(n.max(1))
}
