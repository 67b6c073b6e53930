//! Property tests of the IDX reader over arbitrary and mutated bytes (the design's "fuzz the
//! IDX reader"): it never panics or over-allocates, and whatever it accepts is self-consistent.

use std::fs;

use proptest::prelude::*;

use crate::idx::{self, Format};
use crate::testutil::TempDir;

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

/// Bytes that are often close to a valid IDX file: a plausible header (sometimes absurd), then
/// some data, optionally gzip-compressed.
fn near_idx() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        prop_oneof![Just(2051u32), Just(2049u32), any::<u32>()],
        prop_oneof![0u32..6, Just(u32::MAX), any::<u32>()],
        0u32..5,
        0u32..5,
        proptest::collection::vec(any::<u8>(), 0..80),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(magic, count, rows, cols, data, images, gz)| {
            let mut bytes = if images {
                header(magic, &[count, rows, cols])
            } else {
                header(magic, &[count])
            };
            bytes.extend_from_slice(&data);
            (bytes, gz)
        })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn reader_never_panics_and_accepts_only_consistent_files(
        (bytes, gz) in near_idx(),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        flip in any::<Option<(usize, u8)>>(),
    ) {
        let dir = TempDir::new("prop");
        let mut on_disk = if gz { gzip(&bytes) } else { bytes.clone() };
        if let Some((i, x)) = flip {
            let n = on_disk.len();
            on_disk[i % n] ^= x;
        }
        let p = dir.path().join("f");
        fs::write(&p, &on_disk).unwrap();
        // Also pure noise.
        let q = dir.path().join("noise");
        fs::write(&q, &noise).unwrap();
        for path in [&p, &q] {
            match idx::read_images(path) {
                Ok(im) => {
                    prop_assert_eq!(im.pixels.len(), im.count * im.rows * im.cols);
                    prop_assert!(im.rows > 0 && im.cols > 0);
                }
                Err(e) => {
                    let named = e.to_string().contains(&path.display().to_string());
                    prop_assert!(named, "error does not name the file: {}", e);
                }
            }
            match idx::read_labels(path) {
                Ok(l) => prop_assert!(l.iter().all(|&x| x <= 9)),
                Err(e) => {
                    let named = e.to_string().contains(&path.display().to_string());
                    prop_assert!(named, "error does not name the file: {}", e);
                }
            }
        }
    }

    #[test]
    fn write_read_round_trip(
        count in 0usize..20,
        rows in 1usize..6,
        cols in 1usize..6,
        seed in any::<u64>(),
        gz in any::<bool>(),
    ) {
        let dir = TempDir::new("prop-rt");
        let n = count * rows * cols;
        let pixels: Vec<u8> = (0..n).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 7) as u8).collect();
        let labels: Vec<u8> = (0..count).map(|i| ((seed >> (i % 60)) % 10) as u8).collect();
        let format = if gz { Format::Gzip } else { Format::Raw };
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        idx::write_images(&ip, &pixels, count, rows, cols, format).unwrap();
        idx::write_labels(&lp, &labels, format).unwrap();
        let d = idx::read_dataset(&ip, &lp).unwrap();
        prop_assert_eq!(d.images(), &pixels[..]);
        prop_assert_eq!(d.labels(), &labels[..]);
        prop_assert_eq!((d.rows(), d.cols()), (rows, cols));
    }
}
