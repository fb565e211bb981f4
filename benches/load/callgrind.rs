//! `--instructions`: runs each process under valgrind's callgrind and counts the user-space
//! instructions it executes in the measured window, per 2xx. Wall-clock CPU on a shared 2-core VM
//! varies ±20 % from run to run; instruction counts repeat to a fraction of a percent, so this is
//! the figure to compare two builds by. It leaves out the kernel's share (socket I/O, epoll,
//! futex), which the CPU-time columns of a normal run include.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a wrapped process's counts go, and how to switch collection on and off.
pub struct Callgrind {
    out: PathBuf,
}

impl Callgrind {
    /// Wraps `cmd` (program, arguments, environment) in callgrind with instrumentation off, so
    /// that start-up and warm-up are neither counted nor slowed down. Threads are scheduled fairly: a request often hops
    /// between the HTTP worker, the runtime and a client library's own thread.
    pub fn wrap(cmd: &Command, out: &Path) -> (Command, Self) {
        let mut v = Command::new("valgrind");
        v.args(["--tool=callgrind", "--instr-atstart=no", "--fair-sched=yes", "--quiet"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => v.env(key, value),
                None => v.env_remove(key),
            };
        }
        (v, Self { out: out.to_owned() })
    }

    /// Switches instrumentation, and with it counting, of process `pid` on or off (through vgdb).
    pub fn collect(pid: u32, on: bool) {
        let status = Command::new("callgrind_control")
            .args(["-i", if on { "on" } else { "off" }, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("load: warning: callgrind_control -i {} {pid} failed", if on { "on" } else { "off" });
        }
    }

    /// The instructions collected, from the profile callgrind writes when the process exits.
    pub fn total(&self) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.out).map_err(|e| format!("{}: {e}", self.out.display()))?;
        // `totals:`, not `summary:`: with instrumentation off at start the summary stays 0.
        text.lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("{}: no totals line", self.out.display()))
    }
}

/// Whether valgrind and callgrind_control are on PATH.
pub fn available() -> Result<(), String> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if found.is_err() {
            return Err(format!("--instructions needs `{tool}` (Debian package valgrind)"));
        }
    }
    Ok(())
}
