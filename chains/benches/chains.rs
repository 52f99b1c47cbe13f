//! Chain overhead benchmarks (being written).
fn main() {}
