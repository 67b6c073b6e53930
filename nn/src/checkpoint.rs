//! Checkpoints: what a run needs to continue after a kill exactly as if it had not stopped.
//!
//! A checkpoint is one file, `DIR/checkpoint.safetensors`, replaced atomically (temp file in
//! the same directory, fsync, rename, fsync of the directory) after every epoch, so a run
//! killed at any moment leaves the previous checkpoint intact. It is an ordinary safetensors
//! file (any safetensors reader sees the weights, in the network's own precision, so a
//! resumed run continues from the exact weights); the rest is JSON in its metadata under
//! `nndl.checkpoint`: the format version, the epochs completed, the architecture, the
//! precision, the network's random state (shuffling and dropout; `rand_pcg::Pcg64` through
//! serde) and the program's own state (best-validation bookkeeping, the run record so far).
//!
//! An optimiser's buffers (momentum's velocities, Adam's moments, the weight average) are
//! tensors in the same file, named `optimizer/...` ([`STATE_PREFIX`]) beside the parameters,
//! so their size is bounded only by the network's: the JSON stays a few kilobytes whatever
//! the network (safetensors readers cap the header at 100 MB).
//!
//! ```no_run
//! # fn main() -> nndl_nn::Result<()> {
//! use nndl_nn::checkpoint::Checkpoint;
//! # let mut net = nndl_nn::Network::<f32>::sigmoid_mlp(&[784, 30, 10], nndl_nn::Cost::Quadratic, nndl_nn::Init::Large, 0)?;
//! let dir = std::path::Path::new("runs/ckpt");
//! let first = if nndl_nn::checkpoint::exists(dir) {
//!     Checkpoint::load(&mut net, dir)?.epochs_done // weights and random state restored
//! } else {
//!     0
//! };
//! for epoch in first..30 {
//!     // ... train the epoch, evaluate ...
//!     Checkpoint { epochs_done: epoch + 1, state: nndl_nn::serde_json::json!({}) }.save(&net, dir)?;
//! }
//! # Ok(()) }
//! ```

use crate::io::{
    atomic_write, parameters_from_safetensors, safetensors_bytes, set_parameters, values_of,
};
use crate::{Network, NnError, Result};
use quoting::{capped, quote};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tensor::Float;

/// The checkpoint's file name inside its directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// The safetensors metadata key holding the checkpoint's JSON.
pub const METADATA_KEY: &str = "nndl.checkpoint";

/// The format version this code writes (1, which kept the optimiser state in the JSON, is
/// still read).
const VERSION: u32 = 2;

/// The name prefix of the extra tensors (optimiser state) a checkpoint holds besides the
/// parameters.
pub const STATE_PREFIX: &str = "optimizer/";

/// Named tensors saved beside the weights (an optimiser's buffers), in the network's
/// precision.
pub type StateTensors<T> = Vec<(String, Vec<T>)>;

/// What a checkpoint holds besides the weights and the random state.
///
/// ```
/// use nndl_nn::checkpoint::{self, Checkpoint};
/// use nndl_nn::rand::Rng;
/// use nndl_nn::{serde_json, Cost, Init, Network};
///
/// let dir = std::env::temp_dir().join(format!("nndl-doc-ckpt-{}", std::process::id()));
/// let mut net = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::ScaledByInputs, 1)?;
/// let _: u32 = net.rng_mut().random(); // the random state moves on during training
/// let saved = Checkpoint { epochs_done: 3, state: serde_json::json!({"best_accuracy": 0.5}) };
/// saved.save(&net, &dir)?;
/// assert!(checkpoint::exists(&dir));
/// assert_eq!(checkpoint::peek(&dir)?.epochs_done, 3); // without a network
///
/// // A network built the same way (here with another seed) resumes exactly.
/// let mut resumed = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::ScaledByInputs, 9)?;
/// let loaded = Checkpoint::load(&mut resumed, &dir)?;
/// std::fs::remove_dir_all(&dir)?;
/// assert_eq!(loaded, saved);
/// assert_eq!(resumed.parameter_bits(), net.parameter_bits());
/// assert_eq!(resumed.rng_mut().random::<u64>(), net.rng_mut().random::<u64>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Epochs completed: a resumed run starts at this epoch (counted from 0).
    pub epochs_done: usize,
    /// The program's own state (best-validation bookkeeping, the run record so far).
    pub state: serde_json::Value,
}

/// The JSON in the file's metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    version: u32,
    epochs_done: usize,
    architecture: String,
    precision: String,
    rng: rand_pcg::Pcg64,
    state: serde_json::Value,
}

/// The checkpoint file of the directory `dir`.
pub fn path(dir: impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join(FILE_NAME)
}

/// Whether `dir` holds a checkpoint file (it may still be for another network, or damaged).
pub fn exists(dir: impl AsRef<Path>) -> bool {
    path(dir).is_file()
}

fn precision<T: Float>() -> &'static str {
    if std::mem::size_of::<T>() == 8 {
        "f64"
    } else {
        "f32"
    }
}

fn bad(path: &Path, why: impl Into<String>) -> NnError {
    NnError::Format {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The error for bytes safetensors cannot read.
fn not_safetensors(path: &Path, e: safetensors::SafeTensorError) -> NnError {
    let why = capped(&e.to_string());
    bad(
        path,
        format!("not a checkpoint (damaged or not safetensors): {why}"),
    )
}

/// The checkpoint's JSON, checked for the format version.
fn metadata(bytes: &[u8], path: &Path) -> Result<Meta> {
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| not_safetensors(path, e))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            bad(
                path,
                format!("a safetensors file without {METADATA_KEY:?} metadata is not a checkpoint"),
            )
        })?;
    let meta: Meta = serde_json::from_str(json).map_err(|e| {
        bad(
            path,
            format!("damaged checkpoint metadata: {}", capped(&e.to_string())),
        )
    })?;
    if meta.version != VERSION && meta.version != 1 {
        return Err(bad(
            path,
            format!(
                "checkpoint format version {} (this nndl reads {VERSION}); its weights still load as a safetensors model (--load)",
                meta.version
            ),
        ));
    }
    Ok(meta)
}

/// The epochs done and the program's state of the checkpoint in `dir`, read without a
/// network: the weights are not checked or loaded.
pub fn peek(dir: impl AsRef<Path>) -> Result<Checkpoint> {
    let file = path(dir);
    let bytes = crate::io::read_model_file(&file)?;
    let meta = metadata(&bytes, &file)?;
    Ok(Checkpoint {
        epochs_done: meta.epochs_done,
        state: meta.state,
    })
}

impl Checkpoint {
    /// Saves `net`'s weights and random state with `self` to `dir` (created if missing),
    /// atomically replacing the previous checkpoint.
    pub fn save<T: Float>(&self, net: &Network<T>, dir: impl AsRef<Path>) -> Result<()> {
        self.save_with(net, &[], dir)
    }

    /// [`Checkpoint::save`] with `tensors` (an optimiser's buffers) stored beside the weights,
    /// each named [`STATE_PREFIX`] + its name.
    pub fn save_with<T: Float>(
        &self,
        net: &Network<T>,
        tensors: &[(String, Vec<T>)],
        dir: impl AsRef<Path>,
    ) -> Result<()> {
        let dir = dir.as_ref();
        let file = path(dir);
        std::fs::create_dir_all(dir).map_err(|e| NnError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let meta = Meta {
            version: VERSION,
            epochs_done: self.epochs_done,
            architecture: net.describe(),
            precision: precision::<T>().to_string(),
            rng: net.rng_state(),
            state: self.state.clone(),
        };
        let json = serde_json::to_string(&meta).map_err(|e| bad(&file, e.to_string()))?;
        let metadata = HashMap::from([
            (METADATA_KEY.to_string(), json),
            ("architecture".to_string(), net.describe()),
        ]);
        let extra: Vec<(String, &[T])> = tensors
            .iter()
            .map(|(n, v)| (format!("{STATE_PREFIX}{n}"), v.as_slice()))
            .collect();
        atomic_write(
            &file,
            &safetensors_bytes(net, true, &extra, metadata, &file)?,
        )
    }

    /// Loads the checkpoint in `dir` into `net` (weights and random state) and returns the
    /// rest. `net` must be built as the checkpointed one was; on any error it is unchanged.
    pub fn load<T: Float>(net: &mut Network<T>, dir: impl AsRef<Path>) -> Result<Checkpoint> {
        Ok(Self::load_with(net, dir)?.0)
    }

    /// [`Checkpoint::load`], also returning the tensors saved with
    /// [`Checkpoint::save_with`] (names without the prefix).
    pub fn load_with<T: Float>(
        net: &mut Network<T>,
        dir: impl AsRef<Path>,
    ) -> Result<(Checkpoint, StateTensors<T>)> {
        let file = path(dir);
        let bytes = crate::io::read_model_file(&file)?;
        Self::load_from_bytes(net, &bytes, &file)
    }

    /// [`Checkpoint::load_with`] of a checkpoint file's bytes; `path` names their origin in
    /// errors.
    pub fn load_from_bytes<T: Float>(
        net: &mut Network<T>,
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Checkpoint, StateTensors<T>)> {
        let st =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(path, e))?;
        let meta = metadata(bytes, path)?;
        let here = net.describe();
        if meta.architecture != here {
            return Err(bad(
                path,
                format!(
                    "the checkpoint is of {}, not of this run's {here}",
                    capped(&meta.architecture)
                ),
            ));
        }
        if meta.precision != precision::<T>() {
            return Err(bad(
                path,
                format!(
                    "the checkpoint holds {} weights, this network is {}",
                    capped(&meta.precision),
                    precision::<T>()
                ),
            ));
        }
        let values = parameters_from_safetensors(net, &st, path)?;
        let mut extra = Vec::new();
        for (name, view) in st.tensors() {
            let Some(short) = name.strip_prefix(STATE_PREFIX) else {
                continue;
            };
            if view.shape().len() != 1 {
                return Err(bad(
                    path,
                    format!(
                        "{} has shape {}, not a list",
                        quote(&name),
                        capped(&format!("{:?}", view.shape()))
                    ),
                ));
            }
            extra.push((short.to_string(), values_of::<T>(&view, &name, path)?));
        }
        let mut state = meta.state;
        if meta.version == 1 {
            // Format 1 kept the optimiser's buffers in the JSON: moved where format 2 has them.
            let old = state.get("optimizer").cloned().unwrap_or_default();
            let now = crate::OptimizerState::<T>::from_format1(&old)
                .map_err(|e| bad(path, format!("damaged optimizer state: {e}")))?;
            if let Some(o) = state.get_mut("optimizer") {
                *o = now.scalars_json();
            }
            extra.extend(now.buffers);
        }
        // safetensors lists tensors in no fixed order; the optimiser finds them by name.
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        set_parameters(net, values)?;
        net.set_rng_state(meta.rng);
        Ok((
            Checkpoint {
                epochs_done: meta.epochs_done,
                state,
            },
            extra,
        ))
    }
}
