//! Finds libportreg and tells rustc how to link it.
//!
//! No crates are used here (no `pkg-config` or `cc` crate), only commands:
//! 1. `PORTREG_LIB_DIR` (the directory holding `libportreg.so`) and
//!    optionally `PORTREG_INCLUDE_DIR` (holding `portreg.h`; default
//!    `$PORTREG_LIB_DIR/../include`), for a build tree or an unusual prefix;
//! 2. otherwise the `pkg-config` command (`pkg-config portreg`), which also
//!    honours `PKG_CONFIG_PATH`;
//! 3. with the `bundled` feature, neither: the `cmake` command builds the
//!    library from the C sources (the repository around this crate, or
//!    `PORTREG_SOURCE_DIR`) into `OUT_DIR` and installs it there. CMake
//!    options pass through `PORTREG_CMAKE_ARGS` (space-separated, e.g.
//!    `-DCMAKE_TOOLCHAIN_FILE=...` for a cross build) and
//!    `PORTREG_CK_SOURCE` (Concurrency Kit's tarball, where no package
//!    exists and the build cannot download).
//!
//! The library directory is written into the run path of this package's
//! binaries and passed on to dependents as `DEP_PORTREG_LIB_DIR` (the
//! `portreg` crate does the same for its own binaries), so tests run
//! without `LD_LIBRARY_PATH`.
//!
//! Windows (x86_64): the same three ways, with the library directory
//! holding the DLL's import library, under the name each target's linker
//! looks for: `portreg.lib` (`x86_64-pc-windows-msvc`) or `libportreg.dll.a`
//! (`x86_64-pc-windows-gnu`; the build installs both). Windows has no run
//! path: `libportreg.dll` (installed in `<prefix>/bin`) must be next to the
//! program or on `PATH`. With `PORTREG_STATIC=1` the gnu target links the
//! static library instead (`libportreg.a`, and the system libraries it
//! needs); the msvc target cannot, since that archive is built by mingw-w64
//! and needs its runtime.
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

/// Builds and installs libportreg with cmake; its lib and include dirs.
fn build_bundled() -> (PathBuf, PathBuf) {
    let source = match env::var_os("PORTREG_SOURCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.."),
    };
    if !source.join("CMakeLists.txt").exists() || !source.join("include/portreg.h").exists() {
        fail(&format!(
            "bundled: {} holds no portreg sources (set PORTREG_SOURCE_DIR)",
            source.display()
        ));
    }
    for dir in ["src", "include", "proto", "cmake"] {
        println!("cargo:rerun-if-changed={}", source.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", source.join("CMakeLists.txt").display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let (build, prefix) = (out.join("build"), out.join("install"));
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&source)
        .arg("-B")
        .arg(&build)
        .arg("-DCMAKE_BUILD_TYPE=Release")
        .arg("-DCMAKE_INSTALL_LIBDIR=lib")
        .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()));
    if let Some(ck) = env::var_os("PORTREG_CK_SOURCE") {
        configure.arg(format!("-DPORTREG_CK_SOURCE={}", Path::new(&ck).display()));
    }
    if let Ok(args) = env::var("PORTREG_CMAKE_ARGS") {
        configure.args(args.split_whitespace());
    }
    let jobs = env::var("NUM_JOBS").unwrap_or_else(|_| "2".into());
    for (what, cmd) in [
        ("configure", &mut configure),
        ("build", Command::new("cmake").arg("--build").arg(&build).args(["-j", &jobs])),
        ("install", Command::new("cmake").arg("--install").arg(&build)),
    ] {
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(s) => fail(&format!("bundled: cmake {what} failed ({s})")),
            Err(e) => fail(&format!("bundled: cannot run cmake ({e})")),
        }
    }
    (prefix.join("lib"), prefix.join("include"))
}

fn main() {
    for var in [
        "PORTREG_LIB_DIR",
        "PORTREG_INCLUDE_DIR",
        "PKG_CONFIG_PATH",
        "PORTREG_SOURCE_DIR",
        "PORTREG_CMAKE_ARGS",
        "PORTREG_CK_SOURCE",
        "PORTREG_STATIC",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let bundled = env::var_os("CARGO_FEATURE_BUNDLED").is_some();
    let (lib_dir, include_dir) = match env::var_os("PORTREG_LIB_DIR") {
        _ if bundled => build_bundled(),
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
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let windows = target_os == "windows";
    let static_link = windows && target_env == "gnu" && env::var_os("PORTREG_STATIC").is_some();
    // The file the target's linker takes for `-l portreg`.
    let lib_file = match (target_os.as_str(), target_env.as_str()) {
        ("windows", "msvc") => "portreg.lib",
        ("windows", _) if static_link => "libportreg.a",
        ("windows", _) => "libportreg.dll.a",
        ("macos", _) | ("ios", _) => "libportreg.dylib",
        _ => "libportreg.so",
    };
    if !lib_dir.join(lib_file).exists() {
        fail(&format!("{} holds no {lib_file}", lib_dir.display()));
    }
    let include_dir = include_dir.canonicalize().unwrap_or_else(|_| {
        fail(&format!("include directory {} does not exist", include_dir.display()))
    });
    if !Path::new(&include_dir).join("portreg.h").exists() {
        fail(&format!("{} holds no portreg.h (set PORTREG_INCLUDE_DIR)", include_dir.display()));
    }
    println!("cargo:rerun-if-changed={}", include_dir.join("portreg.h").display());
    println!("cargo:rerun-if-changed={}", lib_dir.join(lib_file).display());

    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    if static_link {
        println!("cargo:rustc-link-lib=static=portreg");
        for sys in ["synchronization", "bcrypt", "winpthread"] {
            println!("cargo:rustc-link-lib=dylib={sys}");
        }
    } else {
        println!("cargo:rustc-link-lib=dylib=portreg");
    }
    if !windows {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    }
    // Dependents read these as DEP_PORTREG_LIB_DIR / DEP_PORTREG_INCLUDE_DIR.
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:include_dir={}", include_dir.display());
    // The layout test compiles a C program against the same header.
    println!("cargo:rustc-env=PORTREG_SYS_INCLUDE_DIR={}", include_dir.display());
    println!("cargo:rustc-env=PORTREG_SYS_LIB_DIR={}", lib_dir.display());
}
