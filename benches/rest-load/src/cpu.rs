//! CPU time: this process's (getrusage), another process's and its
//! threads' (`/proc/<pid>/stat`, `/proc/<pid>/task/*/stat`, clock ticks of
//! 1/100 s on Linux).

use std::collections::BTreeMap;

/// User + system CPU seconds of this process (all its threads).
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given; a zeroed
    // `rusage` is a valid value of that plain C struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return f64::NAN;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// (command name, utime + stime in seconds) of a `stat` file's text.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    // Fields after the command name start at field 3 (state).
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / 100.0))
}

/// CPU seconds of process `pid` (its live and exited threads).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, s)| s)
}

/// A process's CPU seconds, in total and per live thread (by thread id,
/// with its name).
#[derive(Clone, Debug, Default)]
pub struct ProcessCpu {
    pub total: f64,
    pub threads: BTreeMap<u32, (String, f64)>,
}

impl ProcessCpu {
    /// Reads `/proc/<pid>`; `None` when the process is gone.
    pub fn read(pid: u32) -> Option<ProcessCpu> {
        let total = process_cpu_seconds(pid)?;
        let mut threads = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for entry in dir.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if let Some(parsed) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s))
                {
                    threads.insert(tid, parsed);
                }
            }
        }
        Some(ProcessCpu { total, threads })
    }

    /// CPU seconds from `before` to `self`, per thread-name group (a name
    /// with its trailing digits and dashes dropped: `kyro-embed-1` →
    /// `kyro-embed`), and `other` for what threads that exited meanwhile
    /// used. Threads new since `before` count from zero.
    pub fn since(&self, before: &ProcessCpu) -> (f64, BTreeMap<String, f64>) {
        let mut groups: BTreeMap<String, f64> = BTreeMap::new();
        for (tid, (name, now)) in &self.threads {
            let then = before.threads.get(tid).map_or(0.0, |(_, s)| *s);
            *groups.entry(group_name(name)).or_default() += now - then;
        }
        let total = self.total - before.total;
        let named: f64 = groups.values().sum();
        if total - named > 0.005 {
            groups.insert("other (exited threads)".to_owned(), total - named);
        }
        (total, groups)
    }
}

fn group_name(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat =
            "1234 (kyro gw (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(stat), Some(("kyro gw (x)".to_owned(), 3.0)));
        assert_eq!(group_name("kyro-embed-12"), "kyro-embed");
        assert_eq!(group_name("kyro-gateway"), "kyro-gateway");
    }

    #[test]
    fn own_cpu_grows() {
        let before = own_cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_seconds() >= before);
        assert!(ProcessCpu::read(std::process::id()).is_some());
    }
}
