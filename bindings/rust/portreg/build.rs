//! The run path for this package's tests, examples and benchmarks: the
//! directory where portreg-sys found libportreg (rustc-link-arg reaches only
//! the package that prints it). Windows has no run path: the DLL is found
//! next to the program or on `PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_PORTREG_LIB_DIR");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").map_or(false, |os| os == "windows");
    if let (Ok(dir), false) = (std::env::var("DEP_PORTREG_LIB_DIR"), windows) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
