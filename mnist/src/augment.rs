//! Augmentation on the fly: each image of a mini-batch rotated, scaled and shifted at random
//! (bilinear interpolation, zeros outside the image), the draw a pure function of
//! `(seed, epoch, image index)`, so a run is reproducible and resumable without storing any
//! augmented data. The book's 1-pixel expansion ([`crate::expand()`]) stays as it is.
//!
//! The transform maps an output pixel `p` (centred on the image centre `c`) back to its source
//! `c + R(-angle) (p - c - shift) / scale`, as `torchvision`'s `RandomAffine` does.

/// The ranges a random transform is drawn from, uniformly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Rotation in degrees, drawn from `[-degrees, degrees]`.
    pub degrees: f64,
    /// Shift in pixels along each axis, drawn from `[-shift, shift]`.
    pub shift: f64,
    /// Scale drawn from `[1 - scale, 1 + scale]`.
    pub scale: f64,
}

impl Augment {
    /// ±10 degrees, ±2 pixels, ±10% scale: the ranges of the Kaggle MNIST recipes.
    pub const MNIST: Augment = Augment {
        degrees: 10.0,
        shift: 2.0,
        scale: 0.1,
    };

    /// No transform at all.
    pub const NONE: Augment = Augment {
        degrees: 0.0,
        shift: 0.0,
        scale: 0.0,
    };

    /// Whether every range is 0 (every draw the identity).
    pub fn is_none(&self) -> bool {
        *self == Augment::NONE
    }

    /// The transform of image `index` in `epoch` of a run seeded `seed`.
    pub fn draw(&self, seed: u64, epoch: u64, index: u64) -> Affine {
        let mut state = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.rotate_left(32);
        let mut uniform = || {
            // splitmix64, 53 bits to [-1, 1).
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        };
        Affine {
            degrees: self.degrees * uniform(),
            scale: 1.0 + self.scale * uniform(),
            dx: self.shift * uniform(),
            dy: self.shift * uniform(),
        }
    }
}

/// One rotation (about the image centre), scale and shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Counter-clockwise rotation in degrees (as displayed, rows growing downwards).
    pub degrees: f64,
    /// Scale factor (> 1 enlarges the digit).
    pub scale: f64,
    /// Shift right, in pixels.
    pub dx: f64,
    /// Shift down, in pixels.
    pub dy: f64,
}

impl Affine {
    /// The identity transform.
    pub const IDENTITY: Affine = Affine {
        degrees: 0.0,
        scale: 1.0,
        dx: 0.0,
        dy: 0.0,
    };

    /// Writes `convert(v)` for each pixel `v` of `src` (`rows x cols`, u8) transformed, into
    /// `out`; `v` is the bilinear interpolation of the four source pixels around the point the
    /// output pixel comes from, pixels outside the image counting as 0.
    pub fn warp<T>(
        &self,
        src: &[u8],
        rows: usize,
        cols: usize,
        out: &mut [T],
        convert: impl Fn(f32) -> T,
    ) {
        let (sin, cos) = self.degrees.to_radians().sin_cos();
        let (cy, cx) = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
        let inv = 1.0 / self.scale;
        let pixel = |y: isize, x: isize| -> f32 {
            if y < 0 || x < 0 || y >= rows as isize || x >= cols as isize {
                0.0
            } else {
                f32::from(src[y as usize * cols + x as usize])
            }
        };
        for (oy, row) in out.chunks_exact_mut(cols).take(rows).enumerate() {
            for (ox, o) in row.iter_mut().enumerate() {
                let (py, px) = (oy as f64 - cy - self.dy, ox as f64 - cx - self.dx);
                // Inverse rotation (counter-clockwise on screen is clockwise in (x, y) with y
                // down), then inverse scale.
                let sx = (cos * px - sin * py) * inv + cx;
                let sy = (sin * px + cos * py) * inv + cy;
                let (fy, fx) = (sy.floor(), sx.floor());
                let (wy, wx) = ((sy - fy) as f32, (sx - fx) as f32);
                let (y0, x0) = (fy as isize, fx as isize);
                let top = pixel(y0, x0) * (1.0 - wx) + pixel(y0, x0 + 1) * wx;
                let bottom = pixel(y0 + 1, x0) * (1.0 - wx) + pixel(y0 + 1, x0 + 1) * wx;
                *o = convert(top * (1.0 - wy) + bottom * wy);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: usize, cols: usize) -> Vec<u8> {
        (0..rows * cols).map(|i| ((i * 37) % 251) as u8).collect()
    }

    fn warp(t: Affine, src: &[u8], rows: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows * cols];
        t.warp(src, rows, cols, &mut out, |v| v);
        out
    }

    fn shifted(dx: f64, dy: f64) -> Affine {
        Affine {
            dx,
            dy,
            ..Affine::IDENTITY
        }
    }

    fn turned(degrees: f64) -> Affine {
        Affine {
            degrees,
            ..Affine::IDENTITY
        }
    }

    #[test]
    fn the_identity_reproduces_the_image_exactly() {
        let src = image(28, 28);
        let got = warp(Affine::IDENTITY, &src, 28, 28);
        assert!(got.iter().zip(&src).all(|(&g, &s)| g == f32::from(s)));
    }

    #[test]
    fn whole_pixel_shifts_move_the_image_and_fill_with_zeros() {
        let src = image(6, 5);
        let got = warp(shifted(1.0, -2.0), &src, 6, 5);
        for y in 0..6 {
            for x in 0..5 {
                // Output (y, x) comes from (y + 2, x - 1).
                let want = if y + 2 < 6 && x >= 1 {
                    f32::from(src[(y + 2) * 5 + x - 1])
                } else {
                    0.0
                };
                assert_eq!(got[y * 5 + x], want, "({y}, {x})");
            }
        }
    }

    #[test]
    fn a_quarter_turn_is_a_transpose_and_flip() {
        let src = image(7, 7);
        let got = warp(turned(90.0), &src, 7, 7);
        // Counter-clockwise on screen: the top row becomes the left column, read upwards, so
        // output (y, x) is source (x, 6 - y).
        for y in 0..7 {
            for x in 0..7 {
                let want = f32::from(src[x * 7 + 6 - y]);
                assert!((got[y * 7 + x] - want).abs() < 1e-3, "({y}, {x})");
            }
        }
    }

    #[test]
    fn half_pixel_shifts_average_neighbours_and_scale_keeps_the_centre() {
        let src = image(5, 5);
        let got = warp(shifted(0.5, 0.0), &src, 5, 5);
        let want = (f32::from(src[2 * 5 + 1]) + f32::from(src[2 * 5 + 2])) / 2.0;
        assert_eq!(got[2 * 5 + 2], want);
        let t = Affine {
            scale: 1.7,
            ..Affine::IDENTITY
        };
        assert_eq!(warp(t, &src, 5, 5)[12], f32::from(src[12]));
    }

    #[test]
    fn draws_are_reproducible_in_range_and_differ_between_epochs_and_images() {
        let a = Augment::MNIST;
        assert_eq!(a.draw(1, 2, 3), a.draw(1, 2, 3));
        assert_ne!(a.draw(1, 2, 3), a.draw(1, 3, 3));
        assert_ne!(a.draw(1, 2, 3), a.draw(1, 2, 4));
        assert_ne!(a.draw(1, 2, 3), a.draw(2, 2, 3));
        let draws: Vec<Affine> = (0..10_000).map(|i| a.draw(7, 0, i)).collect();
        for d in &draws {
            assert!(d.degrees.abs() <= 10.0 && (d.scale - 1.0).abs() <= 0.1);
            assert!(d.dx.abs() <= 2.0 && d.dy.abs() <= 2.0);
        }
        // Uniform on [-10, 10]: mean near 0, a tenth of the draws above 8.
        let mean = draws.iter().map(|d| d.degrees).sum::<f64>() / 1e4;
        let high = draws.iter().filter(|d| d.degrees > 8.0).count();
        assert!(mean.abs() < 0.2, "{mean}");
        assert!((850..1150).contains(&high), "{high}");
    }
}
