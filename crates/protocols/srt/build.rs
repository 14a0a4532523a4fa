//! Links libsrt, with an error that says what to install when it is missing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let found = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("libsrt.so").exists());
    if !found && std::env::var_os("STARLING_SRT_LIB_DIR").is_none() {
        println!(
            "cargo:warning=libsrt.so not found: install Debian's libsrt-openssl-dev \
             (scripts/run and scripts/test do), or set STARLING_SRT_LIB_DIR"
        );
    }
    if let Some(dir) = std::env::var_os("STARLING_SRT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir.to_string_lossy());
    }
    println!("cargo:rerun-if-env-changed=STARLING_SRT_LIB_DIR");
    println!("cargo:rustc-link-lib=dylib=srt");
}
