//! Gzip bombs in a data directory: small `.gz` files whose IDX header truthfully declares
//! gigabytes. A counting allocator records the largest single allocation while the loader
//! refuses them: a count the split cannot use is refused from the header, before any data is
//! inflated, and nothing is ever reserved past what the header declares.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nndl_mnist::Error;
use test_support::{assert_matches, gzip_bomb as bomb, largest_allocation};

#[global_allocator]
static A: test_support::Counting = test_support::Counting;

fn repo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// A fresh data directory holding the repository's four files, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("nndl-mnist-bomb-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        for f in &nndl_mnist::FILES {
            fs::copy(repo_data().join(f.gz_name()), p.join(f.gz_name())).unwrap();
        }
        DataDir(p)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_bomb_train_file_is_refused_from_its_header() {
    // 7.7 million images (6 GB: over the reader's limit) and 2.6 million (2 GB: under it, but
    // not the 60,000 the split needs), each followed by 32 MiB of zeros.
    for count in [7_700_000u32, 2_600_000] {
        let dir = DataDir::new(&count.to_string());
        fs::write(
            dir.0.join(nndl_mnist::TRAIN_IMAGES.gz_name()),
            bomb(count, 32 << 20),
        )
        .unwrap();
        let start = Instant::now();
        let (got, largest) = largest_allocation(|| nndl_mnist::load_data(&dir.0));
        let elapsed = start.elapsed();
        let err = got.unwrap_err();
        // Over the limit any IDX reader refuses, or a count other than the split's 60,000.
        let refused = match err {
            Error::DeclaredTooLarge { count: c, .. } => c == 7_700_000 && c == u64::from(count),
            Error::WrongRecordCount {
                expected: 60_000,
                found,
                ..
            } => found == 2_600_000 && found == u64::from(count),
            _ => false,
        };
        assert!(refused, "{err:?}");
        assert!(
            err.to_string().contains("train-images-idx3-ubyte.gz"),
            "{err}"
        );
        // Buffers for reading and decompressing, nothing for the data the header declares.
        assert!(largest < 1 << 20, "{count}: allocated {largest} bytes");
        assert!(
            elapsed < Duration::from_secs(2),
            "{count}: took {elapsed:?}"
        );
    }
}

#[test]
fn an_arbitrary_idx_file_reserves_only_what_arrives() {
    // read_images takes any count under its limit: the 2 GB declared are not reserved, only
    // the 32 MiB actually there are inflated, then the file is refused as truncated.
    let dir = DataDir::new("generic");
    let p = dir.0.join("any-images.gz");
    fs::write(&p, bomb(2_600_000, 32 << 20)).unwrap();
    let (got, largest) = largest_allocation(|| nndl_mnist::idx::read_images(&p));
    assert_matches!(got => Err(Error::Truncated {
        expected: 2_038_400_000, found: 33_554_432, ..
    }));
    assert!(largest <= 128 << 20, "allocated {largest} bytes");
}
