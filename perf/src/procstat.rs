//! What the harness reads about processes from `/proc`, and CPU pinning: CPU time
//! (utime + stime), read/write syscall counts, the allowed-CPU list, a monotonic
//! clock shared by every process on the machine, and `sched_setaffinity` for the
//! calling thread (processes it starts afterwards inherit the mask).

use std::io;

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock in every process, so times taken
/// in a subscriber process and in the writer can be subtracted.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User plus system CPU time of process `pid` (all its threads, live and exited), in
/// seconds; 0 when the process is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    total as f64 / per_second as f64
}

/// Read-type plus write-type syscalls of `pid` so far (`syscr + syscw` of
/// `/proc/<pid>/io`). Socket `send`/`recv` and io_uring operations are not in these
/// counters, so this is a lower bound on syscalls, comparable between runs only.
pub fn rw_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .filter_map(|l| {
            l.strip_prefix("syscr:")
                .or_else(|| l.strip_prefix("syscw:"))
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// The `Cpus_allowed_list` of `pid` (e.g. `"0"` or `"0-1"`), to show pinning took.
pub fn allowed_cpus(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map_or_else(String::new, |v| v.trim().to_string())
}

/// Parses a CPU list like `taskset -c` takes: `0`, `0,2`, `1-3`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}` in CPU list `{text}` is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(number(a)?..=number(b)?),
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("CPU list `{text}` names no CPU"));
    }
    Ok(cpus)
}

/// Restricts the calling thread (and every thread or process it starts afterwards)
/// to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET stays in bounds
    // because of the check; sched_setaffinity reads `size_of` bytes of `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CPU {cpu} is out of range"),
                ));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_taskset() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_cpu_list("1-3").unwrap(), vec![1, 2, 3]);
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn this_process_has_cpu_time_and_a_cpu_list() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {}
        assert!(cpu_seconds(me) > 0.0);
        assert!(!allowed_cpus(me).is_empty());
        assert!(mono_ns() > 0);
    }
}
