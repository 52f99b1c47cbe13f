//! Generates the `catena.agent.v1` gRPC code, only when the `grpc` feature is on.
//!
//! The `.proto` is compiled by `protox` (a pure-Rust protobuf compiler), so no `protoc`
//! binary is needed. The encoded `FileDescriptorSet` is written next to the generated code
//! (`OUT_DIR/catena_agent_v1_descriptor.bin`) and embedded by `catena_agents::grpc` for
//! reflection and for other languages' tooling.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_some() {
        #[cfg(feature = "grpc")]
        if let Err(e) = grpc::generate() {
            println!("cargo:warning=gRPC code generation failed: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(feature = "grpc")]
mod grpc {
    use std::error::Error;
    use std::path::PathBuf;

    /// The contract, relative to the crate root.
    const PROTO: &str = "proto/catena/agent/v1/agent.proto";
    /// The include root (the buf module root).
    const INCLUDE: &str = "proto";

    pub(super) fn generate() -> Result<(), Box<dyn Error>> {
        let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
        let mut compiler = protox::Compiler::new([INCLUDE])?;
        compiler.include_source_info(true).include_imports(true);
        compiler.open_file(PROTO)?;
        let descriptor = compiler.encode_file_descriptor_set();
        std::fs::write(out_dir.join("catena_agent_v1_descriptor.bin"), descriptor)?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(true)
            .compile_fds(compiler.file_descriptor_set())?;
        Ok(())
    }
}
