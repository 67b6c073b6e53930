//! Elementwise kernels with their derivatives, and small layout helpers.
//!
//! Each activation is an `f(x)` / `df` pair, as dfdx declares them, so autograd can use the
//! pair without restating the maths.

use crate::Float;

/// Logistic sigmoid, computed without overflow for large |x|.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `out = sigmoid(x)` over a slice. For f32 a branch-free kernel with a polynomial `e^x`
/// (Cephes' expf: within 2 ulp) that the compiler vectorises, 16 lanes with AVX-512: the
/// libm call per element was 9% of a sigmoid conv net's training step. f64 (gradient checks)
/// keeps [`sigmoid`].
pub fn sigmoid_into<T: Float>(x: &[T], out: &mut [T]) {
    let n = x.len().min(out.len());
    out[..n].copy_from_slice(&x[..n]);
    sigmoid_in_place(&mut out[..n]);
}

/// [`sigmoid_into`] in place.
pub fn sigmoid_in_place<T: Float>(x: &mut [T]) {
    if T::DTYPE == "f32" {
        // SAFETY: T is f32 (DTYPE is only "f32" for f32), so the slice is an f32 slice.
        let x = unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) };
        #[cfg(target_arch = "x86_64")]
        if crate::isa::Isa::Avx512.available() {
            // SAFETY: the CPU has AVX-512F.
            unsafe { super::avx512::sigmoid_f32(x) };
            return;
        }
        sigmoid_f32(x);
    } else {
        x.iter_mut().for_each(|v| *v = sigmoid(*v));
    }
}

/// The f32 sigmoid loop, inlined into each wrapper that compiles it for an ISA.
#[inline(always)]
pub(super) fn sigmoid_f32(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 1.0 / (1.0 + exp_f32(-*v));
    }
}

/// A dropout mask: element `i` is `0` with probability `p` and `keep` otherwise, from a
/// counter-based stream: elements `2j` and `2j + 1` take the two 32-bit halves of
/// SplitMix64(`seed + j`), dropped when the half is below `p * 2^32`. The same `seed` gives
/// the same mask on every machine; the loop is compiled for AVX-512 where the CPU has it
/// (a random-number-generator call per element was 4% of a dropout net's training step).
pub fn bernoulli_mask<T: Float>(seed: u64, p: f64, keep: T, out: &mut [T]) {
    let below = (p.clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512dq") {
        // SAFETY: the CPU has AVX-512F and DQ.
        unsafe { super::avx512::bernoulli_mask(seed, below, keep, out) };
        return;
    }
    mask_body(seed, below, keep, out)
}

/// The dropout mask loop (see [`bernoulli_mask`]), inlined into each wrapper that compiles
/// it for an ISA.
#[inline(always)]
pub(super) fn mask_body<T: Float>(seed: u64, below: u64, keep: T, out: &mut [T]) {
    let pick = |bits: u64| if bits < below { T::zero() } else { keep };
    let j = out.len() / 2;
    let mut pairs = out.chunks_exact_mut(2);
    for (j, pair) in (&mut pairs).enumerate() {
        let r = splitmix64(seed.wrapping_add(j as u64));
        pair[0] = pick(r & 0xffff_ffff);
        pair[1] = pick(r >> 32);
    }
    if let Some(last) = pairs.into_remainder().first_mut() {
        *last = pick(splitmix64(seed.wrapping_add(j as u64)) & 0xffff_ffff);
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of a counter (Steele, Lea and
/// Flood, 2014; the seeder of xoshiro and of Java's SplittableRandom).
#[inline(always)]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The activations a fused layer applies itself (see [`crate::conv::conv_pool_forward`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    Identity,
    /// Logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// max(x, 0).
    Relu,
}

impl Act {
    /// `x <- act(x)`.
    pub fn apply<T: Float>(self, x: &mut [T]) {
        match self {
            Act::Identity => {}
            Act::Sigmoid => sigmoid_in_place(x),
            Act::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            Act::Relu => x.iter_mut().for_each(|v| *v = relu(*v)),
        }
    }

    /// The derivative at the input whose output is `y`.
    #[inline]
    pub fn grad_from_output<T: Float>(self, y: T) -> T {
        match self {
            Act::Identity => T::one(),
            Act::Sigmoid => sigmoid_grad_from_output(y),
            Act::Tanh => tanh_grad_from_output(y),
            Act::Relu => relu_grad_from_output(y),
        }
    }
}

/// `e^x` for f32 without branches (Cephes' expf): `x = n ln2 + r`, `e^r` by a degree-6
/// polynomial, `2^n` put into the exponent bits. Arguments are clamped to [-87.3, 88.7], so
/// the result is finite and normal (the sigmoid of a huge input is then 1 or ~6e-39, not 0).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Derivative of the sigmoid given its output `y`.
#[inline]
pub fn sigmoid_grad_from_output<T: Float>(y: T) -> T {
    y * (T::one() - y)
}

/// Derivative of tanh given its output `y`.
#[inline]
pub fn tanh_grad_from_output<T: Float>(y: T) -> T {
    T::one() - y * y
}

/// max(x, 0).
#[inline]
pub fn relu<T: Float>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// Derivative of ReLU from its output (0 at 0, as PyTorch and Theano take it).
#[inline]
pub fn relu_grad_from_output<T: Float>(y: T) -> T {
    if y > T::zero() {
        T::one()
    } else {
        T::zero()
    }
}

/// `out = f(x)` elementwise.
pub fn map_into<T: Float>(x: &[T], out: &mut [T], f: impl Fn(T) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// Copies the transpose of the row-major `r x c` matrix `x` into `out` (`c x r`).
pub fn transpose_into<T: Float>(x: &[T], r: usize, c: usize, out: &mut [T]) {
    const B: usize = 32;
    for i0 in (0..r).step_by(B) {
        for j0 in (0..c).step_by(B) {
            for i in i0..(i0 + B).min(r) {
                for j in j0..(j0 + B).min(c) {
                    out[j * r + i] = x[i * c + j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_f32_sigmoid_and_exp_match_the_f64_definitions() {
        let xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
        let mut out = vec![0.0f32; xs.len()];
        sigmoid_into(&xs, &mut out);
        let mut portable = xs.clone();
        sigmoid_f32(&mut portable);
        for ((&x, &y), &z) in xs.iter().zip(&out).zip(&portable) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(
                (y as f64 - want).abs() <= 2.5e-7 * want.max(1e-30),
                "sigmoid({x}) = {y}, want {want}"
            );
            assert!(
                (y - z).abs() <= 1.2e-7 * z,
                "AVX-512 and portable differ at {x}"
            );
        }
        for &x in &[
            -87.0f32, -20.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 10.0, 50.0, 88.0,
        ] {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}) = {got}, want {want}"
            );
        }
        // Saturation: finite, ordered, and no NaN for infinities.
        let mut o = [0.0f32; 4];
        sigmoid_into(&[f32::NEG_INFINITY, -1000.0, 1000.0, f32::INFINITY], &mut o);
        assert!(o[0] >= 0.0 && o[0] < 1e-37 && o[1] < 1e-37);
        assert_eq!([o[2], o[3]], [1.0, 1.0]);
        // The mask kernel (AVX-512 or not) is the plain loop.
        let mut m1 = vec![0.0f32; 1001];
        bernoulli_mask(7, 0.5, 2.0, &mut m1);
        let mut m2 = vec![0.0f32; 1001];
        mask_body(7, 1 << 31, 2.0, &mut m2);
        assert_eq!(m1, m2);
        assert_eq!(
            m1[1000] == 0.0,
            (splitmix64(7 + 500) & 0xffff_ffff) < 1 << 31
        );
        // f64 keeps the exact formula.
        let mut d = [0.0f64; 1];
        sigmoid_into(&[0.3f64], &mut d);
        assert_eq!(d[0], sigmoid(0.3f64));
    }
}
