//! Makes sure `dashboard/dist` exists so that `rust-embed` compiles on a fresh clone
//! without npm (the folder is then empty and the service shows a page saying how to build
//! the dashboard), and rebuilds this crate whenever the built dashboard changes.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest_dir).join("../../dashboard/dist");
    if !dist.exists()
        && let Err(error) = std::fs::create_dir_all(&dist)
    {
        println!(
            "cargo::warning=cannot create {}: {error}; the dashboard will not be embedded",
            dist.display()
        );
    }
    // Cargo scans a directory named here recursively, so `npm run build` triggers a rebuild.
    println!("cargo::rerun-if-changed={}", dist.display());
    println!("cargo::rerun-if-changed=build.rs");
}
