//! Saving and loading: network2.py's JSON format (models move both ways between nndl and the
//! book's code) and safetensors (binary weights PyTorch, candle and burn read).
//!
//! network2's format: `{"sizes": [784, 30, 10], "weights": [[[..n_in..] x n_out] per layer],
//! "biases": [[[b] x n_out] per layer], "cost": "CrossEntropyCost"}` (biases are column
//! vectors, so each is a one-element list).

use crate::{Activation, Cost, Init, Network, NnError, Result, MAX_PARAMETERS};
use quoting::{capped, quote};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tensor::{Float, Tensor};

/// The largest model or checkpoint file nndl reads: a network of [`MAX_PARAMETERS`]
/// parameters stored as f64 (a checkpoint of an f64 network), plus 64 MiB for the headers,
/// tensor names and metadata. network2's JSON spells each number in up to ~25 characters, so
/// a JSON model is refused above about 85 million parameters (the book's nets have 24,000;
/// larger ones belong in safetensors).
pub const MAX_MODEL_FILE_BYTES: u64 = MAX_PARAMETERS as u64 * 8 + (1 << 26);

#[derive(serde::Serialize, serde::Deserialize)]
struct Network2Json {
    sizes: Vec<usize>,
    weights: Vec<Vec<Vec<f64>>>,
    biases: Vec<Vec<Vec<f64>>>,
    cost: String,
}

fn format_err(path: &Path, why: impl Into<String>) -> NnError {
    NnError::Format {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Writes `bytes` to `path` atomically (`atomic_file`): a crash leaves either the old file or
/// the new one, never half of one.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_file::write_bytes(path, bytes).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The layer sizes of a network2-style net (fully connected, sigmoid hidden layers, the output
/// nonlinearity in the cost, no dropout), or why it is not one.
fn network2_sizes<T: Float>(net: &Network<T>) -> std::result::Result<Vec<usize>, String> {
    if net.cost() == Cost::LogLikelihood {
        return Err(
            "network2's JSON format holds quadratic or cross-entropy nets; use safetensors".into(),
        );
    }
    let mut sizes = vec![net.input_dims().iter().product()];
    let n = net.layers().len();
    for (i, l) in net.layers().iter().enumerate() {
        let fc = l
            .as_fully_connected()
            .ok_or("network2's JSON format holds only fully connected layers; use safetensors")?;
        let want = if i + 1 == n {
            Activation::Identity
        } else {
            Activation::Sigmoid
        };
        if fc.activation() != want || fc.p_dropout() > 0.0 {
            return Err(format!(
                "layer {i} ({}) is not a network2 layer; use safetensors",
                l.describe()
            ));
        }
        sizes.push(fc.n_out());
    }
    Ok(sizes)
}

/// Saves a network2-style net in network2.py's JSON format.
///
/// ```
/// use nndl_nn::io::{load_network2_json, save_network2_json};
/// use nndl_nn::{serde_json, Cost, Init, Network};
///
/// let net = Network::<f64>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::ScaledByInputs, 5)?;
/// let path = std::env::temp_dir().join(format!("nndl-doc-{}.json", std::process::id()));
/// save_network2_json(&net, &path)?;
///
/// // What network2.py's `load` reads: sizes, weights per layer as [n_out][n_in] lists,
/// // biases as column vectors, the cost's class name.
/// let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
/// assert_eq!(json["sizes"], serde_json::json!([4, 3, 2]));
/// assert_eq!(json["cost"], "CrossEntropyCost");
/// assert_eq!(json["weights"][1].as_array().unwrap().len(), 2); // second layer: 2 rows of 3
/// assert_eq!(json["biases"][0][2].as_array().unwrap().len(), 1);
///
/// let loaded = load_network2_json::<f64>(&path)?;
/// std::fs::remove_file(&path)?;
/// assert_eq!(loaded.parameter_bits(), net.parameter_bits()); // every weight, bit for bit
/// assert_eq!(loaded.describe(), net.describe());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_network2_json<T: Float>(net: &Network<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let sizes = network2_sizes(net).map_err(|w| format_err(path, w))?;
    let (mut weights, mut biases) = (Vec::new(), Vec::new());
    for l in net.layers() {
        let fc = l
            .as_fully_connected()
            .ok_or_else(|| format_err(path, "not fully connected"))?;
        let w = net.graph().value(fc.w)?;
        weights.push(
            w.data()
                .chunks(fc.n_in())
                .map(|r| r.iter().map(|v| v.f64()).collect())
                .collect(),
        );
        biases.push(
            net.graph()
                .value(fc.b)?
                .data()
                .iter()
                .map(|v| vec![v.f64()])
                .collect(),
        );
    }
    let doc = Network2Json {
        sizes,
        weights,
        biases,
        cost: net.cost().network2_name().to_string(),
    };
    let text = serde_json::to_string(&doc).map_err(|e| format_err(path, e.to_string()))?;
    atomic_write(path, text.as_bytes())
}

/// Loads a network saved by network2.py's `save` (or by [`save_network2_json`]).
pub fn load_network2_json<T: Float>(path: impl AsRef<Path>) -> Result<Network<T>> {
    let path = path.as_ref();
    load_network2_json_from_bytes(&read_model_file(path)?, path)
}

/// [`load_network2_json`] of bytes already in memory; `path` names their origin in errors.
pub fn load_network2_json_from_bytes<T: Float>(bytes: &[u8], path: &Path) -> Result<Network<T>> {
    let doc: Network2Json = serde_json::from_slice(bytes)
        // serde_json quotes the offending value: a 30 MB string would be a 30 MB message.
        .map_err(|e| {
            format_err(
                path,
                format!("not a network2 JSON model: {}", capped(&e.to_string())),
            )
        })?;
    let cost = Cost::from_network2_name(&doc.cost)
        .ok_or_else(|| format_err(path, format!("unknown cost {}", quote(&doc.cost))))?;
    let s = &doc.sizes;
    if s.len() < 2
        || s.contains(&0)
        || doc.weights.len() != s.len() - 1
        || doc.biases.len() != s.len() - 1
    {
        return Err(format_err(
            path,
            format!(
                "sizes {} do not match {} weight and {} bias matrices",
                capped(&format!("{s:?}")),
                doc.weights.len(),
                doc.biases.len()
            ),
        ));
    }
    // Every matrix is checked against `sizes` before the network is built: `sizes` alone
    // must not make us allocate what the file does not hold.
    let mut values = Vec::with_capacity(s.len() - 1);
    for i in 0..s.len() - 1 {
        let (n_in, n_out) = (s[i], s[i + 1]);
        let wm = &doc.weights[i];
        if wm.len() != n_out || wm.iter().any(|r| r.len() != n_in) {
            return Err(format_err(
                path,
                format!("weights {i} must be {n_out} rows of {n_in}"),
            ));
        }
        let bm = &doc.biases[i];
        if bm.len() != n_out || bm.iter().any(|r| r.len() != 1) {
            return Err(format_err(
                path,
                format!("biases {i} must be {n_out} one-element rows"),
            ));
        }
        let wv: Vec<T> = wm.iter().flatten().map(|&v| T::of(v)).collect();
        let bv: Vec<T> = bm.iter().flatten().map(|&v| T::of(v)).collect();
        if wv.iter().chain(&bv).any(|v| !v.is_finite()) {
            return Err(format_err(
                path,
                format!("layer {i} holds a non-finite number"),
            ));
        }
        values.push((
            Tensor::from_vec(wv, &[n_out, n_in])?,
            Tensor::from_vec(bv, &[n_out])?,
        ));
    }
    let mut net = Network::<T>::sigmoid_mlp(s, cost, Init::Zeros, 0)
        .map_err(|e| format_err(path, e.to_string()))?;
    let fcs: Vec<(autograd::Var, autograd::Var)> = net
        .layers()
        .iter()
        .filter_map(|l| l.as_fully_connected())
        .map(|f| (f.w, f.b))
        .collect();
    for ((w, b), (wt, bt)) in fcs.into_iter().zip(values) {
        *net.graph_mut().param_mut(w)? = wt;
        *net.graph_mut().param_mut(b)? = bt;
    }
    Ok(net)
}

/// The bytes of a model or checkpoint file, refusing one larger than
/// [`MAX_MODEL_FILE_BYTES`]: a regular file from its size, before reading anything; a device
/// or pipe once that many bytes have come, or as soon as its first bytes begin neither a
/// safetensors file nor a JSON model (`/dev/zero` is refused after 64 KiB, not 2 GiB).
/// Memory that cannot be had is an error, not an abort. Every loader of nndl reads its file
/// through this.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    read_capped(path, MAX_MODEL_FILE_BYTES)
}

/// [`read_model_file`] with the limit `cap`.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let io_err = |source: std::io::Error| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || {
        format_err(
            path,
            format!(
                "larger than {cap} bytes, the most nndl reads from a model file \
                 ({MAX_PARAMETERS} parameters as f64, plus headers)"
            ),
        )
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_file() && meta.len() > cap {
        return Err(too_large());
    }
    let oom = |bytes: u64| {
        format_err(
            path,
            format!("out of memory: cannot allocate {bytes} bytes to read the file"),
        )
    };
    // A device or pipe has no size to check: its first bytes are, once there are enough.
    let mut sniffed = meta.is_file();
    // One byte past the cap tells a file that is too large from one exactly at the cap.
    let limit = cap.saturating_add(1);
    let mut source = file.take(limit);
    let mut data: Vec<u8> = Vec::new();
    // A regular file's size is known (one more byte for one that grows); a device or pipe
    // grows the buffer as data comes.
    let first = if meta.is_file() {
        meta.len() + 1
    } else {
        1 << 16
    };
    data.try_reserve_exact(usize::try_from(first.min(limit)).unwrap_or(usize::MAX))
        .map_err(|_| oom(first))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if data.capacity() - data.len() < n {
            // Double, as Vec would, but never past the limit.
            let target = (data.capacity() as u64 * 2)
                .max((data.len() + n) as u64)
                .min(limit);
            let additional = usize::try_from(target).unwrap_or(usize::MAX) - data.len();
            data.try_reserve_exact(additional)
                .map_err(|_| oom(target))?;
        }
        data.extend_from_slice(&buf[..n]);
        if !sniffed {
            match can_begin_model(&data) {
                Some(true) => sniffed = true,
                Some(false) => {
                    return Err(format_err(
                        path,
                        "neither a safetensors file nor a JSON model (it does not start like one)",
                    ))
                }
                None => {}
            }
        }
    }
    if data.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(data)
}

/// Whether `prefix` can begin a file nndl loads: safetensors (an 8-byte little-endian header
/// length, then the header's `{`) or JSON (`{` after any whitespace); `None` while too short
/// to tell. Only a plausible start, the parsers judge the rest.
fn can_begin_model(prefix: &[u8]) -> Option<bool> {
    let first = prefix.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') || prefix.get(8) == Some(&b'{') {
        return Some(true);
    }
    // A safetensors length byte can look like whitespace: decide once nine bytes are in.
    (prefix.len() >= 9 && first.is_some()).then_some(false)
}

/// Saves every parameter by name as f32 safetensors, with the architecture in the metadata.
///
/// The file holds one little-endian F32 tensor per parameter, in the layouts PyTorch uses,
/// named `l{i}.{name}` after the layer's position `i` in the network (counting every layer,
/// parameterless ones such as a max-pool too):
///
/// | layer | tensors | PyTorch counterpart |
/// |---|---|---|
/// | fully connected (`fc`, `softmax`) | `l{i}.w` `[n_out, n_in]`, `l{i}.b` `[n_out]` | `nn.Linear`'s `weight`, `bias` |
/// | conv-pool (`conv`), conv (`conv2d`) | `l{i}.w` `[filters, channels, kh, kw]`, `l{i}.b` `[filters]` | `nn.Conv2d`'s `weight`, `bias` |
/// | batch norm (`bn`) | `l{i}.gamma`, `l{i}.beta`, `l{i}.running_mean`, `l{i}.running_var`, each `[channels]` | `nn.BatchNorm1d/2d`'s `weight`, `bias`, `running_mean`, `running_var` |
///
/// A fully connected layer after a convolution reads the `[channels, height, width]` values
/// in row-major order, as after `nn.Flatten()`. The metadata key `architecture` holds
/// [`Network::describe`]. The output layer's nonlinearity belongs to the [`Cost`], not to
/// the weights. A `[784, 30, 10]` sigmoid net in PyTorch:
///
/// ```python
/// from safetensors.torch import load_file
/// import torch.nn as nn
/// sd = load_file("net.safetensors")
/// net = nn.Sequential(nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10), nn.Sigmoid())
/// net.load_state_dict({"0.weight": sd["l0.w"], "0.bias": sd["l0.b"], "2.weight": sd["l1.w"], "2.bias": sd["l1.b"]})
/// ```
///
/// ```
/// use nndl_nn::io::{load_safetensors, save_safetensors};
/// use nndl_nn::{spec, Cost, Network};
///
/// let spec = "conv:4x3x3,pool:2 fc:10,relu softmax:3";
/// let net: Network<f32> = spec::build(spec, &[1, 8, 8], Cost::LogLikelihood, 3)?;
/// let path = std::env::temp_dir().join(format!("nndl-doc-{}.safetensors", std::process::id()));
/// save_safetensors(&net, &path)?;
///
/// let bytes = std::fs::read(&path)?;
/// let file = safetensors::SafeTensors::deserialize(&bytes)?;
/// let mut tensors: Vec<(String, Vec<usize>)> =
///     file.tensors().into_iter().map(|(name, t)| (name, t.shape().to_vec())).collect();
/// tensors.sort();
/// assert_eq!(tensors, [
///     ("l0.b".to_string(), vec![4]),
///     ("l0.w".to_string(), vec![4, 1, 3, 3]), // 8x8 -> 6x6 -> pooled 3x3
///     ("l1.b".to_string(), vec![10]),
///     ("l1.w".to_string(), vec![10, 4 * 3 * 3]),
///     ("l2.b".to_string(), vec![3]),
///     ("l2.w".to_string(), vec![3, 10]),
/// ]);
/// assert!(file.tensors().iter().all(|(_, t)| t.dtype() == safetensors::Dtype::F32));
///
/// // Into a network of the same architecture (another seed: other weights until loaded).
/// let mut other: Network<f32> = spec::build(spec, &[1, 8, 8], Cost::LogLikelihood, 4)?;
/// assert_ne!(other.parameter_bits(), net.parameter_bits());
/// load_safetensors(&mut other, &path)?;
/// std::fs::remove_file(&path)?;
/// assert_eq!(other.parameter_bits(), net.parameter_bits());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_safetensors<T: Float>(net: &Network<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let meta = HashMap::from([("architecture".to_string(), net.describe())]);
    atomic_write(path, &safetensors_bytes(net, false, &[], meta, path)?)
}

/// Every parameter by name as safetensors bytes, then the `extra` lists (a checkpoint's
/// optimiser state): f32, or the network's own precision (f32 or f64) with `native`
/// (checkpoints: a resumed run continues from the exact weights).
pub(crate) fn safetensors_bytes<T: Float>(
    net: &Network<T>,
    native: bool,
    extra: &[(String, &[T])],
    meta: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    let f64_out = native && std::mem::size_of::<T>() == 8;
    let dtype = if f64_out {
        safetensors::Dtype::F64
    } else {
        safetensors::Dtype::F32
    };
    let g = net.graph();
    let encode = |data: &[T]| -> Vec<u8> {
        if f64_out {
            data.iter().flat_map(|v| v.f64().to_le_bytes()).collect()
        } else {
            data.iter()
                .flat_map(|v| (v.f64() as f32).to_le_bytes())
                .collect()
        }
    };
    let mut bufs = Vec::new();
    for p in g.parameters() {
        let t = g.value(p)?;
        bufs.push((
            g.name(p).unwrap_or("?").to_string(),
            t.dims().to_vec(),
            encode(t.data()),
        ));
    }
    for (name, data) in extra {
        bufs.push((name.clone(), vec![data.len()], encode(data)));
    }
    let views = bufs
        .iter()
        .map(|(n, d, b)| {
            safetensors::tensor::TensorView::new(dtype, d.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| format_err(path, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| format_err(path, e.to_string()))
}

/// Loads parameters saved by [`save_safetensors`] into a network of the same architecture;
/// names and shapes must all match, values be F32 or F64 and finite. On an error the network
/// is left as it was.
pub fn load_safetensors<T: Float>(net: &mut Network<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    load_safetensors_from_bytes(net, &read_model_file(path)?, path)
}

/// [`load_safetensors`] of bytes already in memory; `path` names their origin in errors.
pub fn load_safetensors_from_bytes<T: Float>(
    net: &mut Network<T>,
    bytes: &[u8],
    path: &Path,
) -> Result<()> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        format_err(
            path,
            format!("not a safetensors file: {}", capped(&e.to_string())),
        )
    })?;
    let values = parameters_from_safetensors(net, &st, path)?;
    set_parameters(net, values)
}

/// Writes checked values into the network's parameters.
pub(crate) fn set_parameters<T: Float>(
    net: &mut Network<T>,
    values: Vec<(autograd::Var, Tensor<T>)>,
) -> Result<()> {
    for (p, t) in values {
        *net.graph_mut().param_mut(p)? = t;
    }
    Ok(())
}

/// Every parameter of `net` read from `st`, checked (names, shapes, dtype, finite values)
/// before anything is written: all or nothing.
pub(crate) fn parameters_from_safetensors<T: Float>(
    net: &Network<T>,
    st: &safetensors::SafeTensors<'_>,
    path: &Path,
) -> Result<Vec<(autograd::Var, Tensor<T>)>> {
    let params: Vec<autograd::Var> = net.graph().parameters().collect();
    let stored = st
        .names()
        .iter()
        .filter(|n| !n.starts_with(crate::checkpoint::STATE_PREFIX))
        .count();
    if stored != params.len() {
        return Err(format_err(
            path,
            format!(
                "holds {stored} tensors but the network has {} parameters ({})",
                params.len(),
                net.describe()
            ),
        ));
    }
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let name = net.graph().name(p).unwrap_or("?").to_string();
        let view = st.tensor(&name).map_err(|_| {
            format_err(
                path,
                format!("no tensor {name:?}: the file is for another architecture"),
            )
        })?;
        let want = net.graph().value(p)?.dims().to_vec();
        if view.shape() != want.as_slice() {
            return Err(format_err(path, format!("{name} has shape {}, the network needs {want:?}: the file is for another architecture", capped(&format!("{:?}", view.shape())))));
        }
        let data = values_of::<T>(&view, &name, path)?;
        out.push((p, Tensor::from_vec(data, &want)?));
    }
    Ok(out)
}

/// A stored tensor's values, F32 or F64, in `T`; refused if any is not finite.
pub(crate) fn values_of<T: Float>(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
) -> Result<Vec<T>> {
    let data: Vec<T> = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| T::of(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect(),
        safetensors::Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|c| T::of(f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        other => {
            return Err(format_err(
                path,
                format!("{} is {other:?}, expected F32 or F64", quote(name)),
            ))
        }
    };
    if data.iter().any(|v| !v.is_finite()) {
        return Err(format_err(
            path,
            format!("{} holds a non-finite number", quote(name)),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_device_is_read_only_up_to_the_cap() {
        // /dev/zero has no size: read until one byte past the cap, then refused.
        let e = read_capped(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/dev/zero: neither a safetensors file"),
            "{e}"
        );
    }

    #[test]
    fn the_start_of_a_model_file_is_recognised() {
        let mut st = 42u64.to_le_bytes().to_vec();
        st.push(b'{');
        assert_eq!(can_begin_model(&st), Some(true));
        assert_eq!(can_begin_model(&st[..8]), None);
        assert_eq!(can_begin_model(b" \n\t{\"sizes\""), Some(true));
        assert_eq!(can_begin_model(b"  \n  \t  \n "), None);
        assert_eq!(can_begin_model(&[0; 8]), None);
        assert_eq!(can_begin_model(&[0; 9]), Some(false));
        assert_eq!(can_begin_model(b"not a model"), Some(false));
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_holding_a_model_is_read_whole() {
        // A FIFO is not a regular file: read through the sniffing path.
        let dir = std::env::temp_dir().join(format!("nndl-read-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("model.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.map(|s| s.success()).unwrap_or(false) {
            eprintln!("mkfifo unavailable: skipping");
            return;
        }
        let mut bytes = 40u64.to_le_bytes().to_vec();
        bytes.push(b'{');
        bytes.extend(std::iter::repeat_n(b' ', 300_000));
        let (f, b) = (fifo.clone(), bytes.clone());
        let writer = std::thread::spawn(move || std::fs::write(&f, &b));
        let got = read_capped(&fifo, 1 << 20);
        writer.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got.unwrap(), bytes);
    }

    #[test]
    fn a_file_up_to_the_cap_is_read_whole() {
        let p = std::env::temp_dir().join(format!("nndl-read-capped-{}", std::process::id()));
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read_capped(&p, 200_000).unwrap(), bytes);
        let e = read_capped(&p, 199_999).unwrap_err().to_string();
        assert!(e.contains("larger than 199999 bytes"), "{e}");
        let _ = std::fs::remove_file(&p);
    }
}
