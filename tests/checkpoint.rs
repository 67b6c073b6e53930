//! Checkpoints: a resumed run ends bit-identical to an uninterrupted one, a kill during a save
//! leaves the previous checkpoint loadable, and damaged or foreign checkpoints are refused
//! without touching the network.

mod mnist_slice;

use mnist_slice::training;

use nn::checkpoint::{self, Checkpoint};
use nn::{Cost, Epoch, Init, Network, Regularization, Sgd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("nndl-ckpt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The nets the resume test runs: network.py's (shuffling draws from the random state) and a
/// network3 net with dropout (every mini-batch draws masks from it).
fn build(kind: usize) -> Network<f32> {
    match kind {
        0 => Network::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 7).unwrap(),
        _ => nn::spec::build(
            "fc:30,relu,dropout:0.5 softmax:10",
            &mnist::IMAGE_DIMS,
            nn::Cost::LogLikelihood,
            7,
        )
        .unwrap(),
    }
}

fn train(net: &mut Network<f32>, epochs: std::ops::Range<usize>) {
    let reg = Regularization::None;
    for epoch in epochs {
        net.train_epoch(
            training(),
            &mut Sgd::new(0.5, reg),
            Epoch::shuffled(epoch, 10),
            |_| {},
        )
        .unwrap();
    }
}

#[test]
fn one_epoch_then_resume_for_two_equals_three_epochs_straight() {
    for kind in 0..2 {
        let mut straight = build(kind);
        train(&mut straight, 0..3);

        let dir = TempDir::new("resume");
        let mut first = build(kind);
        train(&mut first, 0..1);
        let state = serde_json::json!({"best": [0.5, 0]});
        Checkpoint {
            epochs_done: 1,
            state: state.clone(),
        }
        .save(&first, &dir.0)
        .unwrap();
        drop(first); // the "kill"

        let mut resumed = build(kind);
        let ck = Checkpoint::load(&mut resumed, &dir.0).unwrap();
        assert_eq!((ck.epochs_done, &ck.state), (1, &state));
        train(&mut resumed, ck.epochs_done..3);
        assert!(
            resumed.parameter_bits() == straight.parameter_bits(),
            "net {kind}: the resumed run's weights differ from the uninterrupted run's"
        );

        // The random state is what makes it work: the same weights with the random state of
        // a fresh net (load_safetensors reads a checkpoint's weights only) end elsewhere.
        let mut weights_only = build(kind);
        nn::io::load_safetensors(&mut weights_only, checkpoint::path(&dir.0)).unwrap();
        train(&mut weights_only, 1..3);
        assert!(
            weights_only.parameter_bits() != straight.parameter_bits(),
            "net {kind}"
        );
    }
}

#[test]
fn an_f64_network_checkpoints_its_exact_weights() {
    let dir = TempDir::new("f64");
    let mut net =
        Network::<f64>::sigmoid_mlp(&[784, 20, 10], Cost::CrossEntropy, Init::Large, 3).unwrap();
    net.train_epoch(
        training(),
        &mut Sgd::new(0.5, Regularization::None),
        Epoch::shuffled(0, 10),
        |_| {},
    )
    .unwrap();
    Checkpoint {
        epochs_done: 1,
        state: serde_json::Value::Null,
    }
    .save(&net, &dir.0)
    .unwrap();
    let mut back =
        Network::<f64>::sigmoid_mlp(&[784, 20, 10], Cost::CrossEntropy, Init::Large, 99).unwrap();
    Checkpoint::load(&mut back, &dir.0).unwrap();
    assert!(back.parameter_bits() == net.parameter_bits());
    assert!(back.rng_state() == net.rng_state());
    // An f32 net of the same shape is refused: resuming it would not be exact.
    let mut f32_net =
        Network::<f32>::sigmoid_mlp(&[784, 20, 10], Cost::CrossEntropy, Init::Large, 3).unwrap();
    let e = refusal(&mut f32_net, &dir.0);
    assert!(e.contains("f64 weights"), "{e}");
}

/// The net the tests below checkpoint, seeded `seed`.
fn small(seed: u64) -> Network<f32> {
    Network::sigmoid_mlp(&[784, 16, 10], Cost::Quadratic, Init::Large, seed).unwrap()
}

/// Why the checkpoint in `dir` is refused for `net`.
fn refusal(net: &mut Network<f32>, dir: impl AsRef<Path>) -> String {
    Checkpoint::load(net, dir).unwrap_err().to_string()
}

fn saved(dir: &Path, epochs_done: usize) -> Network<f32> {
    let net = small(5);
    Checkpoint {
        epochs_done,
        state: serde_json::json!({ "epochs_done": epochs_done }),
    }
    .save(&net, dir)
    .unwrap();
    net
}

#[test]
fn a_torn_temp_file_from_a_killed_save_leaves_the_previous_checkpoint() {
    let dir = TempDir::new("torn");
    let net = saved(&dir.0, 4);
    let good = std::fs::read(checkpoint::path(&dir.0)).unwrap();
    // A save killed halfway leaves a temp file beside the checkpoint, never a torn checkpoint.
    let tmp = dir.0.join(format!(".{}.a1B2c3.tmp", checkpoint::FILE_NAME));
    std::fs::write(&tmp, &good[..good.len() / 2]).unwrap();
    let mut back = small(0);
    let ck = Checkpoint::load(&mut back, &dir.0).unwrap();
    assert_eq!(ck.epochs_done, 4);
    assert!(back.parameter_bits() == net.parameter_bits());
    // The next save replaces the checkpoint whatever lies beside it.
    saved(&dir.0, 5);
    assert_eq!(Checkpoint::load(&mut back, &dir.0).unwrap().epochs_done, 5);
}

#[test]
fn a_damaged_checkpoint_is_refused_with_its_name_and_the_network_is_untouched() {
    let dir = TempDir::new("damaged");
    saved(&dir.0, 2);
    let file = checkpoint::path(&dir.0);
    let good = std::fs::read(&file).unwrap();
    let mut net = small(11);
    let before = (net.parameter_bits(), net.rng_state());
    let mut nan_tail = good.clone();
    let n = nan_tail.len();
    nan_tail[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    for (what, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("header only", good[..64].to_vec()),
        ("empty", Vec::new()),
        ("a NaN in the last tensor", nan_tail),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let e = Checkpoint::load(&mut net, &dir.0)
            .expect_err(what)
            .to_string();
        assert!(e.contains(&file.display().to_string()), "{what}: {e}");
        assert!(
            (net.parameter_bits(), net.rng_state()) == before,
            "{what}: a refused checkpoint changed the network"
        );
    }
}

#[test]
fn a_checkpoint_of_another_architecture_or_not_a_checkpoint_is_refused() {
    let dir = TempDir::new("foreign");
    saved(&dir.0, 1);
    let mut other =
        Network::<f32>::sigmoid_mlp(&[784, 17, 10], Cost::Quadratic, Init::Large, 0).unwrap();
    let e = refusal(&mut other, &dir.0);
    assert!(e.contains("not of this run's"), "{e}");
    // A plain safetensors model is not a checkpoint (no epoch, no random state).
    nn::io::save_safetensors(&small(5), checkpoint::path(&dir.0)).unwrap();
    let e = refusal(&mut small(5), &dir.0);
    assert!(e.contains("is not a checkpoint"), "{e}");
    let e = refusal(&mut small(5), dir.0.join("missing"));
    assert!(e.contains("missing"), "{e}");
}

const CHILD_ENV: &str = "NNDL_CHECKPOINT_WRITER_DIR";

/// The child process of the kill test: saves checkpoints of a 3 MB net in a loop until killed.
#[test]
#[ignore = "the child process of a_kill_during_a_save_leaves_the_previous_checkpoint_loadable"]
fn checkpoint_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let net = big();
    for k in 1.. {
        Checkpoint {
            epochs_done: k,
            state: serde_json::json!({ "k": k }),
        }
        .save(&net, &dir)
        .unwrap();
    }
}

fn big() -> Network<f32> {
    Network::sigmoid_mlp(&[784, 1000, 10], Cost::Quadratic, Init::Large, 1).unwrap()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[test]
fn a_kill_during_a_save_leaves_the_previous_checkpoint_loadable() {
    let dir = TempDir::new("kill");
    let exe = std::env::current_exe().unwrap();
    let want = big().parameter_bits();
    let (mut torn, mut last, mut rounds) = (0, 0, 0);
    // Until three kills have landed during a save (about a third do), at most 60 rounds.
    for round in 0..60u64 {
        if torn == 3 {
            break;
        }
        rounds += 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "checkpoint_writer_child", "--ignored"])
            .env(CHILD_ENV, &dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a first checkpoint, then kill at a moment that varies from round to round.
        let t = std::time::Instant::now();
        while !checkpoint::exists(&dir.0) && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100 + (round * 37) % 100));
        child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
        child.wait().unwrap();
        let leftovers = temp_files(&dir.0);
        if !leftovers.is_empty() {
            torn += 1;
        }
        let mut net = big();
        let ck = Checkpoint::load(&mut net, &dir.0)
            .unwrap_or_else(|e| panic!("round {round}: the previous checkpoint must load: {e}"));
        assert_eq!(ck.state["k"], ck.epochs_done, "round {round}");
        assert!(ck.epochs_done >= 1, "round {round}");
        assert!(net.parameter_bits() == want, "round {round}");
        last = last.max(ck.epochs_done);
        for f in leftovers {
            std::fs::remove_file(f).unwrap();
        }
    }
    println!("{torn} of {rounds} kills landed during a save");
    assert!(last >= 1);
    assert!(
        torn > 0,
        "no kill landed during a save (no temp file left behind): the test tested nothing"
    );
}

#[test]
fn peek_reads_the_epoch_and_state_without_a_network() {
    let dir = TempDir::new("peek");
    saved(&dir.0, 7);
    let ck = checkpoint::peek(&dir.0).unwrap();
    assert_eq!(ck.epochs_done, 7);
    assert_eq!(ck.state["epochs_done"], 7);
    std::fs::write(checkpoint::path(&dir.0), b"junk").unwrap();
    let e = checkpoint::peek(&dir.0).unwrap_err().to_string();
    assert!(e.contains("checkpoint.safetensors"), "{e}");
}
