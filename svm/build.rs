//! libsvm-sys compiles LIBSVM's `svm.cpp` with the `cc` crate but, as it does not mark the build
//! as C++, does not tell cargo to link the C++ runtime that `svm.cpp` needs (operator new/delete,
//! vtables of the solver classes). This build script does.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let runtime = if target.contains("apple") || target.contains("freebsd") {
        Some("c++")
    } else if target.contains("msvc") {
        None // MSVC links its C++ runtime by default
    } else {
        Some("stdc++")
    };
    if let Some(lib) = runtime {
        println!("cargo:rustc-link-lib={lib}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
