use std::collections::HashMap;
use tensor::{Float, Shape, Tensor};

/// Buffers returned by `Graph::reset`, keyed by length: the same network at the same
/// mini-batch size asks for the same lengths every step, so after the first step no op
/// allocates its output.
#[derive(Default)]
pub(crate) struct Buffers<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    /// Buffers created because none of the right length was free.
    pub(crate) fresh: usize,
}

impl<T: Float> Buffers<T> {
    /// A zero-filled tensor of `shape`, reusing a buffer when one of that length is free.
    pub(crate) fn zeros(&mut self, shape: Shape) -> Tensor<T> {
        let buf = self.take(shape.numel());
        Tensor::zeros_in(shape, buf)
    }
}

// Values and scratch (`T`), and the pools' argmax indices (`u32`, a second pool of the graph's).
impl<T: Copy + Default> Buffers<T> {
    /// A buffer of exactly `len` elements (contents unspecified but initialised).
    pub(crate) fn take(&mut self, len: usize) -> Vec<T> {
        match self.free.get_mut(&len).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                self.fresh += 1;
                vec![T::default(); len]
            }
        }
    }

    /// How many buffers are free (waiting for reuse).
    #[cfg(test)]
    pub(crate) fn free_count(&self) -> usize {
        self.free.values().map(Vec::len).sum()
    }

    pub(crate) fn give(&mut self, buf: Vec<T>) {
        if buf.capacity() > 0 {
            self.free.entry(buf.len()).or_default().push(buf);
        }
    }
}
