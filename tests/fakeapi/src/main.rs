//! `fake-apiserver`: the fake API server as a process, for shell scripts and demos.
fn main() {}
