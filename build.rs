//! Compiles the wire schema (proto/barrage/v1/*.proto) with protox + prost-build, so building
//! needs no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["barrage/v1/barrage.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
