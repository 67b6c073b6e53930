//! `--layers` descriptions from the whole grammar (every kind, every option, sizes from small
//! to hostile: 0, 2^31, 2^62, 2^63, `u64::MAX` and past it): `nndl_nn::spec::build` never panics,
//! builds only nets whose every layer has values to output, names the layer when it refuses,
//! and a small net it builds computes the output shape it declares on a batch of 2.

use nndl_nn::memory::Plan;
use nndl_nn::{Mode, Network};
use proptest::prelude::*;

/// Numbers that broke shape arithmetic or would: zero, past 32 bits, near and past `u64`.
const HOSTILE: [&str; 9] = [
    "0",
    "2147483648",
    "4294967296",
    "4611686018427387904",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-1",
];

/// Mostly small numbers (so that many descriptions build), sometimes hostile ones.
fn number(small: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => small.prop_map(|n| n.to_string()),
        1 => proptest::sample::select(&HOSTILE[..]).prop_map(String::from),
    ]
}

fn probability() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0.0f64..0.9).prop_map(|p| format!("{p:.2}")),
        1 => proptest::sample::select(&["0", "1", "1.5", "-0.1", "nan", "inf", "1e308", "x"][..])
            .prop_map(String::from),
    ]
}

fn activation() -> impl Strategy<Value = String> {
    proptest::sample::select(&["sigmoid", "tanh", "relu", "linear", "identity", "none"][..])
        .prop_map(String::from)
}

fn init() -> impl Strategy<Value = String> {
    proptest::sample::select(&["outputs", "inputs", "large", "he", "zeros", "xavier"][..])
        .prop_map(|i| format!("init:{i}"))
}

/// Up to three options drawn from `pool` (the ones a kind takes, and one it does not).
fn options(pool: Vec<BoxedStrategy<String>>) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::strategy::Union::new(pool), 0..4).prop_map(|o| {
        o.iter().fold(String::new(), |mut s, o| {
            s.push(',');
            s.push_str(o);
            s
        })
    })
}

fn layer() -> impl Strategy<Value = String> {
    let square = |k: std::ops::RangeInclusive<usize>| {
        (number(1..=6), number(k)).prop_map(|(f, k)| format!("{f}x{k}x{k}"))
    };
    let conv = (
        prop_oneof![
            square(1..=6),
            (number(1..=4), number(1..=6), number(1..=6))
                .prop_map(|(f, h, w)| format!("{f}x{h}x{w}"))
        ],
        options(vec![
            number(1..=4).prop_map(|k| format!("pool:{k}")).boxed(),
            activation().boxed(),
            Just("ties".to_string()).boxed(),
            Just("stride:2".to_string()).boxed(),
        ]),
    )
        .prop_map(|(s, o)| format!("conv:{s}{o}"));
    let conv2d = (
        prop_oneof![4 => square(1..=5), 1 => Just("3x3x5".to_string())],
        options(vec![
            number(0..=3).prop_map(|p| format!("pad:{p}")).boxed(),
            number(1..=3).prop_map(|s| format!("stride:{s}")).boxed(),
            Just("nobias".to_string()).boxed(),
            activation().boxed(),
            init().boxed(),
            Just("pool:2".to_string()).boxed(),
        ]),
    )
        .prop_map(|(s, o)| format!("conv2d:{s}{o}"));
    let bn = options(vec![
        activation().boxed(),
        Just("dropout:0.5".to_string()).boxed(),
    ])
    .prop_map(|o| format!("bn{o}"));
    let fc_size = prop_oneof![
        3 => number(1..=40),
        1 => (number(1..=800), number(1..=40)).prop_map(|(i, n)| format!("{i}x{n}")),
    ];
    let fc = (
        fc_size,
        options(vec![
            activation().boxed(),
            probability().prop_map(|p| format!("dropout:{p}")).boxed(),
            init().boxed(),
        ]),
    )
        .prop_map(|(s, o)| format!("fc:{s}{o}"));
    prop_oneof![
        3 => conv,
        3 => conv2d,
        2 => bn,
        2 => number(1..=3).prop_map(|k| format!("pool:{k}")),
        1 => probability().prop_map(|p| format!("dropout:{p}")),
        2 => Just("flatten".to_string()),
        3 => fc,
        1 => Just("flatten:3".to_string()),
    ]
}

fn softmax() -> impl Strategy<Value = String> {
    let size = prop_oneof![
        4 => Just("10".to_string()),
        1 => number(1..=12),
        1 => (number(1..=800), Just(10)).prop_map(|(i, n)| format!("{i}x{n}")),
    ];
    (
        size,
        options(vec![
            probability().prop_map(|p| format!("dropout:{p}")).boxed(),
            init().boxed(),
            Just("relu".to_string()).boxed(),
        ]),
    )
        .prop_map(|(s, o)| format!("softmax:{s}{o}"))
}

/// A description: a few layers and, usually, the softmax last.
fn description() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(layer(), 0..5),
        prop_oneof![6 => softmax().prop_map(Some), 1 => Just(None)],
    )
        .prop_map(|(mut layers, last)| {
            layers.extend(last);
            layers.join(" ")
        })
}

/// Every layer's output shape, from the input on.
fn shapes(net: &Network<f32>) -> Vec<Vec<usize>> {
    let mut dims = net.input_dims().to_vec();
    net.layers()
        .iter()
        .map(|l| {
            dims = l.output_dims(&dims).expect("a built net's layers fit");
            dims.clone()
        })
        .collect()
}

fn check(text: &str) {
    match nndl_nn::spec::build::<f32>(text, &[1, 28, 28], nndl_nn::Cost::LogLikelihood, 0) {
        Ok(mut net) => {
            for (i, d) in shapes(&net).iter().enumerate() {
                assert!(
                    !d.is_empty() && !d.contains(&0),
                    "{text:?}: layer {} outputs {d:?}",
                    i + 1
                );
            }
            assert_eq!(net.output_dims().len(), 1, "{text:?}");
            let plan = Plan::of(&net, 2).unwrap();
            assert!(plan.total() > 0 && plan.layers.len() == net.layers().len());
            // Small nets only (the generator's hostile sizes never build a large one, but the
            // forward is what costs).
            let params: usize = net
                .parameters()
                .iter()
                .map(|&p| net.graph().value(p).unwrap().numel())
                .sum();
            if params > 2_000_000 {
                return;
            }
            for mode in [Mode::Train, Mode::Eval] {
                net.graph_mut().reset();
                let x = tensor::Tensor::full(&[2, 1, 28, 28], 0.5f32).unwrap();
                let x = net.graph_mut().input(x);
                let y = net
                    .forward(x, mode)
                    .unwrap_or_else(|e| panic!("{text:?} {mode:?}: {e}"));
                let mut want = vec![2];
                want.extend_from_slice(net.output_dims());
                assert_eq!(
                    net.graph().value(y).unwrap().dims(),
                    &want[..],
                    "{text:?} {mode:?}"
                );
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.starts_with("--layers") && e.contains("layer") && !e.contains('\n'),
                "{text:?}: {e}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_grammar_builds_nets_with_outputs_or_names_the_layer(text in description()) {
        check(&text);
    }
}

/// The generator is worth its cases only if many descriptions build.
#[test]
fn a_fair_share_of_the_generated_descriptions_build() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = description();
    let built = (0..400)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            nndl_nn::spec::build::<f32>(&text, &[1, 28, 28], nndl_nn::Cost::LogLikelihood, 0)
                .is_ok()
        })
        .count();
    assert!(built >= 40, "only {built} of 400 built");
}

#[test]
fn the_probes_that_aborted_or_wrapped_are_refused_naming_the_layer() {
    for (spec, needle) in [
        ("conv2d:8x3x3,pad:4611686018427387904 softmax:10", "layer 1"),
        ("conv2d:8x3x3,pad:9223372036854775808 softmax:10", "layer 1"),
        (
            "conv2d:8x3x3,pad:100000 softmax:10",
            "less than the kernel size 3",
        ),
        (
            "conv2d:8x3x3,pad:3 softmax:10",
            "less than the kernel size 3",
        ),
        ("conv:20x5x5,pool:30 softmax:10", "would leave nothing"),
        (
            "conv2d:8x3x3,stride:18446744073709551615 pool:2 softmax:10",
            "layer 2",
        ),
    ] {
        let e = nndl_nn::spec::build::<f32>(spec, &[1, 28, 28], nndl_nn::Cost::LogLikelihood, 0)
            .err()
            .unwrap_or_else(|| panic!("{spec} built"));
        let e = e.to_string();
        assert!(
            e.contains(needle) && e.starts_with("--layers: layer"),
            "{spec}: {e}"
        );
    }
    // A stride past the image is one position per filter: built, and it runs.
    check("conv2d:8x3x3,stride:18446744073709551615 flatten softmax:10");
    // The probes whose parameters fit: built, and refused by the memory plan instead.
    for spec in [
        "conv:100000x5x5 fc:1 softmax:10",
        "conv2d:100000x3x3,pad:1 pool:28 softmax:10",
    ] {
        let net = nndl_nn::spec::build::<f32>(spec, &[1, 28, 28], nndl_nn::Cost::LogLikelihood, 0)
            .unwrap();
        let e = Plan::eval(&net, 1000)
            .unwrap()
            .check(16 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("most at layer 1"), "{spec}: {e}");
    }
}
