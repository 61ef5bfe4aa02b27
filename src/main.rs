//! `init`: thin on purpose; everything lives in the library.

fn main() {
    std::process::exit(cinit::run(std::env::args_os()));
}
