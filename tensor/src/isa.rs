//! Which instruction set the hand-written kernels run on: chosen once per process, so that
//! every kernel family (small products, the fused linear step, direct convolution, batch norm,
//! the elementwise loops) agrees, and lowered by `NNDL_ISA` to time or test the fallbacks.

use std::sync::OnceLock;

/// Which instructions a kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F intrinsics, 16 lanes.
    Avx512,
    /// The generic body compiled with AVX2 and FMA enabled.
    Avx2,
    /// The generic body for any CPU.
    Portable,
}

impl Isa {
    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every ISA this CPU can run, best first (what the tests compare with the references).
    #[cfg(test)]
    pub(crate) fn all_available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }
}

/// The best kernel this CPU runs; `NNDL_ISA=avx2` or `NNDL_ISA=portable` lowers it (to time or
/// test the fallbacks on an AVX-512 machine).
pub fn best_isa() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        let want = std::env::var("NNDL_ISA").unwrap_or_default();
        let order: &[Isa] = match want.as_str() {
            "portable" => &[Isa::Portable],
            "avx2" => &[Isa::Avx2, Isa::Portable],
            _ => &[Isa::Avx512, Isa::Avx2, Isa::Portable],
        };
        order
            .iter()
            .copied()
            .find(|i| i.available())
            .unwrap_or(Isa::Portable)
    })
}

/// Which kernel runs an op, and whether it may split the op across threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// The instruction set.
    pub isa: Isa,
    /// Whether a big op is split across the kernel threads.
    pub parallel: bool,
}

impl Kernel {
    /// The best ISA of this CPU, splitting big ops: what the library runs.
    pub fn best() -> Kernel {
        Kernel {
            isa: best_isa(),
            parallel: true,
        }
    }
}

/// `a * b + c` in the generic kernels: `mul_add` is one instruction with FMA and a libm call
/// without, so it is only used where the crate is compiled with FMA.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The first `len` of 16 lanes (all when `len >= 16`): the masked tail of every f32 AVX-512
/// loop in the crate.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn mask16(len: usize) -> std::arch::x86_64::__mmask16 {
    if len >= 16 {
        0xffff
    } else {
        ((1u32 << len) - 1) as std::arch::x86_64::__mmask16
    }
}
