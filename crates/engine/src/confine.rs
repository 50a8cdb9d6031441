//! Confinement of the `command` stage's programs with Linux Landlock: what a confined command
//! may write is its work directory and `/dev` (for `/dev/null`, terminals, `/dev/shm`), nothing
//! else, whatever user it runs as. Reading and executing stay unrestricted: a tool must find
//! its libraries, interpreters and inputs.
//!
//! Why Landlock: it needs no root, no setuid helper and no mount namespace, it applies to root
//! too (file permissions do not stop root from writing through an input's link into a store
//! object or a user's raw file), and it is inherited by everything the command starts. The
//! rules are path-based on the file as resolved, so a symlinked input still points at a
//! denied file. Available since Linux 5.13 (ABI 1); this machine's rights are probed at run
//! time ([`abi`]) and every write right the kernel knows is handled.
//!
//! Shape: the ruleset is built in the parent ([`Ruleset::for_work_dir`]: allocation, path
//! opening and error reporting happen there); the child only calls two syscalls between fork
//! and exec ([`Ruleset::restrict_current_process`]), which is what `pre_exec` allows.
//!
//! It is no full sandbox: reading anywhere, the network and signals to other processes of the
//! same user are not confined.
use sst1mflow_base::error::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const SYS_CREATE_RULESET: libc::c_long = 444;
const SYS_ADD_RULE: libc::c_long = 445;
const SYS_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

// Filesystem access rights (linux/landlock.h).
const WRITE_FILE: u64 = 1 << 1;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_BLOCK: u64 = 1 << 11;
const MAKE_SYM: u64 = 1 << 12;
/// ABI 2: linking or renaming a file into another directory.
const REFER: u64 = 1 << 13;
/// ABI 3: truncating a file.
const TRUNCATE: u64 = 1 << 14;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel, or None when it has none (or it is off).
pub fn abi() -> Option<u32> {
    // SAFETY: with a null attribute and size 0 this call only reports the ABI version.
    let v =
        unsafe { libc::syscall(SYS_CREATE_RULESET, std::ptr::null::<RulesetAttr>(), 0usize, CREATE_RULESET_VERSION) };
    (v > 0).then_some(v as u32)
}

/// Every write right this ABI knows.
fn write_rights(abi: u32) -> u64 {
    let mut rights = WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    rights
}

/// A ruleset ready to apply in a child process.
pub struct Ruleset {
    fd: OwnedFd,
    pub abi: u32,
}

impl Ruleset {
    /// Writes allowed beneath `work_dir` and `/dev` only. Fails, saying why, when the kernel has
    /// no Landlock: a command asked to run confined must not run unconfined.
    pub fn for_work_dir(work_dir: &Path) -> Result<Ruleset> {
        let abi = abi().ok_or_else(|| {
            Error::msg("confinement was asked for (\"confine\": true) but this kernel offers no Landlock (Linux 5.13 or later with Landlock enabled)")
        })?;
        let rights = write_rights(abi);
        let attr = RulesetAttr { handled_access_fs: rights };
        // SAFETY: `attr` is a valid ruleset attribute of the size given.
        let fd =
            unsafe { libc::syscall(SYS_CREATE_RULESET, &attr as *const RulesetAttr, size_of::<RulesetAttr>(), 0u32) };
        if fd < 0 {
            return Err(Error::io("cannot create a Landlock ruleset", std::io::Error::last_os_error()));
        }
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        let ruleset = Ruleset { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) }, abi };
        ruleset.allow_beneath(work_dir, rights)?;
        ruleset.allow_beneath(Path::new("/dev"), rights & !(MAKE_CHAR | MAKE_BLOCK))?;
        Ok(ruleset)
    }

    fn allow_beneath(&self, dir: &Path, rights: u64) -> Result<()> {
        let file = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY)
            .open(dir)
            .map_err(|e| Error::io(format!("cannot open {} for the Landlock rules", dir.display()), e))?;
        let rule = PathBeneathAttr { allowed_access: rights, parent_fd: file.as_raw_fd() };
        // SAFETY: `rule` is a valid path-beneath attribute; both descriptors are open.
        let status = unsafe {
            libc::syscall(SYS_ADD_RULE, self.fd.as_raw_fd(), RULE_PATH_BENEATH, &rule as *const PathBeneathAttr, 0u32)
        };
        if status != 0 {
            return Err(Error::io(
                format!("cannot add a Landlock rule for {}", dir.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Applies the ruleset to the calling process and everything it will start. Only
    /// syscalls: safe between fork and exec.
    pub fn restrict_current_process(&self) -> std::io::Result<()> {
        // SAFETY: plain syscalls on integers and a descriptor this ruleset owns.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(SYS_RESTRICT_SELF, self.fd.as_raw_fd(), 0u32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_child_writes_only_in_its_work_directory() {
        let Some(abi) = abi() else {
            println!("skipped: this kernel offers no Landlock");
            return;
        };
        let base = std::env::temp_dir().join(format!("sst1mflow-confine-{}", std::process::id()));
        let (work, outside) = (base.join("work"), base.join("outside"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), "kept\n").unwrap();
        let ruleset = Ruleset::for_work_dir(&work).unwrap();
        assert_eq!(ruleset.abi, abi);
        let script = format!(
            "echo in > {w}/inside; echo x >> {o}/victim; echo $? > {w}/append; touch {o}/new; echo $? > {w}/create; cat {o}/victim > /dev/null; echo $? > {w}/read",
            w = work.display(),
            o = outside.display()
        );
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &script]).stderr(std::process::Stdio::null());
        // SAFETY: the closure only makes syscalls.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || ruleset.restrict_current_process());
        }
        assert!(cmd.status().unwrap().success());
        let read = |f: &str| std::fs::read_to_string(work.join(f)).unwrap().trim().to_string();
        assert_eq!(read("inside"), "in");
        assert_ne!(read("append"), "0", "appending outside the work directory is denied");
        assert_ne!(read("create"), "0", "creating outside the work directory is denied");
        assert_eq!(read("read"), "0", "reading stays allowed");
        assert_eq!(std::fs::read_to_string(outside.join("victim")).unwrap(), "kept\n");
        assert!(!outside.join("new").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
