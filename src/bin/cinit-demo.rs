//! Demo worker (being written).
fn main() {}
