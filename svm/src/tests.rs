//! Unit tests on small synthetic problems: the parallel trainer against LIBSVM's own
//! `svm_train`, the model file against LIBSVM's own writer and reader, and bad input.

use std::ffi::CString;
use std::io::Cursor;
use std::sync::Mutex;

use libsvm_sys::{svm_free_and_destroy_model, svm_load_model, svm_predict, svm_save_model};

use crate::*;

/// LIBSVM's model I/O uses a static line buffer and `setlocale`: one call at a time.
static LIBSVM_IO: Mutex<()> = Mutex::new(());

/// A deterministic pseudo-random generator (64-bit LCG, high bits).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// `n` rows of `dims` features in three overlapping clusters (labels 7, 3, 5 by first
/// occurrence), values multiples of 1/256 as the book's pixels are, about a third of them zero.
fn clusters(n: usize, dims: usize, seed: u64) -> Problem {
    let mut rng = Lcg(seed);
    let mut f = Features::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = [7, 3, 5][i % 3];
        let centre = match class {
            7 => 60u32,
            3 => 130,
            _ => 190,
        };
        let row: Vec<f64> = (0..dims)
            .map(|d| {
                if rng.next().is_multiple_of(3) {
                    0.0
                } else {
                    let shift = if d % 2 == 0 { centre } else { 255 - centre };
                    let v = (shift + rng.next() % 120).saturating_sub(60).min(255);
                    f64::from(v) / 256.0
                }
            })
            .collect();
        f.push_dense(row).unwrap();
        labels.push(class);
    }
    Problem::new(f, labels).unwrap()
}

fn file_text(m: &Model) -> String {
    let mut buf = Vec::new();
    m.write_to(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// Equal texts, or a panic showing the first line that differs.
fn assert_same_text(a: &str, b: &str) {
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        assert_eq!(x, y, "line {} differs", n + 1);
    }
    assert_eq!(a.lines().count(), b.lines().count(), "line counts differ");
    assert_eq!(a, b);
}

/// Asserts that `back`, read from a file, is `m`: the same classes, offsets and support
/// vectors with their coefficients, and the same predictions on `p`.
fn assert_same_model(back: &Model, m: &Model, p: &Problem) {
    assert_eq!(back.classes(), m.classes());
    assert_eq!(back.rho(), m.rho());
    for i in 0..m.support_count() {
        assert_eq!(back.coefficients(i), m.coefficients(i));
        assert_eq!(back.support_vector(i), m.support_vector(i));
    }
    assert_eq!(back.predict(p.features()), m.predict(p.features()));
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nndl-svm-{tag}-{}.model", std::process::id()))
}

#[test]
fn parallel_training_gives_libsvms_own_model() {
    let p = clusters(300, 12, 1);
    let params = Params::rbf(2.0, 0.5);
    let ours = train(&p, &params).unwrap();
    let libsvm = train_sequential(&p, &params).unwrap();
    assert_eq!(ours.classes(), &[7, 3, 5]);
    assert_eq!(ours.classes(), libsvm.classes());
    assert_eq!(ours.support_per_class(), libsvm.support_per_class());
    assert_eq!(ours.support_indices(), libsvm.support_indices());
    assert_eq!(ours.rho(), libsvm.rho());
    assert!(ours.support_count() > 10 && ours.support_count() < 300);
    // Identical to the last bit: the whole model file is the same text.
    assert_same_text(&file_text(&ours), &file_text(&libsvm));
    // And it is a real classifier of these clusters.
    let correct = ours.correct(p.features(), p.labels());
    assert!(correct > 250, "{correct} of 300");
}

#[test]
fn precomputed_kernels_solve_the_same_problems() {
    let p = clusters(300, 12, 8);
    let libsvm = train(&p, &Params::rbf(2.0, 0.5)).unwrap();
    let params = Params {
        kernels: KernelEvaluation::Precomputed,
        ..Params::rbf(2.0, 0.5)
    };
    let fast = train(&p, &params).unwrap();
    assert_eq!(fast.params(), Some(params));
    assert_eq!(fast.kernel(), Kernel::Rbf { gamma: 0.5 });
    assert_eq!(fast.support_indices(), libsvm.support_indices());
    for (a, b) in fast.rho().iter().zip(libsvm.rho()) {
        assert!((a - b).abs() < 1e-6, "rho {a} vs {b}");
    }
    // The support vectors are the training rows themselves, not precomputed kernel rows.
    for i in 0..fast.support_count() {
        assert_eq!(fast.support_vector(i), libsvm.support_vector(i));
    }
    let test = clusters(200, 12, 9);
    assert_eq!(
        fast.predict(test.features()),
        libsvm.predict(test.features())
    );
}

#[test]
fn progress_counts_every_binary_problem() {
    let p = clusters(90, 6, 2);
    let seen = Mutex::new(Vec::new());
    train_with_progress(&p, &Params::rbf(1.0, 1.0), |done, total| {
        seen.lock().unwrap().push((done, total));
    })
    .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
}

#[test]
fn parallel_prediction_equals_one_by_one() {
    let p = clusters(240, 10, 3);
    let m = train(&p, &Params::rbf(1.0, 0.3)).unwrap();
    let test = clusters(500, 10, 4);
    let progress = std::sync::atomic::AtomicUsize::new(0);
    let all = m.predict_with_progress(test.features(), |d| {
        progress.fetch_max(d, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(progress.into_inner(), 500);
    let one_by_one: Vec<i32> = (0..500)
        .map(|i| m.predict_row(test.features(), i))
        .collect();
    assert_eq!(all, one_by_one);
    let row: Vec<(u32, f64)> = test.features().row(17).collect();
    assert_eq!(m.predict_sparse(row).unwrap(), all[17]);
}

#[test]
fn saved_model_reads_back_identically() {
    let p = clusters(200, 8, 5);
    // gamma = 1/3 and values k/255 are not short decimals: the file must keep every bit.
    let mut f = Features::new();
    for i in 0..p.len() {
        let row: Vec<(u32, f64)> = p
            .features()
            .row(i)
            .map(|(j, v)| (j, (v * 256.0).round() / 255.0))
            .collect();
        f.push_sparse(row).unwrap();
    }
    let p = Problem::new(f, p.labels().to_vec()).unwrap();
    let m = train(&p, &Params::rbf(3.0, 1.0 / 3.0)).unwrap();
    let path = temp_path("roundtrip");
    m.save(&path).unwrap();
    let back = Model::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_same_text(&file_text(&back), &file_text(&m));
    assert_eq!(back.kernel(), Kernel::Rbf { gamma: 1.0 / 3.0 });
    assert_eq!(back.params(), None);
    assert_eq!(back.support_indices(), None);
    assert_same_model(&back, &m, &p);
}

#[test]
fn libsvm_reads_our_files_and_we_read_libsvms() {
    let p = clusters(150, 8, 6);
    let m = train(&p, &Params::rbf(1.0, 0.7)).unwrap();
    let ours = temp_path("ours");
    let theirs = temp_path("theirs");
    m.save(&ours).unwrap();
    let _guard = LIBSVM_IO.lock().unwrap();
    crate::train::silence_libsvm();
    // LIBSVM's reader on our file predicts as we do.
    let c_ours = CString::new(ours.to_str().unwrap()).unwrap();
    // SAFETY: a well-formed model file (ours), freed below.
    let mut loaded = unsafe { svm_load_model(c_ours.as_ptr()) };
    assert!(!loaded.is_null());
    for i in 0..p.len() {
        let x = p.features().row_nodes(i);
        // SAFETY: complete model from LIBSVM's reader; terminated row.
        let theirs = unsafe { svm_predict(loaded, x.as_ptr()) } as i32;
        assert_eq!(theirs, m.predict_row(p.features(), i), "row {i}");
    }
    // SAFETY: loaded once, freed once.
    unsafe { svm_free_and_destroy_model(&mut loaded) };
    // LIBSVM's writer: our reader gets the same model (values k/256 survive its %.8g).
    let c_theirs = CString::new(theirs.to_str().unwrap()).unwrap();
    // SAFETY: our checked model struct, only read.
    assert_eq!(unsafe { svm_save_model(c_theirs.as_ptr(), m.raw()) }, 0);
    let back = Model::load(&theirs).unwrap();
    std::fs::remove_file(&ours).unwrap();
    std::fs::remove_file(&theirs).unwrap();
    assert_same_model(&back, &m, &p);
}

#[test]
fn one_class_problem_predicts_its_class() {
    let mut f = Features::new();
    f.push_dense([0.5, 0.25]).unwrap();
    f.push_dense([0.0, 1.0]).unwrap();
    let p = Problem::new(f, vec![4, 4]).unwrap();
    let m = train(&p, &Params::BOOK).unwrap();
    assert_eq!(m.classes(), &[4]);
    assert_eq!(m.support_count(), 0);
    assert_eq!(m.predict(p.features()), vec![4, 4]);
    let back = Model::read_from(Cursor::new(file_text(&m)), "one.model").unwrap();
    assert_eq!(back.predict(p.features()), vec![4, 4]);
}

#[test]
fn bad_parameters_are_refused_before_training() {
    let p = clusters(30, 4, 7);
    for (params, needle) in [
        (
            Params::rbf(0.0, 0.1),
            "invalid SVM parameter C = 0: must be > 0",
        ),
        (Params::rbf(-2.0, 0.1), "C = -2"),
        (
            Params::rbf(1.0, 0.0),
            "invalid SVM parameter gamma = 0: must be > 0",
        ),
        (Params::rbf(1.0, -1.0), "gamma = -1"),
    ] {
        for result in [train(&p, &params), train_sequential(&p, &params)] {
            let e = result.unwrap_err();
            assert!(matches!(e, Error::InvalidParameter { .. }), "{e:?}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}

/// A valid two-class RBF model file to corrupt.
const GOOD: &str = "svm_type c_svc\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 3\n\
rho 0.25\nlabel 1 2\nnr_sv 2 1\nSV\n1 1:0.5 3:1 \n0.5 2:0.25 \n-1.5 1:1 2:1 \n";

fn read(text: &str) -> Result<Model> {
    Model::read_from(Cursor::new(text.to_string()), "m.model")
}

#[test]
fn a_hand_written_model_predicts_by_its_decision_function() {
    let m = read(GOOD).unwrap();
    assert_eq!(m.classes(), &[1, 2]);
    assert_eq!(m.support_count(), 3);
    // f(x) = 1 K(x,a) + 0.5 K(x,b) - 1.5 K(x,c) - 0.25 with K = exp(-0.5 |x - y|^2);
    // at x = a: 1 + 0.5 e^{-0.5 (0.25 + 0.0625 + 1)} - 1.5 e^{-0.5 (0.25 + 1 + 1)} - 0.25 > 0
    // -> class 1; at x = c: e^{-0.5 (0.25+1+1)} + 0.5 e^{-0.5 (1 + 0.5625)} - 1.5 - 0.25 < 0
    // -> class 2.
    assert_eq!(m.predict_sparse([(1, 0.5), (3, 1.0)]).unwrap(), 1);
    assert_eq!(m.predict_sparse([(1, 1.0), (2, 1.0)]).unwrap(), 2);
    assert_eq!(read(&file_text(&m)).unwrap().rho(), &[0.25]);
}

/// GOOD with `from` replaced by `to`; `from` must stand there once, or the case would test
/// something else than it says.
fn edited(from: &str, to: &str) -> String {
    assert_eq!(GOOD.matches(from).count(), 1, "{from:?} in GOOD");
    GOOD.replace(from, to)
}

/// Asserts `text` is refused as a bad model, on line `line`, with `needle` in the message.
fn assert_bad_model(text: &str, needle: &str, line: usize) {
    let e = read(text).unwrap_err();
    let Error::BadModel { line: got, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(
        e.to_string().contains(needle),
        "{e} should contain {needle}"
    );
    assert_eq!(*got, line, "{e}");
    assert!(e.to_string().starts_with("m.model: line"), "{e}");
}

#[test]
fn bad_model_files_name_the_problem_and_line() {
    // Each: a part of GOOD and what replaces it, what the error says and the line it names.
    for (from, to, needle, line) in [
        ("-1.5 1:1 2:1 \n", "", "file ends after 2 of the 3", 11),
        (
            "2:1 \n",
            "2:1 \n0.5 1:1\n",
            "text after the 3 support vectors",
            13,
        ),
        (
            "total_sv 3",
            "total_sv 4",
            "does not add up to total_sv 4",
            9,
        ),
        ("nr_sv 2 1", "nr_sv 2 2", "does not add up to total_sv 3", 9),
        (
            "nr_sv 2 1",
            "nr_sv 2",
            "nr_sv has 1 values for nr_class 2",
            8,
        ),
        ("rho 0.25", "rho 0.25 1", "rho has 2 values, expected 1", 6),
        ("rho 0.25", "rho x", "bad rho \"x\"", 6),
        ("gamma 0.5\n", "", "rbf kernel without a gamma line", 8),
        ("rbf", "precomputed", "precomputed", 2),
        ("rbf", "magic", "unknown kernel_type", 2),
        ("label 1 2\n", "", "no label line", 8),
        ("c_svc", "epsilon_svr", "only classification models", 1),
        ("nr_class 2", "nr_class 0", "nr_class \"0\" is not in", 4),
        ("nr_class 2\n", "", "rho before nr_class", 5),
        ("3:1 ", "3:nan ", "bad feature value \"nan\"", 10),
        ("1:0.5 3:1", "3:1 1:0.5", "feature index 1 after 3", 10),
        ("2:0.25", "0:0.25", "feature index 0 after 0", 11),
        ("2:0.25", "2=0.25", "expected index:value", 11),
        ("gamma 0.5", "gamma 0.5\ngamma 0.5", "gamma given twice", 4),
        ("SV\n", "SVs\n", "unknown header key \"SVs\"", 9),
        ("label 1 2", "label 1 1", "class label 1 appears twice", 0),
    ] {
        assert_bad_model(&edited(from, to), needle, line);
    }
    assert_bad_model(&GOOD[..40], "file ends before the SV line", 3);
    assert_bad_model("", "file ends before the SV line", 0);
}

#[test]
fn unreadable_model_files_are_named() {
    let e = Model::read_from(Cursor::new(vec![0xff, 0xfe, b'\n']), "bin.model").unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    let e = Model::load("/nonexistent/dir/x.model").unwrap_err();
    assert!(matches!(e, Error::Io { action: "read", .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/dir/x.model"), "{e}");
}

#[test]
fn a_failed_save_leaves_the_old_file() {
    let m = read(GOOD).unwrap();
    let e = m.save("/nonexistent/dir/x.model").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Io {
                action: "write",
                ..
            }
        ),
        "{e:?}"
    );
    let path = temp_path("keep");
    std::fs::write(&path, "old").unwrap();
    m.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), file_text(&m));
    std::fs::remove_file(&path).unwrap();
    let dir = path.parent().unwrap();
    let stray = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".nndl-svm-keep")
        });
    assert!(!stray, "temp file left behind");
}

/// A reader that counts the bytes taken from it.
struct CountingReader<R> {
    inner: R,
    taken: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

#[test]
fn an_endless_line_is_refused_after_the_line_limit() {
    use crate::model_file::MAX_LINE_BYTES;
    // Before: `lines()` collected /dev/zero until the allocator aborted the process.
    let mut src = std::io::BufReader::new(CountingReader {
        inner: std::io::repeat(0),
        taken: 0,
    });
    let e = Model::read_from(&mut src, "zero.model").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("zero.model: line 1:") && msg.contains("longer than 1048576 bytes"),
        "{msg}"
    );
    let taken = src.get_ref().taken;
    assert!(
        taken <= MAX_LINE_BYTES as u64 + 2 + 8192,
        "read {taken} bytes"
    );
    #[cfg(unix)]
    {
        let e = Model::load("/dev/zero").unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}

#[test]
fn line_and_file_limits_are_exact() {
    use crate::model_file::read_limited;
    let path = std::path::Path::new("m.model");
    // A blank header line of exactly the limit (with \r\n) is fine; one byte more is not.
    let ok = format!("{}\r\n{GOOD}", " ".repeat(100));
    assert!(read_limited(Cursor::new(ok), path, 100, 1 << 20).is_ok());
    let long = format!("{}\n{GOOD}", " ".repeat(101));
    let e = read_limited(Cursor::new(long), path, 100, 1 << 20).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("m.model: line 1: not a valid LIBSVM model: line longer than 100 bytes"),
        "{e}"
    );
    // The whole file: GOOD is accepted at exactly its length, refused one byte under.
    let n = GOOD.len() as u64;
    assert!(read_limited(Cursor::new(GOOD), path, 100, n).is_ok());
    let e = read_limited(Cursor::new(GOOD), path, 100, n - 1).unwrap_err();
    assert!(e.to_string().contains("goes on past"), "{e}");
    // Endless blank lines end at the file limit, not never.
    let mut endless = std::io::BufReader::new(std::io::repeat(b'\n'));
    let e = read_limited(&mut endless, path, 100, 10_000).unwrap_err();
    assert!(e.to_string().contains("line 10001"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_model_file_over_the_size_limit_is_refused_from_its_size() {
    let p = temp_path("too-large");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(crate::model_file::MAX_MODEL_BYTES + 1).unwrap();
    drop(f);
    let e = Model::load(&p).unwrap_err();
    let _ = std::fs::remove_file(&p);
    assert!(
        e.to_string()
            .contains("2147483649 bytes, more than the 2147483648"),
        "{e}"
    );
}

#[test]
fn errors_quote_file_content_cut_short() {
    // Before: each of these echoed its 500,000-character token whole.
    let big = "x".repeat(500_000);
    let nines = "9".repeat(500_000);
    let cases = [
        GOOD.replace("kernel_type rbf", &format!("kernel_type {big}")),
        GOOD.replace("c_svc", &big),
        GOOD.replace("SV\n", &format!("{big}\n")),
        GOOD.replace("gamma 0.5", &format!("gamma {big}")),
        GOOD.replace("nr_class 2", &format!("nr_class {nines}")),
        GOOD.replace("total_sv 3", &format!("total_sv {nines}")),
        GOOD.replace("3:1 ", &format!("3:{nines} ")),
        GOOD.replace("2:0.25", &format!("2={big}")),
        GOOD.replace("2:0.25", &format!("{nines}:0.25")),
        GOOD.replace("0.5 2:0.25", &format!("{big} 2:0.25")),
    ];
    for text in &cases {
        let e = read(text).unwrap_err().to_string();
        assert!(e.len() < 1000, "{} characters: {}", e.len(), &e[..300]);
        assert!(e.contains("more characters)"), "{e}");
    }
    // An nr_sv list of 400 counts is cut as well.
    let k = 400;
    let labels: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    let text = format!(
        "svm_type c_svc\nkernel_type linear\nnr_class {k}\ntotal_sv 1\nrho {}\nlabel {}\n\
         nr_sv {}\nSV\n",
        vec!["0"; k * (k - 1) / 2].join(" "),
        labels.join(" "),
        vec!["1"; k].join(" ")
    );
    let e = read(&text).unwrap_err().to_string();
    assert!(e.len() < 1000 && e.contains("does not add up"), "{e}");
}
