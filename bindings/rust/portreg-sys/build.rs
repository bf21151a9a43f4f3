//! Finds libportreg and tells rustc how to link it.
//!
//! No crates are used here (no `pkg-config` or `cc` crate), only commands:
//! 1. `PORTREG_LIB_DIR` (the directory holding `libportreg.so`) and
//!    optionally `PORTREG_INCLUDE_DIR` (holding `portreg.h`; default
//!    `$PORTREG_LIB_DIR/../include`), for a build tree or an unusual prefix;
//! 2. otherwise the `pkg-config` command (`pkg-config portreg`), which also
//!    honours `PKG_CONFIG_PATH`.
//!
//! The library directory is written into the run path of this package's
//! binaries and passed on to dependents as `DEP_PORTREG_LIB_DIR` (the
//! `portreg` crate does the same for its own binaries), so tests run
//! without `LD_LIBRARY_PATH`.
use std::env;
use std::path::{Path, PathBuf};
use std::process::{self, Command};

const HELP: &str = "\
portreg-sys: libportreg was not found.
Install it, then build again; any one of these works:
  * from this repository: cmake --preset release && cmake --build --preset release \\
      && sudo cmake --install build/release      (installs portreg.pc for pkg-config)
  * an installed prefix elsewhere: PKG_CONFIG_PATH=<prefix>/lib/pkgconfig cargo build
  * a build tree without installing: PORTREG_LIB_DIR=<build dir holding libportreg.so> \\
      PORTREG_INCLUDE_DIR=<repo>/include cargo build
Building libportreg itself needs: cmake, a C compiler, pkg-config, libck-dev, nanopb
(Debian: apt-get install cmake gcc pkg-config libck-dev nanopb libnanopb-dev python3-protobuf,
or run scripts/install-deps.sh from the repository).";

fn fail(why: &str) -> ! {
    eprintln!("{why}\n\n{HELP}");
    // Cargo shows the build script's stderr only on failure: say it twice so
    // that the reason is also in the short summary.
    println!("cargo:warning={why}");
    process::exit(1);
}

fn pkg_config_var(var: &str) -> Option<PathBuf> {
    let out =
        Command::new("pkg-config").args([&format!("--variable={var}"), "portreg"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    if text.is_empty() {
        None
    } else {
        Some(PathBuf::from(text))
    }
}

fn main() {
    for var in ["PORTREG_LIB_DIR", "PORTREG_INCLUDE_DIR", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let (lib_dir, include_dir) = match env::var_os("PORTREG_LIB_DIR") {
        Some(lib) => {
            let lib = PathBuf::from(lib);
            let include = env::var_os("PORTREG_INCLUDE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| lib.join("..").join("include"));
            (lib, include)
        }
        None => match (pkg_config_var("libdir"), pkg_config_var("includedir")) {
            (Some(lib), Some(include)) => (lib, include),
            _ => fail("`pkg-config portreg` found nothing and PORTREG_LIB_DIR is not set"),
        },
    };

    let lib_dir = lib_dir.canonicalize().unwrap_or_else(|_| {
        fail(&format!("library directory {} does not exist (PORTREG_LIB_DIR and PORTREG_INCLUDE_DIR must be absolute paths)", lib_dir.display()))
    });
    if !lib_dir.join("libportreg.so").exists() {
        fail(&format!("{} holds no libportreg.so", lib_dir.display()));
    }
    let include_dir = include_dir.canonicalize().unwrap_or_else(|_| {
        fail(&format!("include directory {} does not exist", include_dir.display()))
    });
    if !Path::new(&include_dir).join("portreg.h").exists() {
        fail(&format!("{} holds no portreg.h (set PORTREG_INCLUDE_DIR)", include_dir.display()));
    }
    println!("cargo:rerun-if-changed={}", include_dir.join("portreg.h").display());
    println!("cargo:rerun-if-changed={}", lib_dir.join("libportreg.so").display());

    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=portreg");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // Dependents read these as DEP_PORTREG_LIB_DIR / DEP_PORTREG_INCLUDE_DIR.
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:include_dir={}", include_dir.display());
    // The layout test compiles a C program against the same header.
    println!("cargo:rustc-env=PORTREG_SYS_INCLUDE_DIR={}", include_dir.display());
    println!("cargo:rustc-env=PORTREG_SYS_LIB_DIR={}", lib_dir.display());
}
