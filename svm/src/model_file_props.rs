//! Property tests of the LIBSVM model reader over arbitrary text and over mutated valid
//! models (as mnist's `fuzz_tests` does for IDX files): it never panics, its errors are one
//! line of bounded length naming the file, and valid models round-trip through the writer
//! byte for byte.

use std::fmt::Write as _;
use std::io::Cursor;

use proptest::prelude::*;

use crate::{Error, Model};

/// The longest error message accepted: the quoted content is cut to 200 characters.
const MAX_MESSAGE: usize = 1000;

/// A finite f64: small, large, tiny, negative zero, or any finite bit pattern.
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        -4.0f64..4.0,
        Just(0.0),
        Just(-0.0),
        Just(1e-300),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// The text of a valid classification model, exactly as [`Model::write_to`] lays it out.
fn model_text() -> impl Strategy<Value = String> {
    let kernel = prop_oneof![
        Just(String::from("linear")),
        (any::<i32>(), finite(), finite())
            .prop_map(|(d, g, c)| format!("polynomial\ndegree {d}\ngamma {g:?}\ncoef0 {c:?}")),
        finite().prop_map(|g| format!("rbf\ngamma {g:?}")),
        (finite(), finite()).prop_map(|(g, c)| format!("sigmoid\ngamma {g:?}\ncoef0 {c:?}")),
    ];
    (
        prop_oneof![Just("c_svc"), Just("nu_svc")],
        kernel,
        proptest::collection::btree_set(any::<i32>(), 1..5),
    )
        .prop_flat_map(|(svm_type, kernel, labels)| {
            let k = labels.len();
            (
                Just(svm_type),
                Just(kernel),
                Just(labels.into_iter().collect::<Vec<i32>>()),
                proptest::collection::vec(finite(), k * (k - 1) / 2),
                proptest::collection::vec(0i32..3, k),
            )
        })
        .prop_flat_map(|(svm_type, kernel, labels, rho, n_sv)| {
            let k = labels.len();
            let l: i32 = n_sv.iter().sum();
            let sv = (
                proptest::collection::vec(finite(), k - 1),
                proptest::collection::btree_map(1i32..2000, finite(), 0..6),
            );
            (
                Just(svm_type),
                Just(kernel),
                Just(labels),
                Just(rho),
                Just(n_sv),
                proptest::collection::vec(sv, l as usize),
            )
        })
        .prop_map(|(svm_type, kernel, labels, rho, n_sv, svs)| {
            let mut t = format!("svm_type {svm_type}\nkernel_type {kernel}\n");
            let _ = writeln!(t, "nr_class {}\ntotal_sv {}", labels.len(), svs.len());
            t.push_str("rho");
            for r in &rho {
                let _ = write!(t, " {r:?}");
            }
            t.push_str("\nlabel");
            for c in &labels {
                let _ = write!(t, " {c}");
            }
            t.push_str("\nnr_sv");
            for n in &n_sv {
                let _ = write!(t, " {n}");
            }
            t.push_str("\nSV\n");
            for (coef, features) in &svs {
                for c in coef {
                    let _ = write!(t, "{c:?} ");
                }
                for (i, v) in features {
                    let _ = write!(t, "{i}:{v:?} ");
                }
                t.push('\n');
            }
            t
        })
}

/// One edit of a model file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove `len` bytes at `at` (positions are taken modulo the length).
    Delete { at: usize, len: usize },
    /// Insert text at `at`.
    Insert { at: usize, text: Vec<u8> },
    /// XOR the byte at `at` with `x`.
    Flip { at: usize, x: u8 },
    /// Repeat the line holding `at`.
    DuplicateLine { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let nasty = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"nan".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"2147483648".to_vec()),
        Just(b"1:".to_vec()),
        Just(b"SV\n".to_vec()),
        Just(b"nr_class 32768\n".to_vec()),
        Just(b"total_sv 2147483647\n".to_vec()),
        // A long token: errors must quote it cut short.
        (1usize..6000).prop_map(|n| vec![b'7'; n]),
        (1usize..6000).prop_map(|n| vec![0x01; n]),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), nasty).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Mutation::Flip { at, x }),
        any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Delete { at, len } if n > 0 => {
            let at = at % n;
            let end = (at + len).min(n);
            bytes.drain(at..end);
        }
        Mutation::Insert { at, text } => {
            let at = at % (n + 1);
            bytes.splice(at..at, text.iter().copied());
        }
        Mutation::Flip { at, x } if n > 0 => bytes[at % n] ^= x,
        Mutation::DuplicateLine { at } if n > 0 => {
            let at = at % n;
            let start = bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(n, |i| at + i + 1);
            let line = bytes[start..end].to_vec();
            bytes.splice(start..start, line);
        }
        _ => {}
    }
}

fn read(bytes: &[u8]) -> crate::Result<Model> {
    Model::read_from(Cursor::new(bytes), "m.model")
}

fn text_of(m: &Model) -> String {
    let mut buf = Vec::new();
    m.write_to(&mut buf).expect("writing to memory");
    String::from_utf8(buf).expect("the writer writes UTF-8")
}

/// What every refusal must be: a bad-model error naming the file, on one line, short.
fn check_error(e: &Error) -> std::result::Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(matches!(e, Error::BadModel { .. }), "{:?}", e);
    prop_assert!(msg.starts_with("m.model: line "), "{}", msg);
    prop_assert!(!msg.contains('\n'), "several lines: {}", msg);
    prop_assert!(
        msg.len() <= MAX_MESSAGE,
        "{} characters: {}",
        msg.len(),
        &msg[..MAX_MESSAGE]
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn valid_models_round_trip_byte_for_byte(text in model_text()) {
        let m = read(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(text_of(&m), text);
    }

    #[test]
    fn mutated_models_are_read_or_refused_cleanly(
        text in model_text(),
        edits in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = text.into_bytes();
        for m in &edits {
            apply(&mut bytes, m);
        }
        match read(&bytes) {
            // Whatever is accepted is a consistent model: written and read back, it is the
            // same text.
            Ok(m) => {
                let once = text_of(&m);
                let again = read(once.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(text_of(&again), once);
            }
            Err(e) => check_error(&e)?,
        }
    }

    #[test]
    fn arbitrary_text_is_refused_cleanly(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            "(svm_type|kernel_type|nr_class|total_sv|rho|label|nr_sv|SV|gamma|[0-9: .-]){0,40}"
                .prop_map(String::into_bytes),
        ],
    ) {
        match read(&bytes) {
            Ok(m) => prop_assert_eq!(text_of(&read(text_of(&m).as_bytes()).unwrap()), text_of(&m)),
            Err(e) => check_error(&e)?,
        }
    }
}
