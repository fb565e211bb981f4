//! The processes under test: building, spawning and driving them through a measured run, reading
//! their CPU and memory from /proc, and stopping them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::callgrind::Callgrind;
use crate::client::{self, HttpWorker};
use crate::webhook::RequestBuilder;
use crate::Ctx;

/// Builds the release `regbridge` binary with the cargo that runs us and returns its path.
pub fn build_regbridge() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    eprintln!("load: cargo build --release --bin regbridge");
    let mut command = Command::new(&cargo);
    // `cargo bench` runs us with this package's CARGO_PKG_* / CARGO_MANIFEST_* set. Build scripts
    // that watch those (`rerun-if-env-changed`; ring does) would then rerun in the nested build
    // and rebuild half the tree, and the next plain cargo command would rebuild it back.
    for (key, _) in std::env::vars_os() {
        let watched = key.to_str().is_some_and(|k| {
            ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE"]
                .iter()
                .any(|p| k.starts_with(p))
        });
        if watched {
            command.env_remove(key);
        }
    }
    let status = command
        .args(["build", "--release", "--bin", "regbridge", "--manifest-path"])
        .arg(&manifest)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("running {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release --bin regbridge failed ({status})"));
    }
    // We are target/<dir>/deps/load-<hash>, next to target/<dir>/regbridge; this also follows
    // CARGO_TARGET_DIR. The manifest's target/release is the fallback.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("regbridge")))
        .filter(|p| p.is_file());
    let bin =
        beside.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/regbridge"));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built, but {} is missing", bin.display()))
    }
}

/// A loopback port nobody listens on right now. The child binds it a moment later; another
/// process taking it in between is possible but not on this quiet machine, and would show as a
/// failed start rather than wrong numbers.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Clock ticks per second for /proc/<pid>/stat times; `getconf CLK_TCK`, else Linux's usual 100.
pub fn clk_tck() -> (u64, bool) {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    match out.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()) {
        Some(t) => (t, true),
        None => (100, false),
    }
}

/// utime + stime, in clock ticks, of process `pid` (all its threads, including exited ones).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; here `state` (field 3) is index 0.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// What the measured process has used so far, sampled as the window opens and closes.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime in clock ticks ([`cpu_ticks`]).
    pub ticks: Option<u64>,
    /// Context switches of its live threads ([`context_switches`]).
    pub switches: Option<u64>,
}

pub fn usage(pid: u32) -> Usage {
    Usage { ticks: cpu_ticks(pid), switches: context_switches(pid) }
}

/// Voluntary + involuntary context switches summed over the live threads of `pid`. Each one is a
/// thread that blocked (waiting for a hand-off) or was preempted, so per webhook they count the
/// wake-ups the CPU figure pays for, and unlike time they hardly vary with a noisy neighbour.
/// Threads that exited within the window take their counts with them (a blocking-pool thread,
/// say); the long-lived workers, client threads and writers do not exit.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // exited since the listing
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// A `Vm*` line of /proc/<pid>/status, in KiB.
pub fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A child process under test, killed on drop so a failing run leaves nothing behind.
pub struct Proc {
    child: Child,
    pub pid: u32,
    pub spawned: Instant,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout/stderr going to `log` and the spawn instant recorded.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Result<Self, String> {
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let spawned = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("spawning {:?}: {e}", cmd.get_program()))?;
        Ok(Self { pid: child.id(), child, spawned, log })
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn rss_kib(&self) -> Option<u64> {
        vm_kib(self.pid, "VmRSS")
    }

    /// Peak resident set since the process started (the kernel's high-water mark).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        vm_kib(self.pid, "VmHWM")
    }

    /// The last lines of its output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then up to `grace` for an orderly exit (regbridge drains and flushes), then SIGKILL.
    /// Returns whether it exited by itself.
    pub fn stop(mut self, grace: Duration) -> bool {
        // No libc crate here: kill(1) sends the signal.
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false // Drop kills it.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The regbridge binary for a scenario of its own: none of the caller's `REGBRIDGE_*` settings,
/// listening on `port`, rate limit off, its outbox and working directory in the scratch
/// directory; `env` adds the scenario's settings.
pub fn regbridge(ctx: &Ctx, port: u16, label: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(&ctx.binary);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGBRIDGE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(ctx.dir.path())
        .env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_RATE_LIMIT", "0")
        .env("REGBRIDGE_SHUTDOWN_TIMEOUT", "5s")
        .env("REGBRIDGE_OUTBOX_DIR", ctx.dir.path().join(format!("outbox-{label}")))
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    cmd
}

/// Spawns `cmd` (logging to `<label>.log`) and waits until it answers `/readyz` on `port`.
pub async fn start_ready(ctx: &Ctx, cmd: Command, port: u16, label: &str) -> Result<Proc, String> {
    let mut proc = Proc::spawn(cmd, ctx.dir.path().join(format!("{label}.log")))?;
    let since = proc.spawned;
    client::wait_ready(port, since, Duration::from_secs(30), || proc.alive())
        .await
        .map_err(|e| format!("{e}; its output:\n{}", proc.log_tail()))?;
    Ok(proc)
}

/// Starts `cmd` on `port`, waits for `/readyz`, drives it with `conns` connections of signed
/// webhooks, and stops it. `label` names its log file and prefixes its event ids.
pub async fn drive_process(
    ctx: &Ctx,
    mut cmd: Command,
    port: u16,
    conns: usize,
    label: &str,
) -> Result<(client::Run, Footprint), String> {
    // Inherited REGBRIDGE_* settings would change what is measured.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGBRIDGE_") {
            cmd.env_remove(&k);
        }
    }
    let (mut cmd, callgrind) = match &ctx.callgrind {
        Some(dir) => {
            let (wrapped, cg) = Callgrind::wrap(&cmd, &dir.join(format!("{label}.callgrind")));
            (wrapped, Some(cg))
        }
        None => (cmd, None),
    };
    // Under valgrind everything runs ~50× slower, start-up and an orderly shutdown included.
    let slow = if callgrind.is_some() { 6 } else { 1 };
    cmd.current_dir(ctx.dir.path());
    let mut proc = Proc::spawn(cmd, ctx.dir.path().join(format!("{label}.log")))?;
    let since = proc.spawned;
    let ready = client::wait_ready(port, since, Duration::from_secs(30 * slow), || proc.alive())
        .await
        .map_err(|e| format!("{e}; its output:\n{}", proc.log_tail()))?;
    let idle = proc.rss_kib();
    let builder = RequestBuilder::new(port, ctx.body.clone());
    let workers =
        (0..conns).map(|w| HttpWorker::new(port, builder.clone(), format!("{label}-{w}"))).collect();
    let pid = proc.pid;
    // Called as the window opens and once its last request has been answered.
    let window = std::cell::Cell::new(false);
    let sample = || {
        if callgrind.is_some() {
            window.set(!window.get());
            Callgrind::collect(pid, window.get());
        }
        usage(pid)
    };
    // Only regbridge is attacked (the bare server is a ceiling, not a defender).
    let attack =
        (ctx.attack > 0 && !label.contains("-bare-")).then(|| crate::attack::start(port, ctx.attack));
    let mut run = client::drive(&ctx.phases, workers, sample).await;
    if let Some(a) = attack {
        eprintln!(
            "load: {label}: {} stalled uploads beside it; they were answered {} times",
            ctx.attack,
            a.answered.get()
        );
    }
    let foot = Footprint { ready: Some(ready), idle_rss_kib: idle, peak_rss_kib: proc.peak_rss_kib() };
    let grace = Duration::from_secs(10 * slow);
    if !proc.stop(grace) {
        eprintln!("load: warning: {label} did not exit within {grace:?} of SIGTERM; killed");
    }
    if let Some(cg) = callgrind {
        run.instructions = Some(cg.total()?);
    }
    Ok((run, foot))
}

/// Memory and start-up figures of one process run.
#[derive(Clone, Copy, Default)]
pub struct Footprint {
    pub ready: Option<Duration>,
    pub idle_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}
