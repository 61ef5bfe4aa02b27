//! The one end-to-end test binary: every file here is a module, and the
//! helpers they share live once, in `common`. Each test runs the real
//! `init` (as PID 1 under `unshare`, in Docker, or as a plain child) and
//! waits on conditions with deadlines, never on fixed sleeps.

mod common;
mod qemu;

mod arm64;
mod cli;
mod demo_worker;
mod docker;
mod example_image;
mod examples;
mod fastapi;
mod pid1;
mod prestart_e2e;
mod prestart_probe;
mod resources_fixtures;
mod resources_live;
mod workers;
