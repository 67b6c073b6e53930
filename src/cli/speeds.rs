//! `--layer-speeds`: chapter 5's speed of learning, measured between epochs.

use nn::Network;
use tensor::Float;

/// Chapter 5's speed of learning as a monitor: `||dC/db^l||` of every hidden layer over the
/// first images of the training set (none: off).
pub struct Speeds {
    idx: Vec<usize>,
}

impl Speeds {
    /// Measures over the first `n` images (0: off).
    pub(crate) fn new(n: usize) -> Self {
        Speeds {
            idx: (0..n).collect(),
        }
    }

    /// The speeds, printed after `label`, if on.
    pub(crate) fn measure<T: Float>(
        &self,
        net: &mut Network<T>,
        data: &mnist::Dataset,
        label: &str,
    ) -> nn::Result<Option<Vec<f64>>> {
        if self.idx.is_empty() {
            return Ok(None);
        }
        let speeds = net.layer_speeds(data, &self.idx)?;
        let list: Vec<String> = speeds.iter().map(|s| format!("{s:.3}")).collect();
        println!("{label}: ||dC/db|| per hidden layer: {}", list.join(" "));
        Ok(Some(speeds))
    }

    /// Measures, prints and records the speeds in the epoch's record.
    pub fn after_epoch<T: Float>(
        &self,
        net: &mut Network<T>,
        data: &mnist::Dataset,
        e: &mut report::EpochRecord,
    ) -> nn::Result<()> {
        e.layer_speeds = self.measure(net, data, "Layer speeds")?;
        Ok(())
    }
}
