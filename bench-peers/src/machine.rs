//! What the benchmark runs on, peak memory, and keeping expected panics quiet.

use std::cell::Cell;
use std::panic;
use std::process::Command;

/// The machine, in one line: CPU model, cores, OS, compiler.
pub fn describe() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "rustc unknown".to_string(), |text| text.trim().to_string());
    format!(
        "{cpu}, {cores} cores available, {} {}, {rustc}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The 1-minute load average (`/proc/loadavg`), if readable: another job running beside the
/// benchmark shows here.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`) in KiB, if readable.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the installed panic hook so that panics on this thread inside [`quietly`] print nothing.
///
/// Install it after kdst's and shuttle's own hooks are in place (each installs one on its first
/// run): shuttle's hook prints the failing schedule for every panic, kdst's or not, and a failure
/// search panics by design hundreds of times.
pub fn install_quiet_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !QUIET.with(Cell::get) {
            previous(info);
        }
    }));
}

/// Runs `f` with panics on this thread silenced (see [`install_quiet_hook`]).
pub fn quietly<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|quiet| quiet.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|quiet| quiet.replace(true)));
    f()
}

/// The text of a panic payload.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
