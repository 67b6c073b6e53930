//! The book's hand-derived backpropagation, kept as the reference autodiff is tested against.
//!
//! This is `backprop()` and `update_mini_batch()` of network.py / network2.py in matrix form
//! over a mini-batch (rows are samples), written with plain loops so that it shares no code
//! with the kernels it checks:
//!
//! - BP1: `delta_L = (a_L - y) * sigma'(z_L)` (quadratic) or `a_L - y` (cross-entropy)
//! - BP2: `delta_l = (delta_{l+1} W_{l+1}) * sigma'(z_l)`
//! - BP3: `dC/db_l = sum over the batch of delta_l`
//! - BP4: `dC/dW_l = delta_l^T a_{l-1}`

/// Which of network2's costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefCost {
    /// `QuadraticCost`.
    Quadratic,
    /// `CrossEntropyCost`.
    CrossEntropy,
}

/// A sigmoid network as the book holds it: `weights[l]` is `[n_out][n_in]` row-major,
/// `biases[l]` has `n_out` entries.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmoidNet {
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// Weights per layer, row-major `n_out x n_in`.
    pub weights: Vec<Vec<f64>>,
    /// Biases per layer.
    pub biases: Vec<Vec<f64>>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl SigmoidNet {
    /// The weights and biases of a network of fully connected layers (`None` if another
    /// layer is in it), to run the book's backprop on the same numbers.
    pub fn of(net: &crate::Network<f64>) -> Option<SigmoidNet> {
        let g = net.graph();
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        let mut sizes = vec![net.input_dims().iter().product()];
        for l in net.layers() {
            let fc = l.as_fully_connected()?;
            weights.push(g.value(fc.w).ok()?.data().to_vec());
            biases.push(g.value(fc.b).ok()?.data().to_vec());
            sizes.push(fc.n_out());
        }
        Some(SigmoidNet {
            sizes,
            weights,
            biases,
        })
    }

    /// Activations and weighted inputs of every layer for the batch `x` (`batch * sizes[0]`).
    fn feedforward(&self, x: &[f64], batch: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut acts = vec![x.to_vec()];
        let mut zs = Vec::new();
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            let a = &acts[l];
            let mut z = vec![0.0; batch * n_out];
            for r in 0..batch {
                for j in 0..n_out {
                    let mut s = b[j];
                    for k in 0..n_in {
                        s += w[j * n_in + k] * a[r * n_in + k];
                    }
                    z[r * n_out + j] = s;
                }
            }
            acts.push(z.iter().map(|&v| sigmoid(v)).collect());
            zs.push(z);
        }
        (acts, zs)
    }

    /// `(nabla_w, nabla_b)`: the gradients of the cost summed over the batch, as
    /// network.py's `update_mini_batch` accumulates them.
    pub fn backprop(
        &self,
        x: &[f64],
        labels: &[usize],
        cost: RefCost,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let batch = labels.len();
        let layers = self.weights.len();
        let (acts, zs) = self.feedforward(x, batch);
        let mut nabla_w: Vec<Vec<f64>> = self.weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut nabla_b: Vec<Vec<f64>> = self.biases.iter().map(|b| vec![0.0; b.len()]).collect();
        // BP1
        let n_last = self.sizes[layers];
        let mut delta = vec![0.0; batch * n_last];
        for r in 0..batch {
            for j in 0..n_last {
                let a = acts[layers][r * n_last + j];
                let y = if labels[r] == j { 1.0 } else { 0.0 };
                let sp = a * (1.0 - a);
                delta[r * n_last + j] = match cost {
                    RefCost::Quadratic => (a - y) * sp,
                    RefCost::CrossEntropy => a - y,
                };
            }
        }
        for l in (0..layers).rev() {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            // BP3 and BP4
            for r in 0..batch {
                for j in 0..n_out {
                    let d = delta[r * n_out + j];
                    nabla_b[l][j] += d;
                    for k in 0..n_in {
                        nabla_w[l][j * n_in + k] += d * acts[l][r * n_in + k];
                    }
                }
            }
            if l == 0 {
                break;
            }
            // BP2
            let mut prev = vec![0.0; batch * n_in];
            for r in 0..batch {
                for k in 0..n_in {
                    let mut s = 0.0;
                    for j in 0..n_out {
                        s += delta[r * n_out + j] * self.weights[l][j * n_in + k];
                    }
                    let z = zs[l - 1][r * n_in + k];
                    prev[r * n_in + k] = s * sigmoid(z) * (1.0 - sigmoid(z));
                }
            }
            delta = prev;
        }
        (nabla_w, nabla_b)
    }

    /// network2.py's `update_mini_batch`: `w <- (1 - eta*lmbda/n) w - (eta/m) nabla_w`,
    /// `b <- b - (eta/m) nabla_b`.
    pub fn update_mini_batch(
        &mut self,
        x: &[f64],
        labels: &[usize],
        eta: f64,
        lmbda: f64,
        n: usize,
        cost: RefCost,
    ) {
        let m = labels.len() as f64;
        let (nw, nb) = self.backprop(x, labels, cost);
        for (w, g) in self.weights.iter_mut().zip(&nw) {
            for (w, g) in w.iter_mut().zip(g) {
                *w = (1.0 - eta * lmbda / n as f64) * *w - eta / m * g;
            }
        }
        for (b, g) in self.biases.iter_mut().zip(&nb) {
            for (b, g) in b.iter_mut().zip(g) {
                *b -= eta / m * g;
            }
        }
    }
}
