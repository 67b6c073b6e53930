use super::{check_eta, Optimizer, ParamStep, Regularization};
use crate::Result;
use autograd::{GradientConsumer, Graph, LinearGradient, Taken, Var};
use tensor::{Accum, Float, LinearStep};

/// Mini-batch stochastic gradient descent, `w <- decay*w - eta*grad`, as the book's three
/// programs do it (the decay is network2's weight decay, 1 otherwise).
#[derive(Debug, Clone)]
pub struct Sgd<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    /// Whether linear layers' weights are updated where the backward completes their
    /// gradient ([`autograd::Graph::backward_with`]: one pass over each weight matrix instead
    /// of five; on by default). The result is the same up to float rounding.
    pub fused: bool,
    /// Scratch of the fused update (`dY` transposed, the kernel's own), kept across steps.
    scratch: (Vec<T>, Vec<T>),
}

impl<T: Float> Sgd<T> {
    /// SGD at `eta` with `reg`, linear layers' weights updated inside the backward.
    pub fn new(eta: f64, reg: Regularization) -> Self {
        Sgd {
            eta,
            reg,
            fused: true,
            scratch: (Vec::new(), Vec::new()),
        }
    }

    /// The factor weights are multiplied by before the gradient step.
    fn decay(&self) -> T {
        T::of(self.reg.decay(self.eta))
    }
}

/// SGD's update of a linear layer's weights in the backward's pass over them: `dX` with the
/// old weights and `w <- decay*w - eta*(dY^T X + c w)` in one sweep (the tensor crate's fused
/// kernel), for mini-batches the kernel takes; larger ones are declined and stored.
struct FusedSgd<'a, T> {
    eta: T,
    decay: T,
    weights: &'a [Var],
    scratch: &'a mut (Vec<T>, Vec<T>),
}

impl<T: Float> GradientConsumer<T> for FusedSgd<'_, T> {
    fn take_linear(&mut self, param: Var, grad: &mut LinearGradient<'_, T>) -> Option<Taken<T>> {
        let (m, k, n) = grad.dims();
        if m == 0 || m > T::linear_step_rows() {
            return None;
        }
        let decay = if self.weights.contains(&param) {
            self.decay
        } else {
            T::one()
        };
        // The `c w` term of an in-graph L2 cost, folded into the decay: the weights are not
        // read for it.
        let decay = decay - self.eta * grad.scaled_value();
        let parts = grad.parts();
        // The buffers only grow: layers of different sizes take turns with them every step,
        // and shrinking would have each step zero-fill them again.
        let (dyt, scratch) = &mut *self.scratch;
        let dyt = at_least(dyt, n * m);
        for (i, row) in parts.dy.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                dyt[j * m + i] = v;
            }
        }
        let scratch = at_least(scratch, T::linear_step_scratch(m, k, n));
        let dx = parts.input_grad.map(|(d, mode)| {
            let keep = match mode {
                Accum::Overwrite => T::zero(),
                Accum::Add => T::one(),
            };
            (d, keep)
        });
        let step = LinearStep {
            m,
            k,
            n,
            x: parts.x,
            dyt,
            eta: self.eta,
            decay,
        };
        let (nonzero, sum_squares) = T::linear_step(&step, parts.value, dx, scratch)?;
        Some(Taken {
            nonzero,
            sum_squares: Some(sum_squares),
        })
    }
}

/// The first `len` elements of `buf`, grown (zero-filled) if it is shorter.
fn at_least<T: Float>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    &mut buf[..len]
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn begin_epoch(&mut self, _params: &[Var], _weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)
    }

    fn regularization(&self) -> Regularization {
        self.reg
    }

    /// `w <- decay*w - eta*grad` for weights, `b <- b - eta*grad` for the rest; a weight the
    /// loss does not reach still decays.
    fn update(&mut self, p: ParamStep<'_, T>) -> Result<()> {
        let d = if p.decayed { self.decay() } else { T::one() };
        let eta = T::of(self.eta);
        match p.grad {
            Some(grad) => p
                .value
                .iter_mut()
                .zip(grad)
                .for_each(|(w, &gr)| *w = d * *w - eta * gr),
            None if d != T::one() => p.value.iter_mut().for_each(|w| *w *= d),
            None => {}
        }
        Ok(())
    }

    fn differentiate(&mut self, g: &mut Graph<T>, loss: Var, weights: &[Var]) -> Result<()> {
        if !self.fused {
            return Ok(g.backward(loss)?);
        }
        let mut fused = FusedSgd {
            eta: T::of(self.eta),
            decay: self.decay(),
            weights,
            scratch: &mut self.scratch,
        };
        Ok(g.backward_with(loss, &mut fused)?)
    }
}
