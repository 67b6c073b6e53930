//! The slice of MNIST the network tests train on (they live in this crate, not in `nn`,
//! because nn depends on no data set).

use std::sync::OnceLock;

/// The first 1000 MNIST training images (the repository's copy), loaded once per test binary.
pub fn training() -> &'static mnist::Dataset {
    static DATA: OnceLock<mnist::Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = mnist::find_data_dir(None).expect("data/mnist");
        mnist::load_data(dir).expect("MNIST").training.take(1000)
    })
}
