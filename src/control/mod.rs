//! The control socket and the metrics page: the init's window for tools.
//!
//! * `protocol`: the versioned JSON protocol, one request and one answer
//!   per connection (docs/status.md);
//! * `server`: the sockets the init serves on its own event loop, with
//!   every peer checked (SO_PEERCRED: root or the init's own uid) and
//!   every connection bounded in size, time and number, so that a slow or
//!   hostile client never holds the loop up; requests reach the
//!   supervisor as `Asked` values and it answers them;
//! * `client`: the same binary as a client (`init --status`, `--reload`,
//!   `--scale`, `--stop`, `--probe ready`), with documented exit codes.
//!
//! Where the socket is: `--control PATH`, or by default `/run/cinit.sock`
//! (a FROM scratch image has no `/run`: the init makes it), else
//! `$XDG_RUNTIME_DIR/cinit.sock`, else `/tmp/cinit.sock`, the first whose
//! directory the init may write to. A client looks in the same places.

pub mod client;
pub mod json;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

use crate::vocab::{ControlSocket, CONTROL_FILE};

/// The directories the default socket may go in, in order.
fn default_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/run")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        let x = PathBuf::from(x);
        if x.is_absolute() {
            dirs.push(x);
        }
    }
    dirs.push(PathBuf::from("/tmp"));
    dirs
}

/// The paths a client tries, in order.
pub fn client_paths(setting: &ControlSocket) -> Vec<PathBuf> {
    match setting {
        ControlSocket::Path(p) => vec![p.clone()],
        ControlSocket::Off => Vec::new(),
        ControlSocket::Auto => default_dirs()
            .into_iter()
            .map(|d| d.join(CONTROL_FILE))
            .collect(),
    }
}

fn writable(dir: &Path) -> bool {
    dir.is_dir() && nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Where the init puts its socket: `(path, chosen by default)`. `/run` is
/// made when it is missing (a FROM scratch image); a directory the init
/// cannot write to is passed over.
pub fn server_path(setting: &ControlSocket) -> Option<(PathBuf, bool)> {
    match setting {
        ControlSocket::Off => None,
        ControlSocket::Path(p) => Some((p.clone(), false)),
        ControlSocket::Auto => {
            let dirs = default_dirs();
            let run = &dirs[0];
            if !run.exists() {
                use std::os::unix::fs::DirBuilderExt;
                let _ = std::fs::DirBuilder::new().mode(0o755).create(run);
            }
            let dir = dirs.iter().find(|d| writable(d)).unwrap_or(run).clone();
            Some((dir.join(CONTROL_FILE), true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_look_where_the_init_may_put_it() {
        let paths = client_paths(&ControlSocket::Auto);
        assert_eq!(paths[0], Path::new("/run/cinit.sock"));
        assert_eq!(paths.last().unwrap(), Path::new("/tmp/cinit.sock"));
        assert_eq!(
            client_paths(&ControlSocket::Path("/x.sock".into())),
            vec![PathBuf::from("/x.sock")]
        );
        assert!(client_paths(&ControlSocket::Off).is_empty());
        assert_eq!(server_path(&ControlSocket::Off), None);
        let (p, default) = server_path(&ControlSocket::Path("/x.sock".into())).unwrap();
        assert_eq!((p.as_path(), default), (Path::new("/x.sock"), false));
        let (p, default) = server_path(&ControlSocket::Auto).unwrap();
        assert!(default && paths.contains(&p), "{p:?}");
    }
}
