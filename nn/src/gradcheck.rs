//! A layer's gradients checked in one call: `nndl_nn::gradcheck_layer`.

use crate::{Ctx, Layer, Mode};
use autograd::{gradcheck, GradcheckConfig, GradcheckError, GradcheckReport, Graph};
use rand::SeedableRng;
use tensor::Tensor;

/// Checks the gradients autograd derives from `layer.forward` against central finite
/// differences in f64, with respect to the input `x` (put on `g` as a parameter named `x`),
/// the layer's weights and its biases, in `mode`. Dropout draws the same mask at every
/// evaluation, so a layer with dropout is checked in training mode too.
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
    let xv = g.parameter("x", x);
    let mut wrt = vec![xv];
    wrt.extend(layer.weights());
    wrt.extend(layer.biases());
    let forward = |g: &mut Graph<f64>| {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(77);
        let mut cx = Ctx {
            mode,
            rng: &mut rng,
        };
        Ok(layer.forward(g, xv, &mut cx)?)
    };
    gradcheck(g, &wrt, forward, GradcheckConfig::default())
}
