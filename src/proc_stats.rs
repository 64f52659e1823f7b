//! Process figures from /proc: CPU seconds and resident memory, which a cluster node reports as
//! its load and benchmarks report beside their baselines, and the open-files limit raised as far
//! as the hard limit allows (load generators).

/// User + system CPU seconds of a process (`pid` None: this process).
pub fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    cpu_seconds_of_stat(&text, hz)
}

/// User + system CPU seconds from the text of a `/proc/<pid>/stat` file, whose clock ticks
/// `hz` per second (pure; 0 when the text is not such a file).
fn cpu_seconds_of_stat(text: &str, hz: f64) -> f64 {
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// Resident set size in KiB (`pid` None: this process).
pub fn rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Raises RLIMIT_NOFILE to its hard limit; returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit are given a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsing, on a stat line captured from a process whose name holds a space and a
    /// parenthesis (utime 1234, stime 56 ticks). CPU time of the running test process is not
    /// asserted: at 10 ms ticks a short test may well have used none yet.
    #[test]
    fn cpu_seconds_are_read_from_a_stat_line() {
        let stat = "4242 (tokio-rt (w) 1) S 1 4242 4242 0 -1 4194560 2561 0 0 0 1234 56 0 0 \
                    20 0 9 0 812345 1056768000 9311 18446744073709551615 1 1 0 0 0 0 0 4096 \
                    17664 0 0 0 17 1 0 0 0 0 0";
        assert!((cpu_seconds_of_stat(stat, 100.0) - 12.90).abs() < 1e-9);
        assert_eq!(cpu_seconds_of_stat("not a stat file", 100.0), 0.0);
        assert_eq!(cpu_seconds_of_stat("1 (x) S", 100.0), 0.0);
    }

    /// Memory and limits are not timing: a running test process has resident pages, and the
    /// open-files limit can be raised to at least the usual default.
    #[test]
    fn figures_of_this_process_are_plausible() {
        assert!(rss_kib(None) > 100);
        assert!(raise_open_files_limit() >= 1024);
    }
}
