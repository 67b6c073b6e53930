//! `Graph::backward_with` (gradients handed to a consumer where they are completed) against
//! the plain route: backward, then `p <- decay*p - rate*grad` for every parameter. Same
//! parameters up to float rounding, with an L2 term kept as a number, a weight used twice
//! (not offered), a bias, frozen weights, a consumer that declines, and one that breaks the
//! contract.

use nndl_autograd::{GradientConsumer, Graph, LinearGradient, Taken, Var};
use rand::{Rng, SeedableRng};
use tensor::{Accum, Tensor};

struct Net {
    g: Graph<f64>,
    w1: Var,
    w2: Var,
    w3: Var,
}

fn net(seed: u64) -> Net {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut t = |dims: &[usize]| {
        let n: usize = dims.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.random_range(-0.5..0.5)).collect(), dims).unwrap()
    };
    let mut g = Graph::new();
    let w1 = g.parameter("w1", t(&[40, 33]));
    g.parameter("b1", t(&[40]));
    let w2 = g.parameter("w2", t(&[10, 40]));
    g.parameter("b2", t(&[10]));
    let w3 = g.parameter("w3", t(&[10, 10]));
    Net { g, w1, w2, w3 }
}

/// softmax-CE of relu(x w1^T + b1) w2^T + b2, then w3 used twice, plus 0.5*l2*sum(w^2).
fn loss(n: &mut Net, rows: usize, l2: f64) -> Var {
    let p: Vec<Var> = n.g.parameters().collect();
    let g = &mut n.g;
    let x = g.input(
        Tensor::from_vec(
            (0..rows * 33)
                .map(|i| ((i * 7 % 13) as f64 - 6.0) / 6.0)
                .collect(),
            &[rows, 33],
        )
        .unwrap(),
    );
    let h = g.linear(x, p[0], Some(p[1])).unwrap();
    let h = g.relu(h).unwrap();
    let z = g.linear(h, p[2], Some(p[3])).unwrap();
    let z = g.linear(z, p[4], None).unwrap();
    let z = g.linear(z, p[4], None).unwrap();
    let labels: Vec<usize> = (0..rows).map(|i| i % 10).collect();
    let mut l = g.softmax_cross_entropy(z, &labels).unwrap();
    if l2 > 0.0 {
        for w in [n.w1, n.w2, n.w3] {
            let s = g.sum_squares(w).unwrap();
            let s = g.scale(s, 0.5 * l2).unwrap();
            l = g.add(l, s).unwrap();
        }
    }
    l
}

fn values(n: &Net) -> Vec<Vec<f64>> {
    n.g.parameters()
        .map(|p| n.g.value(p).unwrap().data().to_vec())
        .collect()
}

const RATE: f64 = 0.1;
const DECAY: [f64; 5] = [0.999, 1.0, 0.999, 1.0, 0.999];

/// `p <- decay*p - rate*grad` for every parameter with a stored gradient.
fn step_stored(n: &mut Net) {
    for (i, p) in n.g.parameters().collect::<Vec<_>>().into_iter().enumerate() {
        let (v, g) = n.g.param_and_grad(p).unwrap();
        let Some(g) = g else { continue };
        let g = g.data().to_vec();
        for (w, d) in v.data_mut().iter_mut().zip(g) {
            *w = DECAY[i] * *w - RATE * d;
        }
    }
}

/// How a test consumer takes a linear gradient.
#[derive(Clone, Copy, PartialEq)]
enum Route {
    /// Through `LinearGradient::apply`.
    Apply,
    /// Through `LinearGradient::parts`, by hand, as an optimiser's own kernel would.
    Parts,
    /// Declines everything.
    Decline,
    /// Opens the gradient, then declines it (a broken consumer).
    OpenThenDecline,
}

struct Step {
    route: Route,
    positions: Vec<Var>,
    offered: Vec<Var>,
}

impl Step {
    fn new(route: Route, n: &Net) -> Self {
        Step {
            route,
            positions: n.g.parameters().collect(),
            offered: Vec::new(),
        }
    }
}

impl GradientConsumer<f64> for Step {
    fn take_linear(
        &mut self,
        param: Var,
        grad: &mut LinearGradient<'_, f64>,
    ) -> Option<Taken<f64>> {
        self.offered.push(param);
        let i = self.positions.iter().position(|&p| p == param).unwrap();
        let decay = DECAY[i];
        match self.route {
            Route::Decline => None,
            Route::OpenThenDecline => {
                grad.parts();
                None
            }
            Route::Apply => Some(grad.apply(|w, g| {
                for (w, &d) in w.iter_mut().zip(g) {
                    *w = decay * *w - RATE * d;
                }
            })),
            Route::Parts => {
                let (m, k, n) = grad.dims();
                let c = grad.scaled_value();
                let p = grad.parts();
                if let Some((dx, mode)) = p.input_grad {
                    for r in 0..m {
                        for j in 0..k {
                            let s: f64 = (0..n).map(|o| p.dy[r * n + o] * p.value[o * k + j]).sum();
                            let d = &mut dx[r * k + j];
                            *d = if mode == Accum::Add { *d + s } else { s };
                        }
                    }
                }
                let mut nonzero = false;
                for o in 0..n {
                    for j in 0..k {
                        let w = p.value[o * k + j];
                        let gr = c * w
                            + (0..m)
                                .map(|r| p.dy[r * n + o] * p.x[r * k + j])
                                .sum::<f64>();
                        nonzero |= gr != 0.0;
                        p.value[o * k + j] = decay * w - RATE * gr;
                    }
                }
                let sum_squares = p.value.iter().map(|v| v * v).sum();
                Some(Taken {
                    nonzero,
                    sum_squares: Some(sum_squares),
                })
            }
        }
    }
}

fn compare(rows: usize, l2: f64, route: Route, expect_handed: &[bool]) {
    let (mut a, mut b) = (net(1), net(1));
    for step in 0..3 {
        a.g.reset();
        let la = loss(&mut a, rows, l2);
        a.g.backward(la).unwrap();
        step_stored(&mut a);

        b.g.reset();
        let lb = loss(&mut b, rows, l2);
        let mut consumer = Step::new(route, &b);
        b.g.backward_with(lb, &mut consumer).unwrap();
        assert_eq!(
            consumer.offered,
            [b.w2, b.w1],
            "weights used once are offered, in the order the backward completes them"
        );
        let handed: Vec<bool> =
            b.g.parameters()
                .map(|p| b.g.handed_over(p).is_some())
                .collect();
        assert_eq!(
            handed, expect_handed,
            "rows {rows}: which gradients were handed over"
        );
        for p in b.g.parameters() {
            assert_eq!(
                b.g.grad(p).is_none(),
                b.g.handed_over(p).is_some(),
                "a gradient is either handed over or stored"
            );
        }
        step_stored(&mut b);
        for (i, (pa, pb)) in values(&a).iter().zip(values(&b)).enumerate() {
            for (x, y) in pa.iter().zip(&pb) {
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + x.abs()),
                    "rows {rows} l2 {l2} step {step} parameter {i}: {x} vs {y}"
                );
            }
        }
    }
}

const W1_W2: [bool; 5] = [true, false, true, false, false];

#[test]
fn handed_gradients_give_the_stored_route_s_parameters() {
    for route in [Route::Apply, Route::Parts] {
        compare(10, 0.0, route, &W1_W2);
        compare(1, 0.0, route, &W1_W2);
        compare(37, 0.0, route, &W1_W2);
    }
}

#[test]
fn an_l2_term_kept_as_a_number_reaches_the_consumer() {
    for route in [Route::Apply, Route::Parts] {
        compare(10, 0.05, route, &W1_W2);
        compare(1, 0.2, route, &W1_W2);
    }
}

#[test]
fn declined_gradients_are_stored_with_their_l2_term() {
    compare(10, 0.05, Route::Decline, &[false; 5]);
}

#[test]
fn a_consumer_that_opens_a_gradient_and_declines_it_is_an_error() {
    let mut n = net(4);
    let l = loss(&mut n, 5, 0.0);
    let mut consumer = Step::new(Route::OpenThenDecline, &n);
    let e = n.g.backward_with(l, &mut consumer).unwrap_err();
    assert!(e.to_string().contains("declined"), "{e}");
}

#[test]
fn frozen_weights_are_not_offered() {
    let mut n = net(2);
    n.g.set_frozen(n.w1, true).unwrap();
    let before = n.g.value(n.w1).unwrap().clone();
    let l = loss(&mut n, 10, 0.1);
    let mut consumer = Step::new(Route::Apply, &n);
    n.g.backward_with(l, &mut consumer).unwrap();
    assert_eq!(consumer.offered, [n.w2]);
    assert_eq!(n.g.handed_over(n.w1), None);
    assert_eq!(n.g.value(n.w1).unwrap(), &before);
    assert_eq!(n.g.handed_over(n.w2), Some(true));
}

#[test]
fn the_sum_a_consumer_reports_serves_the_next_l2_term_until_the_weights_change() {
    let mut n = net(3);
    let l = loss(&mut n, 10, 0.1);
    let mut consumer = Step::new(Route::Parts, &n);
    n.g.backward_with(l, &mut consumer).unwrap();
    assert_eq!(n.g.handed_over(n.w1), Some(true));
    let exact = |n: &Net| -> f64 { n.g.value(n.w1).unwrap().data().iter().map(|&v| v * v).sum() };
    n.g.reset();
    let s = n.g.sum_squares(n.w1).unwrap();
    assert_eq!(n.g.value(s).unwrap().data()[0], exact(&n));
    // Changed by hand: the sum is taken afresh (a stale one would be off by 3 * (2w + 3)).
    n.g.param_mut(n.w1).unwrap().data_mut()[0] += 3.0;
    n.g.reset();
    let s = n.g.sum_squares(n.w1).unwrap();
    let got = n.g.value(s).unwrap().data()[0];
    assert!(
        (got - exact(&n)).abs() <= 1e-12 * exact(&n),
        "after a change: {got} vs {}",
        exact(&n)
    );
}

/// The net's cost with a gradient penalty `0.1 |dC/dx|^2` in the data x (a leaf): the
/// recorded gradient uses w1 and w2 again (`dx = dY W`), after their first use.
fn penalised_loss(n: &mut Net, rows: usize) -> Var {
    let p: Vec<Var> = n.g.parameters().collect();
    let g = &mut n.g;
    let x = g.leaf(
        Tensor::from_vec(
            (0..rows * 33)
                .map(|i| ((i * 5 % 11) as f64 - 5.0) / 5.0)
                .collect(),
            &[rows, 33],
        )
        .unwrap(),
    );
    let h = g.linear(x, p[0], Some(p[1])).unwrap();
    let h = g.tanh(h).unwrap();
    let z = g.linear(h, p[2], Some(p[3])).unwrap();
    let labels: Vec<usize> = (0..rows).map(|i| i % 10).collect();
    let c = g.softmax_cross_entropy(z, &labels).unwrap();
    let dx = g.gradients(c, &[x]).unwrap()[0];
    let pen = g.sum_squares(dx).unwrap();
    let pen = g.scale(pen, 0.1).unwrap();
    g.add(c, pen).unwrap()
}

#[test]
fn a_gradient_penalty_through_the_handover_matches_the_stored_route() {
    // Weights the recorded gradient reads again are completed before their first use, so
    // they are not offered; the result is the stored route's either way.
    let (mut a, mut b) = (net(5), net(5));
    for _ in 0..3 {
        a.g.reset();
        let la = penalised_loss(&mut a, 7);
        a.g.backward(la).unwrap();
        step_stored(&mut a);

        b.g.reset();
        let lb = penalised_loss(&mut b, 7);
        let mut consumer = Step::new(Route::Apply, &b);
        b.g.backward_with(lb, &mut consumer).unwrap();
        assert!(
            consumer.offered.is_empty(),
            "{} offered",
            consumer.offered.len()
        );
        step_stored(&mut b);
        for (pa, pb) in values(&a).iter().zip(values(&b)) {
            for (x, y) in pa.iter().zip(&pb) {
                assert!((x - y).abs() <= 1e-12 * (1.0 + x.abs()), "{x} vs {y}");
            }
        }
    }
}
