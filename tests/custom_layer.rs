//! The custom-layer example's maxout layer, written with graph ops only, passes
//! `nn::gradcheck_layer` (its input, weights and biases against finite differences) and
//! computes the larger of its two affine pieces.

#[path = "../examples/custom_layer/maxout.rs"]
mod maxout;

use autograd::Graph;
use maxout::Maxout;
use nn::{Ctx, Layer, Mode};
use rand::SeedableRng;
use tensor::Tensor;

#[test]
fn maxout_layer_passes_gradcheck_and_computes_the_maximum() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    let mut g = Graph::<f64>::new();
    let layer = Maxout::new(&mut g, "m", 5, 3, &mut rng).unwrap();
    let x = Tensor::<f64>::randn(&[4, 5], 0.0, 1.0, &mut rng).unwrap();
    let r = nn::gradcheck_layer(&mut g, &layer, x.clone(), Mode::Train).unwrap();
    assert_eq!(r.checked, 4 * 5 + 2 * (15 + 3)); // the input, then both pieces
                                                 // Values: the output is the larger of the two affine pieces, element by element.
    let xv = g.input(x.clone());
    let mut rng0 = rand_pcg::Pcg64::seed_from_u64(0);
    let mut cx = Ctx {
        mode: Mode::Train,
        rng: &mut rng0,
    };
    let y = layer.forward(&mut g, xv, &mut cx).unwrap();
    let out = g.value(y).unwrap().clone();
    let piece = |w, b| {
        let (w, b): (&Tensor<f64>, &Tensor<f64>) = (g.value(w).unwrap(), g.value(b).unwrap());
        let mut p = vec![0.0; 12];
        for r in 0..4 {
            for j in 0..3 {
                p[r * 3 + j] = b.data()[j]
                    + (0..5)
                        .map(|k| w.data()[j * 5 + k] * x.data()[r * 5 + k])
                        .sum::<f64>();
            }
        }
        p
    };
    let (p1, p2) = (piece(layer.w1, layer.b1), piece(layer.w2, layer.b2));
    for i in 0..12 {
        assert!((out.data()[i] - p1[i].max(p2[i])).abs() < 1e-12);
    }
}
