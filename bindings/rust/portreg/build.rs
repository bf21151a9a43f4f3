//! The run path for this package's tests, examples and benchmarks: the
//! directory where portreg-sys found libportreg (rustc-link-arg reaches only
//! the package that prints it).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_PORTREG_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_PORTREG_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
