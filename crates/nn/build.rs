//! With `--features cuda`, keeps libtorch_cuda linked into every binary even though no symbol of it is
//! referenced directly (the linker's --as-needed would drop it: tch issues #907, #980). The rpath to
//! libtorch itself is set for the whole workspace in `.cargo/config.toml`.
fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_CUDA");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
            println!("cargo:rustc-link-search=native={}", lib.to_string_lossy());
        }
        println!("cargo:rustc-link-lib=dylib:-as-needed=torch");
    }
}
