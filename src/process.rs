//! Process setup around a server: `--pid-file`, `--user`/`--group` (dropping privileges after
//! binding), `--umask` and `--daemonize`. All of it is safe code: privilege changes go through
//! `nix`, and daemonizing re-executes the program instead of forking (see [`daemonize`]).

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Group, Pid, Uid, User};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::error::Error;

/// Set in the environment of the re-executed daemon (see [`daemonize`]).
pub const DAEMON_ENV: &str = "PAGI_SERVER_DAEMON";

/// What the daemon writes on its readiness pipe once it serves.
const READY: &str = "ready";

/// Parses an octal umask like `027` or `0o077`.
pub fn parse_umask(s: &str) -> Result<u32, String> {
    let m = crate::listener::parse_octal(s)
        .ok_or_else(|| format!("{s:?} is not an octal umask like 027"))?;
    if m > 0o777 {
        return Err(format!("{s:?}: a umask has at most the bits 0777"));
    }
    Ok(m)
}

/// Sets the process umask (affects the Unix socket files, unless `--socket-mode` is given, and
/// the pid file). Returns the old one.
pub fn set_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(Mode::from_bits_truncate(mask as nix::libc::mode_t)).bits() as u32
}

/// The identity `--user`/`--group` ask for, looked up before binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user, when `--user` was given.
    pub uid: Option<Uid>,
    /// The group: `--group`, else the user's primary group.
    pub gid: Gid,
    /// The user's name (for initgroups), when it has a passwd entry.
    pub user_name: Option<String>,
}

impl Credentials {
    /// Resolves `--user` (name or number) and `--group` (name or number). `None` when neither is
    /// given.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Self>, Error> {
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let user = match user {
            Some(u) => Some(lookup_user(u)?),
            None => None,
        };
        let gid = match (group, &user) {
            (Some(g), _) => lookup_group(g)?,
            (None, Some((_, Some(pw)))) => pw.gid,
            (None, Some((uid, None))) => {
                return Err(Error::new(format!(
                    "--user {uid} has no passwd entry, so it has no primary group: give --group"
                )))
            }
            (None, None) => unreachable!("one of them is given"),
        };
        Ok(Some(Credentials {
            uid: user.as_ref().map(|(uid, _)| *uid),
            gid,
            user_name: user.and_then(|(_, pw)| pw.map(|p| p.name)),
        }))
    }

    /// Drops to these credentials: supplementary groups (the user's, via initgroups, or just the
    /// group), then the group, then the user. Needs root (or CAP_SETUID/CAP_SETGID); a process
    /// already running as exactly this user and group does nothing.
    ///
    /// glibc and musl apply set*id to every thread of the process, so this is sound after the
    /// runtime has started.
    pub fn apply(&self) -> Result<(), Error> {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        if !uid.is_root() && self.uid.is_none_or(|u| u == uid) && self.gid == gid {
            return Ok(());
        }
        let fail = |what: &str, e: nix::Error| {
            let hint = if e == nix::Error::EPERM {
                " (--user and --group need the server to start as root)"
            } else {
                ""
            };
            Error::with(format!("cannot drop privileges: {what}{hint}"), e)
        };
        match &self.user_name {
            Some(name) => {
                let c = CString::new(name.as_str())
                    .map_err(|_| Error::new(format!("user name {name:?} has a NUL byte")))?;
                nix::unistd::initgroups(&c, self.gid).map_err(|e| fail("initgroups", e))?;
            }
            None => nix::unistd::setgroups(&[self.gid]).map_err(|e| fail("setgroups", e))?,
        }
        nix::unistd::setgid(self.gid).map_err(|e| fail("setgid", e))?;
        if let Some(uid) = self.uid {
            nix::unistd::setuid(uid).map_err(|e| fail("setuid", e))?;
            if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
                return Err(Error::new("dropped privileges could be regained; refusing"));
            }
        }
        tracing::info!(uid = %nix::unistd::geteuid(), gid = %nix::unistd::getegid(), "dropped privileges");
        Ok(())
    }

    /// Gives `path` (a Unix socket file) to the target user and group, before the drop, so the
    /// server can still remove it when it stops and the group can be used for access.
    pub fn chown(&self, path: &Path) -> Result<(), Error> {
        std::os::unix::fs::chown(path, self.uid.map(Uid::as_raw), Some(self.gid.as_raw()))
            .map_err(|e| Error::with(format!("cannot chown {}", path.display()), e))
    }
}

fn lookup_user(u: &str) -> Result<(Uid, Option<User>), Error> {
    let fail = |e: nix::Error| Error::with(format!("cannot look up user {u:?}"), e);
    if let Ok(n) = u.parse::<u32>() {
        let uid = Uid::from_raw(n);
        return Ok((uid, User::from_uid(uid).map_err(fail)?));
    }
    match User::from_name(u).map_err(fail)? {
        Some(pw) => Ok((pw.uid, Some(pw))),
        None => Err(Error::new(format!("--user {u:?}: no such user"))),
    }
}

fn lookup_group(g: &str) -> Result<Gid, Error> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(g).map_err(|e| Error::with(format!("cannot look up group {g:?}"), e))? {
        Some(gr) => Ok(gr.gid),
        None => Err(Error::new(format!("--group {g:?}: no such group"))),
    }
}

/// A pid file: written when the server has bound its listeners, removed when this value is
/// dropped (the server stopped) if it still holds this process's pid (a newer master may have
/// written its own since).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path` (replacing the file atomically).
    ///
    /// Refused when the file names another live process, like gunicorn (nginx overwrites): two
    /// servers given the same pid file are a mistake. The exception is this process's parent,
    /// which is how a hot upgrade starts the new master. A file naming a dead process (left
    /// by a crash or `kill -9`) is replaced.
    pub fn create(path: &Path) -> Result<PidFile, Error> {
        let show = path.display();
        let pid = std::process::id();
        match std::fs::read_to_string(path) {
            Ok(old) => match old.trim().parse::<i32>() {
                Ok(other) if other > 0 && other as u32 != pid && is_alive(other) => {
                    if Pid::from_raw(other) == nix::unistd::getppid() {
                        tracing::info!("pid file {show}: taking it over from parent {other}");
                    } else {
                        return Err(Error::new(format!(
                            "pid file {show} names process {other}, which is running \
                             (another server?); stop it or remove the file"
                        )));
                    }
                }
                Ok(other) if other as u32 != pid => {
                    tracing::info!("pid file {show}: replacing the stale pid {other}")
                }
                _ => {}
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::with(format!("cannot read pid file {show}"), e)),
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| Error::new(format!("pid file {show} is not a file name")))?;
        let tmp = dir.join(format!(".{}.{pid}.tmp", name.to_string_lossy()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{pid}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::with(format!("cannot write pid file {show}"), e));
        }
        Ok(PidFile {
            path: path.to_owned(),
            pid,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only the process that wrote it (not a forked worker with a copy of this value), and
        // only while the file still names it (not after a new master took it over).
        let ours = self.pid == std::process::id()
            && std::fs::read_to_string(&self.path)
                .is_ok_and(|s| s.trim().parse::<u32>().ok() == Some(self.pid));
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("cannot remove pid file {}: {e}", self.path.display());
            }
        }
    }
}

/// Whether process `pid` exists (EPERM: it exists, owned by someone else).
fn is_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::Error::EPERM,
    }
}

/// Whether this process is the re-executed daemon of [`daemonize`].
pub fn is_daemon_child() -> bool {
    std::env::var_os(DAEMON_ENV).is_some()
}

/// `--daemonize`, in the foreground process: runs this same program again (same arguments,
/// with [`DAEMON_ENV`] set) in the background, and exits with 0 once it serves, or with its
/// exit code if it fails to start (its error is on this process's stderr).
///
/// Re-executing instead of `fork()` keeps the code safe (fork in a Rust program is `unsafe`:
/// only async-signal-safe calls are allowed in the child until it execs) and gives the daemon
/// a fresh process that never ran anything of the foreground's. The daemon calls `setsid()`
/// (it is not a process group leader, so this succeeds) to leave the terminal's session, reads
/// and binds everything itself, and reports readiness on its stdout, a pipe to this process;
/// then its stdin and stdout are `/dev/null`, and so is its stderr unless that is a regular
/// file (`2>>server.log` keeps the log). The working directory is kept, so relative paths
/// (sockets, pid file, certificates) mean the same in the daemon. Inherited sockets
/// (`PAGI_INHERIT_FDS`) pass through; systemd activation is refused (systemd supervises the
/// process itself: do not daemonize under it).
pub fn daemonize() -> ExitCode {
    let fail = |msg: String| {
        eprintln!("pagi-server: error: {msg}");
        ExitCode::FAILURE
    };
    if std::env::var_os("LISTEN_FDS").is_some() {
        return fail(
            "--daemonize with systemd socket activation (LISTEN_FDS): systemd runs the \
             service itself; drop --daemonize (Type=simple or Type=exec)"
                .into(),
        );
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("--daemonize: cannot find this program: {e}")),
    };
    let mut child = match Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("--daemonize: cannot start {}: {e}", exe.display())),
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() == READY {
        // The daemon carries on; it is not waited for (init adopts it when this exits).
        return ExitCode::SUCCESS;
    }
    match child.wait() {
        Ok(st) => match st.code() {
            Some(0) | None => fail(format!("the daemon stopped before it was ready ({st})")),
            Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        },
        Err(e) => fail(format!("cannot wait for the daemon: {e}")),
    }
}

/// In the daemon: leaves the foreground's session. Call first thing.
pub fn daemon_detach() -> Result<(), Error> {
    nix::unistd::setsid().map_err(|e| Error::with("--daemonize: setsid", e))?;
    Ok(())
}

/// In the daemon, once it serves: points stdin and stdout (and stderr unless it is a regular
/// file) at `/dev/null`, then tells the foreground process.
pub fn daemon_ready() {
    // Detached first, then the word goes out through a copy of the old stdout, closed at
    // once: when the foreground process returns, the daemon holds none of its descriptors.
    let _ = std::io::stdout().lock().flush();
    let saved = std::os::fd::AsFd::as_fd(&std::io::stdout())
        .try_clone_to_owned()
        .ok();
    detach_stdio();
    if let Some(fd) = saved {
        let _ = writeln!(std::fs::File::from(fd), "{READY}");
    }
}

/// Points stdin and stdout (and stderr unless it is a regular file) at `/dev/null`: what
/// [`daemon_ready`] does after telling the foreground process, and what a `--workers` worker of
/// a daemon does right after the fork (the foreground waits for the master's word only).
pub fn detach_stdio() {
    let null = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("--daemonize: cannot open /dev/null: {e}");
            return;
        }
    };
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    let stderr_is_file = std::io::stderr()
        .lock()
        .as_fd_metadata()
        .is_some_and(|m| m.is_file());
    if !stderr_is_file {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// The metadata of what a standard stream is (a file, a pipe, a terminal).
trait FdMetadata {
    fn as_fd_metadata(&self) -> Option<std::fs::Metadata>;
}

impl<T: std::os::fd::AsFd> FdMetadata for T {
    fn as_fd_metadata(&self) -> Option<std::fs::Metadata> {
        let fd = self.as_fd().try_clone_to_owned().ok()?;
        std::fs::File::from(fd).metadata().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umasks() {
        assert_eq!(parse_umask("027"), Ok(0o027));
        assert_eq!(parse_umask("0o077"), Ok(0o077));
        assert_eq!(parse_umask("0"), Ok(0));
        assert!(parse_umask("0999").is_err());
        assert!(parse_umask("1777").is_err());
        assert!(parse_umask("").is_err());
        assert!(parse_umask("u=rwx").is_err());
    }

    #[test]
    fn credentials() {
        assert_eq!(Credentials::resolve(None, None).unwrap(), None);
        let root = Credentials::resolve(Some("root"), None).unwrap().unwrap();
        assert_eq!(root.uid, Some(Uid::from_raw(0)));
        assert_eq!(root.gid, Gid::from_raw(0));
        assert_eq!(root.user_name.as_deref(), Some("root"));
        let g = Credentials::resolve(None, Some("0")).unwrap().unwrap();
        assert_eq!((g.uid, g.gid), (None, Gid::from_raw(0)));
        let e = Credentials::resolve(Some("no-such-user-here"), None).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = Credentials::resolve(None, Some("no-such-group-here")).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        let e = Credentials::resolve(Some("4000000000"), None).unwrap_err();
        assert!(e.to_string().contains("--group"), "{e}");
    }

    #[test]
    fn pid_file_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pid");
        // A stale pid (no such process) is replaced.
        std::fs::write(&path, "999999999\n").unwrap();
        let pf = PidFile::create(&path).unwrap();
        let me = std::process::id();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{me}\n"));
        // Removed on drop only while it still holds our pid.
        drop(pf);
        assert!(!path.exists());
        let pf = PidFile::create(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        drop(pf);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        // A live process other than the parent: refused (pid 1 always exists).
        let e = PidFile::create(&path).unwrap_err();
        assert!(e.to_string().contains("is running"), "{e}");
    }
}
