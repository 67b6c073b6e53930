//! Every layer kind with every optimiser: each combination trains and, killed after its first
//! step and resumed from the checkpoint, ends with the very weights of the uninterrupted run.
//! A crafted or damaged checkpoint is refused with an error, never a panic or a silent reset.

use nn::{Adam, Averaged, InMemory, Momentum, Network, Optimizer, Regularization, Sgd};
use nndl::run::{Checkpoints, Run, RunError};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// Nets that between them hold every layer kind `--layers` builds.
const NETS: [&str; 6] = [
    "fc:6 softmax:10",
    "conv:2x5x5,pool:2,relu fc:6,dropout:0.2 softmax:10",
    "conv2d:2x3x3,pad:1,stride:2,nobias bn,relu pool:2 flatten softmax:10",
    "conv2d:2x5x5,tanh pool:3 dropout:0.3 flatten fc:6,linear,init:he bn,relu softmax:10",
    "flatten fc:6,sigmoid,init:large fc:6,tanh softmax:10,dropout:0.1",
    "conv2d:3x3x3,stride:3 bn,sigmoid flatten fc:5,relu,init:inputs bn softmax:10,init:outputs",
];

const IMAGES: usize = 12;
const BATCH: usize = 6;

/// `IMAGES` random MNIST-shaped images with random labels.
fn data() -> InMemory {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
    InMemory {
        inputs: (0..IMAGES * 784).map(|_| rng.random::<f64>()).collect(),
        labels: (0..IMAGES).map(|_| rng.random_range(0..10)).collect(),
        sample_len: 784,
    }
}

/// One optimiser of the matrix, by name.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sgd(Reg, bool),
    Momentum(Reg),
    Adam,
    AdamW,
}

#[derive(Clone, Copy, Debug)]
enum Reg {
    None,
    WeightDecay,
    InGraph,
    L1,
}

impl Reg {
    fn of(self) -> Regularization {
        match self {
            Reg::None => Regularization::None,
            Reg::WeightDecay => Regularization::WeightDecay {
                lmbda: 5.0,
                n: IMAGES,
            },
            Reg::InGraph => Regularization::InGraph {
                lmbda: 0.1,
                num_batches: IMAGES / BATCH,
            },
            Reg::L1 => Regularization::L1 {
                lmbda: 0.5,
                n: IMAGES,
            },
        }
    }
}

fn kinds() -> Vec<Kind> {
    let regs = [Reg::None, Reg::WeightDecay, Reg::InGraph, Reg::L1];
    let mut out = Vec::new();
    for r in regs {
        out.push(Kind::Sgd(r, true));
        out.push(Kind::Sgd(r, false));
        out.push(Kind::Momentum(r));
    }
    out.extend([Kind::Adam, Kind::AdamW]);
    out
}

fn optimizer(kind: Kind, averaged: bool) -> Opt {
    let inner: Box<dyn Optimizer<f32>> = match kind {
        Kind::Sgd(r, fused) => {
            let mut s = Sgd::new(0.05, r.of());
            s.fused = fused;
            Box::new(s)
        }
        Kind::Momentum(r) => Box::new(Momentum::new(0.05, 0.9, r.of())),
        Kind::Adam => {
            let mut a = Adam::new(0.003);
            a.weight_decay = 0.01;
            Box::new(a)
        }
        Kind::AdamW => Box::new(Adam::adamw(0.003, 0.05)),
    };
    if averaged {
        Box::new(Averaged::new(inner, 0.9))
    } else {
        inner
    }
}

/// An optimiser of the matrix, and what training with it gives.
type Opt = Box<dyn Optimizer<f32>>;
type Trained = Result<Network<f32>, RunError>;

/// Trains `layers` with `opt` up to `epochs` (one step each) with `ck`; returns the net.
fn train(layers: &str, mut opt: Opt, epochs: usize, ck: Checkpoints, data: &InMemory) -> Trained {
    let mut net = nn::spec::build::<f32>(layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 3)?;
    let mut run = Run::new("matrix", serde_json::json!({ "layers": layers }));
    run.train(&mut net, data, opt.as_mut())
        .epochs(epochs)
        .mini_batch(BATCH)
        .checkpoints(&ck)
        .state(0usize)
        .each_epoch(|end| {
            assert!(end.stats.mean_cost.is_finite());
            end.record.training_cost = Some(end.stats.mean_cost);
            *end.state += 1;
            Ok(())
        })?;
    Ok(net)
}

/// Two epochs without checkpoints.
fn straight(layers: &str, opt: Opt, data: &InMemory) -> Trained {
    train(layers, opt, 2, Checkpoints::default(), data)
}

/// The first epoch, checkpointed in `dir`.
fn first_epoch(layers: &str, opt: Opt, dir: &Path, data: &InMemory) -> Trained {
    let ck = Checkpoints::new(Some(dir.to_path_buf()), None);
    train(layers, opt, 1, ck, data)
}

/// The run checkpointed in `dir`, resumed to two epochs.
fn resumed(layers: &str, opt: Opt, dir: &Path, data: &InMemory) -> Trained {
    let ck = Checkpoints::new(None, Some(dir.to_path_buf()));
    train(layers, opt, 2, ck, data)
}

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nndl-matrix-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn every_layer_with_every_optimizer_trains_and_resumes_to_the_same_weights() {
    let data = data();
    let root = scratch("all");
    let mut cases = 0;
    for (n, layers) in NETS.iter().enumerate() {
        let start = nn::spec::build::<f32>(layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 3)
            .unwrap()
            .parameter_bits();
        for kind in kinds() {
            for averaged in [false, true] {
                let what = format!("{layers} / {kind:?} / averaged {averaged}");
                let straight = straight(layers, optimizer(kind, averaged), &data)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    straight.parameter_bits() != start,
                    "{what}: nothing trained"
                );
                let dir = root.join(format!("{n}-{kind:?}-{averaged}"));
                first_epoch(layers, optimizer(kind, averaged), &dir, &data)
                    .unwrap_or_else(|e| panic!("{what}, first epoch: {e}"));
                let resumed = resumed(layers, optimizer(kind, averaged), &dir, &data)
                    .unwrap_or_else(|e| panic!("{what}, resumed: {e}"));
                assert!(
                    resumed.parameter_bits() == straight.parameter_bits(),
                    "{what}: the resumed run's weights differ"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, NETS.len() * 14 * 2);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_resumed_optimizer_is_the_saved_one_not_a_fresh_one() {
    // Without its state a resumed Adam (moments, step count) or average ends elsewhere: the
    // matrix above would pass for a checkpoint that forgot the state if this did not fail.
    let data = data();
    let root = scratch("fresh");
    let layers = NETS[0];
    for averaged in [false, true] {
        let straight = straight(layers, optimizer(Kind::Adam, averaged), &data).unwrap();
        let dir = root.join(format!("{averaged}"));
        first_epoch(layers, optimizer(Kind::Adam, averaged), &dir, &data).unwrap();
        // Resumed with plain SGD: the checkpoint's Adam state is refused, not dropped.
        let sgd = optimizer(Kind::Sgd(Reg::None, true), false);
        let e = resumed(layers, sgd, &dir, &data)
            .err()
            .expect("an Adam checkpoint resumed by SGD");
        assert!(e.to_string().contains("optimizer state"), "{e}");
        let resumed = resumed(layers, optimizer(Kind::Adam, averaged), &dir, &data).unwrap();
        assert!(resumed.parameter_bits() == straight.parameter_bits());
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The checkpoint file of `dir`, rewritten by `edit` (its tensors by name, its JSON state).
fn tamper(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>, &mut serde_json::Value),
) {
    let file = nn::checkpoint::path(dir);
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    // The random state holds 128-bit numbers a `serde_json::Value` would round: kept as text.
    let text = &meta[nn::checkpoint::METADATA_KEY];
    let at = text.find("\"rng\":{").unwrap();
    let end = at + text[at..].find('}').unwrap() + 1;
    let rng = text[at..end].to_string();
    let rest = format!("{}\"rng\":null{}", &text[..at], &text[end..]);
    let mut json: serde_json::Value = serde_json::from_str(&rest).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors, &mut json);
    let json = json.to_string().replace("\"rng\":null", &rng);
    meta.insert(nn::checkpoint::METADATA_KEY.into(), json);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (n.clone(), v.unwrap())
        })
        .collect();
    std::fs::write(&file, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn a_damaged_or_crafted_checkpoint_is_refused_not_reset() {
    let data = data();
    let root = scratch("damaged");
    let layers = "conv2d:2x3x3 bn,relu flatten fc:6 softmax:10";
    type Edit = Box<dyn Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>, &mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a clock of 1e300 seconds",
            Box::new(|_, j| j["state"]["wall_seconds"] = 1e300.into()),
            "wall_seconds",
        ),
        (
            "a negative clock",
            Box::new(|_, j| j["state"]["wall_seconds"] = (-5.0).into()),
            "wall_seconds",
        ),
        (
            "a truncated Adam moment",
            Box::new(|t, _| {
                let m = t.iter_mut().find(|t| t.0 == "optimizer/adam.m.0").unwrap();
                m.1 = vec![m.1[0] - 1];
                m.2.truncate(m.2.len() - 4);
            }),
            "values saved for",
        ),
        (
            "an Adam moment removed",
            Box::new(|t, _| t.retain(|t| t.0 != "optimizer/adam.v.1")),
            "buffers saved for",
        ),
        (
            "an emptied weight average",
            Box::new(|t, _| {
                for t in t
                    .iter_mut()
                    .filter(|t| t.0.starts_with("optimizer/average."))
                {
                    (t.1, t.2) = (vec![0], Vec::new());
                }
            }),
            "weight average",
        ),
        (
            "a weight average removed",
            Box::new(|t, _| t.retain(|t| !t.0.starts_with("optimizer/average."))),
            "weight average",
        ),
        (
            "a step count that is not a number",
            Box::new(|_, j| j["state"]["optimizer"]["inner"]["t"] = "many".into()),
            "step count",
        ),
        (
            "a NaN in a moment",
            Box::new(|t, _| {
                let m = t.iter_mut().find(|t| t.0 == "optimizer/adam.v.0").unwrap();
                m.2[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
            "non-finite",
        ),
        (
            "more epochs done than recorded",
            Box::new(|_, j| j["epochs_done"] = 1_000_000_000u64.into()),
            "epoch count",
        ),
        (
            "a negative learning rate",
            Box::new(|_, j| j["state"]["eta"] = (-1.0).into()),
            "learning rate",
        ),
    ];
    for (k, (what, edit, says)) in cases.into_iter().enumerate() {
        let dir = root.join(k.to_string());
        let opt = || optimizer(Kind::Adam, true);
        first_epoch(layers, opt(), &dir, &data).unwrap();
        tamper(&dir, edit);
        let e = resumed(layers, opt(), &dir, &data)
            .err()
            .unwrap_or_else(|| panic!("{what}: resumed"));
        let e = e.to_string();
        assert!(e.contains(says), "{what}: {e}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_net_of_millions_of_parameters_with_adam_and_the_average_resumes() {
    // 784 x 4000 weights: Adam's two moments and the average are 3 x 12.6 MB, far past the
    // 100 MB a safetensors header may hold as JSON (what version 1 of the format did).
    let layers = "fc:4000,relu softmax:10";
    let net =
        nn::spec::build::<f32>(layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 3).unwrap();
    let n: usize = net
        .parameters()
        .iter()
        .map(|&p| net.graph().value(p).unwrap().numel())
        .sum();
    assert!(n > 3_000_000, "{n}");
    let data = data();
    let root = scratch("big");
    let straight = straight(layers, optimizer(Kind::Adam, true), &data).unwrap();
    first_epoch(layers, optimizer(Kind::Adam, true), &root, &data).unwrap();
    let resumed = resumed(layers, optimizer(Kind::Adam, true), &root, &data).unwrap();
    assert!(resumed.parameter_bits() == straight.parameter_bits());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_second_run_on_a_locked_checkpoint_directory_is_refused() {
    let root = scratch("lock");
    let held = Checkpoints::open(Some(root.clone()), None, false).unwrap();
    assert!(held.is_open());
    let e = Checkpoints::open(Some(root.clone()), None, false).unwrap_err();
    assert!(
        e.to_string().contains("another run is checkpointing there"),
        "{e}"
    );
    // Training::each_epoch opens what the program did not, so it cannot skip the lock either.
    let data = data();
    let adam = || optimizer(Kind::Adam, false);
    let e = first_epoch(NETS[0], adam(), &root, &data)
        .err()
        .expect("a second writer");
    assert!(e.to_string().contains("another run"), "{e}");
    drop(held);
    first_epoch(NETS[0], adam(), &root, &data).unwrap();
    // Now it holds a checkpoint: a new run there without --resume is refused.
    let e = first_epoch(NETS[0], adam(), &root, &data)
        .err()
        .expect("overwriting another run's checkpoint");
    assert!(e.to_string().contains("another run's checkpoint"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A JSON value of any kind, hostile numbers included.
fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        prop_oneof![
            any::<f64>().prop_filter("JSON has no NaN or infinity", |v| v.is_finite()),
            Just(1e300),
            Just(-1e300),
            Just(f64::MAX),
            Just(-0.0),
        ]
        .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Where in a checkpoint's JSON a crafted value goes: every field the run reads back.
const STATE_PATHS: [&[&str]; 12] = [
    &["epochs_done"],
    &["state", "wall_seconds"],
    &["state", "eta"],
    &["state", "program"],
    &["state", "schedule"],
    &["state", "record"],
    &["state", "record", "epochs"],
    &["state", "record", "settings"],
    &["state", "optimizer"],
    &["state", "optimizer", "t"],
    &["state", "optimizer", "inner"],
    &["state", "optimizer", "inner", "t"],
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any value in any field of the run state: the resume either continues or is refused
    /// with an error; it never panics (the clock, counts and the optimiser's numbers are all
    /// checked).
    #[test]
    fn any_run_state_resumes_or_is_refused_never_panics(
        at in 0..STATE_PATHS.len(),
        value in any_json(),
    ) {
        let data = data();
        let dir = scratch(&format!("prop-{at}"));
        let layers = "flatten fc:6 bn softmax:10";
        let opt = || optimizer(Kind::Adam, true);
        first_epoch(layers, opt(), &dir, &data).unwrap();
        tamper(&dir, |_, json| {
            let mut slot = json;
            for key in STATE_PATHS[at] {
                slot = &mut slot[*key];
            }
            *slot = value.clone();
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resumed(layers, opt(), &dir, &data).map(|n| n.parameter_bits())
        }));
        let _ = std::fs::remove_dir_all(&dir);
        proptest::prop_assert!(r.is_ok(), "{:?} = {} panicked", STATE_PATHS[at], value);
    }
}

/// `scalars` and the `optimizer/...` tensors as checkpoint format 1 kept them: all JSON.
fn format1(
    scalars: &serde_json::Value,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
) -> serde_json::Value {
    let lists = |prefix: &str| -> serde_json::Value {
        let values: Vec<Vec<f64>> = (0..)
            .map_while(|k| {
                let name = format!("optimizer/{prefix}.{k}");
                let t = tensors.iter().find(|t| t.0 == name)?;
                Some(
                    t.2.chunks_exact(4)
                        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                )
            })
            .collect();
        serde_json::json!(values)
    };
    match scalars["optimizer"].as_str() {
        Some("averaged") => serde_json::json!({
            "inner": format1(&scalars["inner"], tensors),
            "average": lists("average"),
            "t": scalars["t"],
        }),
        Some("adam") => {
            serde_json::json!({ "m": lists("adam.m"), "v": lists("adam.v"), "t": scalars["t"] })
        }
        Some("momentum") => serde_json::json!({ "velocities": lists("momentum.velocity") }),
        _ => serde_json::Value::Null,
    }
}

#[test]
fn a_run_checkpointed_in_format_1_still_resumes_to_the_same_weights() {
    let data = data();
    let root = scratch("format1");
    let layers = "conv2d:2x3x3 bn,relu flatten fc:6 softmax:10";
    for (k, (kind, averaged)) in [
        (Kind::Adam, true),
        (Kind::Momentum(Reg::WeightDecay), false),
        (Kind::Sgd(Reg::None, true), true),
        (Kind::Sgd(Reg::L1, false), false),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{kind:?} / averaged {averaged}");
        let straight = straight(layers, optimizer(kind, averaged), &data).unwrap();
        let dir = root.join(k.to_string());
        first_epoch(layers, optimizer(kind, averaged), &dir, &data).unwrap();
        tamper(&dir, |tensors, json| {
            json["version"] = 1.into();
            json["state"]["optimizer"] = format1(&json["state"]["optimizer"], tensors);
            tensors.retain(|t| !t.0.starts_with("optimizer/"));
        });
        let resumed = resumed(layers, optimizer(kind, averaged), &dir, &data)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            resumed.parameter_bits() == straight.parameter_bits(),
            "{what}"
        );
    }
    // A format this nndl does not know is refused by number.
    let dir = root.join("future");
    first_epoch(layers, optimizer(Kind::Adam, false), &dir, &data).unwrap();
    tamper(&dir, |_, json| json["version"] = 3.into());
    let e = resumed(layers, optimizer(Kind::Adam, false), &dir, &data)
        .err()
        .unwrap();
    assert!(e.to_string().contains("format version 3"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
