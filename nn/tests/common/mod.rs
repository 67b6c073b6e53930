//! What the network tests share: a gradient check of a whole network's regularised cost.

/// Gradchecks the cost of `net` on the samples `idx` of `data`, with `reg`'s in-graph term,
/// with respect to every parameter (the random state reset before each evaluation, so dropout
/// draws the same masks). Returns the number of elements compared; panics on a mismatch.
pub fn gradcheck_cost(
    net: nndl_nn::Network<f64>,
    data: &nndl_nn::InMemory,
    idx: &[usize],
    reg: nndl_nn::Regularization,
) -> usize {
    use autograd::{gradcheck, AutogradError, GradcheckConfig, Graph, Var};
    let mut net = net;
    let params = net.parameters();
    let state = net.rng_state();
    let mut g = std::mem::take(net.graph_mut());
    let net_cell = std::cell::RefCell::new(net);
    let f = |g: &mut Graph<f64>| -> Result<Var, AutogradError> {
        // The closure works on the network's own graph, swapped in for the check.
        let mut n = net_cell.borrow_mut();
        std::mem::swap(n.graph_mut(), g);
        n.set_rng_state(state.clone());
        let weights = n.weights();
        let r = n
            .batch_loss(data, idx, nndl_nn::Mode::Train)
            .and_then(|loss| reg.add_to(n.graph_mut(), &weights, loss));
        std::mem::swap(n.graph_mut(), g);
        Ok(r?)
    };
    let report = gradcheck(&mut g, &params, f, GradcheckConfig::default()).unwrap();
    let all: usize = params.iter().map(|&p| g.value(p).unwrap().numel()).sum();
    assert_eq!(report.checked, all);
    report.checked
}
