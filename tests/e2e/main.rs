//! The one end-to-end test binary: every file here is a module, and the
//! helpers they share live once, in `common`. Each test runs the real
//! `init` (as PID 1 under `unshare`, in Docker, or as a plain child) and
//! waits on conditions with deadlines, never on fixed sleeps.

mod common;
mod qemu;

mod architecture;
mod arm64;
mod bench_docs;
mod cli;
mod demo_worker;
mod docker;
mod docker_memory;
mod docker_programs;
mod docs_examples;
mod example_image;
mod examples;
mod fastapi;
mod hardening;
mod memory;
mod pid1;
mod prestart_e2e;
mod prestart_probe;
mod privileges;
mod programs;
mod readiness;
mod resources_fixtures;
mod resources_live;
mod skips;
mod status;
mod workers;
