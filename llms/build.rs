//! Records the optimisation level this crate is compiled at, so the local models can warn when
//! they run unoptimised (a dependent crate's debug build without the profile override).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OPT_LEVEL");
    let level = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=CATENA_LLMS_OPT_LEVEL={level}");
}
