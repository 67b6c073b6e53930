//! Accuracy, cost and predictions of a network on a data set, in evaluation mode and without
//! recording a backward.

use crate::{Mode, Network, Result, Samples};
use autograd::Var;
use tensor::Float;

/// Accuracy and cost of a network on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples in all.
    pub total: usize,
    /// Mean cost (plus network2's L2 term when asked for).
    pub cost: f64,
}

/// The weight term network2's `total_cost` adds to the reported cost, `lmbda` over the size
/// of the data set evaluated (the book's formula).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightPenalty {
    /// `0.5 * (lmbda / len) * sum w^2`.
    L2(f64),
    /// `(lmbda / len) * sum |w|`.
    L1(f64),
}

impl Evaluation {
    /// `correct / total`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

impl<T: Float> Network<T> {
    /// The predicted class of each sample of `data`, computed `batch` at a time without
    /// recording a backward.
    pub fn predict<S: Samples>(&mut self, data: &S, batch: usize) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(data.len());
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(batch.max(1)) {
            self.graph.reset();
            let (z, _) = self.eval_batch(data, chunk, false)?;
            out.extend(tensor::argmax_rows(self.graph.value(z)?)?);
        }
        self.graph.reset();
        Ok(out)
    }

    /// Each sample's class probabilities (softmax of the outputs), `data.len()` rows of the
    /// output size one after another: what an ensemble averages.
    pub fn probabilities<S: Samples>(&mut self, data: &S, batch: usize) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(batch.max(1)) {
            self.graph.reset();
            let (z, _) = self.eval_batch(data, chunk, false)?;
            let p = tensor::softmax_rows(self.graph.value(z)?)?;
            out.extend(p.data().iter().map(|v| v.f64()));
        }
        self.graph.reset();
        Ok(out)
    }

    /// Accuracy and mean cost on `data`, plus `penalty` as network2's `total_cost` adds it.
    pub fn evaluate<S: Samples>(
        &mut self,
        data: &S,
        batch: usize,
        penalty: Option<WeightPenalty>,
    ) -> Result<Evaluation> {
        let idx: Vec<usize> = (0..data.len()).collect();
        let (mut correct, mut cost) = (0usize, 0.0f64);
        for chunk in idx.chunks(batch.max(1)) {
            self.graph.reset();
            let (z, loss) = self.eval_batch(data, chunk, true)?;
            let loss = loss.expect("asked for the cost");
            let pred = tensor::argmax_rows(self.graph.value(z)?)?;
            correct += pred
                .iter()
                .zip(chunk)
                .filter(|(&p, &i)| p == data.label(i))
                .count();
            cost += self.graph.value(loss)?.data()[0].f64() * chunk.len() as f64;
        }
        self.graph.reset();
        let mut cost = cost / data.len().max(1) as f64;
        if let Some(p) = penalty {
            let (lmbda, half, l1) = match p {
                WeightPenalty::L2(l) => (l, 0.5, false),
                WeightPenalty::L1(l) => (l, 1.0, true),
            };
            let sum: f64 = self
                .weights()
                .iter()
                .map(|&w| {
                    self.graph
                        .value(w)
                        .map(|t| {
                            t.data()
                                .iter()
                                .map(|v| if l1 { v.f64().abs() } else { v.f64() * v.f64() })
                                .sum::<f64>()
                        })
                        .unwrap_or(0.0)
                })
                .sum();
            cost += half * (lmbda / data.len().max(1) as f64) * sum;
        }
        Ok(Evaluation {
            correct,
            total: data.len(),
            cost,
        })
    }

    /// Forward (and cost, with `with_cost`) of the samples `chunk` in eval mode, recording
    /// no backward.
    fn eval_batch<S: Samples>(
        &mut self,
        data: &S,
        chunk: &[usize],
        with_cost: bool,
    ) -> Result<(Var, Option<Var>)> {
        let was = self.graph.set_recording(false);
        let r = (|| {
            let x = self.put_batch(data, chunk)?;
            let z = self.forward(x, Mode::Eval)?;
            if !with_cost {
                return Ok((z, None));
            }
            Ok((z, Some(self.cost_of(z, data, chunk)?)))
        })();
        self.graph.set_recording(was);
        r
    }
}
