//! The layer trait, the train/eval mode, and activations.

use crate::Result;
use autograd::{Graph, Var};
use tensor::Float;

/// Training (dropout active) or evaluation (dropout's scaling instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training.
    Train,
    /// Evaluation.
    Eval,
}

impl Mode {
    /// Copies of each tape value a step keeps: the value and, in training, its gradient.
    pub(crate) fn copies(self) -> u128 {
        match self {
            Mode::Train => 2,
            Mode::Eval => 1,
        }
    }
}

/// What a forward pass needs besides the graph and the input: the mode, and the random
/// source of dropout masks.
pub struct Ctx<'a> {
    /// Train or eval.
    pub mode: Mode,
    /// Random numbers for dropout masks.
    pub rng: &'a mut rand_pcg::Pcg64,
}

/// Which of nn's layers a [`Layer`] is: what code that treats one kind apart (network3's
/// filter plot draws a conv-pool layer's weights) matches on, rather than on the text of
/// [`Layer::describe`], which is for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerKind {
    /// [`crate::FullyConnected`] (network3's softmax layer too).
    FullyConnected,
    /// [`crate::ConvPool`].
    ConvPool,
    /// [`crate::Conv2d`].
    Conv2d,
    /// [`crate::BatchNorm`].
    BatchNorm,
    /// [`crate::MaxPool2d`].
    MaxPool2d,
    /// [`crate::Dropout`].
    Dropout,
    /// [`crate::Flatten`].
    Flatten,
    /// A layer defined outside nn.
    Other,
}

/// A layer: parameters on the graph plus a forward written with graph ops only. No gradient
/// code: autograd differentiates whatever `forward` records.
///
/// A layer of one's own needs a `forward`, the lists of its parameters, its output shape
/// and a description; [`crate::gradcheck_layer`] then checks the gradients autograd derives
/// for it, and [`crate::Network::push`] puts it in a network.
///
/// ```
/// use nndl_nn::{gradcheck_layer, Activation, Cost, Ctx, Float, Graph, Init, Layer, Mode};
/// use nndl_nn::{Network, NnError, Tensor, Var};
///
/// /// `y = s * tanh(x)`, with a learned scale `s` per feature.
/// struct ScaledTanh {
///     s: Var,
///     n: usize,
/// }
///
/// impl ScaledTanh {
///     fn new<T: Float>(g: &mut Graph<T>, name: &str, n: usize) -> nndl_nn::Result<Self> {
///         let s = g.parameter(format!("{name}.s"), Tensor::full(&[n], T::one())?);
///         Ok(ScaledTanh { s, n })
///     }
/// }
///
/// impl<T: Float> Layer<T> for ScaledTanh {
///     fn forward(&self, g: &mut Graph<T>, x: Var, _cx: &mut Ctx<'_>) -> nndl_nn::Result<Var> {
///         let t = g.tanh(x)?;
///         Ok(g.mul(t, self.s)?) // [batch, n] times [n]: broadcast over the batch
///     }
///     fn weights(&self) -> Vec<Var> {
///         Vec::new()
///     }
///     fn biases(&self) -> Vec<Var> {
///         vec![self.s] // not weight-decayed
///     }
///     fn output_dims(&self, input: &[usize]) -> nndl_nn::Result<Vec<usize>> {
///         if input != [self.n] {
///             return Err(NnError::Config(format!("ScaledTanh({}) got {input:?}", self.n)));
///         }
///         Ok(input.to_vec())
///     }
///     fn describe(&self) -> String {
///         format!("ScaledTanh({})", self.n)
///     }
/// }
///
/// // Gradients with respect to the input (3 samples of 4) and the scales, in f64.
/// let mut g = Graph::<f64>::new();
/// let layer = ScaledTanh::new(&mut g, "st", 4)?;
/// let x = Tensor::from_vec((0..12).map(|i| 0.3 * i as f64 - 1.5).collect(), &[3, 4])?;
/// let report = gradcheck_layer(&mut g, &layer, x, Mode::Train)?;
/// assert_eq!(report.checked, 12 + 4);
///
/// // In a network, before a softmax output layer:
/// let mut net = Network::<f32>::new(&[4], Cost::LogLikelihood, 0);
/// let layer = ScaledTanh::new(net.graph_mut(), "l0", 4)?;
/// net.push(Box::new(layer))?.add_fc(3, Activation::Identity, Init::Zeros, 0.0)?;
/// assert_eq!(net.output_dims(), &[3]);
/// assert_eq!(net.parameters().len(), 3); // l0.s, l1.w, l1.b
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Layer<T: Float>: Send {
    /// Records the layer's computation on `g` for the mini-batch `x`.
    fn forward(&self, g: &mut Graph<T>, x: Var, cx: &mut Ctx<'_>) -> Result<Var>;
    /// The parameters L2 regularises (the weights).
    fn weights(&self) -> Vec<Var>;
    /// The parameters it does not (the biases).
    fn biases(&self) -> Vec<Var>;
    /// The shape of one sample's output given one sample's input shape (checked on build).
    fn output_dims(&self, input: &[usize]) -> Result<Vec<usize>>;
    /// A short description, e.g. `FullyConnected(784 -> 30, sigmoid)`.
    fn describe(&self) -> String;
    /// Which of nn's layers this is; [`LayerKind::Other`] for a layer defined elsewhere.
    fn kind(&self) -> LayerKind {
        LayerKind::Other
    }
    /// What a batch of `batch` samples of shape `input` holds in memory while this layer's
    /// forward (and in [`Mode::Train`], backward) runs, for [`crate::memory::Plan`]. The
    /// default counts the output and, in training, its gradient: right for a layer made of
    /// one elementwise op; a layer saving more for its backward should say so.
    fn footprint(&self, input: &[usize], batch: u128, mode: Mode) -> crate::memory::Footprint {
        let out = self.output_dims(input).unwrap_or_default();
        let values = crate::memory::product(&out).saturating_mul(batch);
        crate::memory::Footprint {
            kept: values.saturating_mul(mode.copies()),
            ..Default::default()
        }
    }
    /// The layer as a fully connected one, if it is (for network2's JSON format).
    fn as_fully_connected(&self) -> Option<&crate::FullyConnected> {
        None
    }
}

/// The activations of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// No nonlinearity (the output layer, whose nonlinearity is the cost's).
    Identity,
    /// Logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// max(x, 0).
    Relu,
}

impl Activation {
    /// Applies the activation on the graph.
    pub fn apply<T: Float>(self, g: &mut Graph<T>, x: Var) -> Result<Var> {
        Ok(match self {
            Activation::Identity => x,
            Activation::Sigmoid => g.sigmoid(x)?,
            Activation::Tanh => g.tanh(x)?,
            Activation::Relu => g.relu(x)?,
        })
    }

    /// The same activation as a fused kernel's.
    pub(crate) fn kernel(self) -> tensor::unary::Act {
        use tensor::unary::Act;
        match self {
            Activation::Identity => Act::Identity,
            Activation::Sigmoid => Act::Sigmoid,
            Activation::Tanh => Act::Tanh,
            Activation::Relu => Act::Relu,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }

    /// Parses `sigmoid`, `tanh`, `relu`, `identity`/`linear`/`none`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "identity" | "linear" | "none" => Activation::Identity,
            _ => return None,
        })
    }
}
