//! Process-wide memory totals from `smaps_rollup`, or from `status` where the kernel has no
//! rollup (before Linux 4.14) or it cannot be read.

use serde::Serialize;

/// Resident totals of the process, in bytes. PSS is absent when only `status` was readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemTotals {
    pub rss: u64,
    pub pss: Option<u64>,
    pub swap: u64,
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
}

/// Which file the totals came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalsSource {
    Smaps,
    SmapsRollup,
    Status,
}

fn kib_field(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    let mut parts = rest.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some((key.trim(), value.saturating_mul(1024))),
        Some(_) => None,
    }
}

/// Parses `/proc/PID/smaps_rollup`. Returns `None` when the text has no `Rss:` line.
pub fn parse_smaps_rollup(text: &str) -> Option<MemTotals> {
    let mut t = MemTotals::default();
    let mut seen_rss = false;
    let mut anon = None;
    for line in text.lines() {
        let Some((key, v)) = kib_field(line) else { continue };
        match key {
            "Rss" => {
                t.rss = v;
                seen_rss = true;
            }
            "Pss" => t.pss = Some(v),
            "Swap" => t.swap = v,
            "Anonymous" => anon = Some(v),
            _ => {}
        }
    }
    if !seen_rss {
        return None;
    }
    // The rollup has no file-backed total: what is resident and not anonymous is file-backed or
    // shared memory. Shmem cannot be separated here without full smaps; it is folded into `file`.
    t.anon = anon.unwrap_or(0).min(t.rss);
    t.file = t.rss - t.anon;
    Some(t)
}

/// Parses `/proc/PID/status` (VmRSS, RssAnon, RssFile, RssShmem, VmSwap).
pub fn parse_status(text: &str) -> Option<MemTotals> {
    let mut t = MemTotals::default();
    let mut seen_rss = false;
    for line in text.lines() {
        let Some((key, v)) = kib_field(line) else { continue };
        match key {
            "VmRSS" => {
                t.rss = v;
                seen_rss = true;
            }
            "RssAnon" => t.anon = v,
            "RssFile" => t.file = v,
            "RssShmem" => t.shmem = v,
            "VmSwap" => t.swap = v,
            _ => {}
        }
    }
    seen_rss.then_some(t)
}

/// Thread count from `status`, if present.
pub fn status_threads(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str = "\
55d0c6a5c000-7ffd4a3f7000 ---p 00000000 00:00 0                          [rollup]
Rss:               45396 kB
Pss:               41234 kB
Pss_Dirty:         30011 kB
Pss_Anon:          29876 kB
Pss_File:          11358 kB
Pss_Shmem:             0 kB
Shared_Clean:       4932 kB
Shared_Dirty:          0 kB
Private_Clean:     10412 kB
Private_Dirty:     30052 kB
Referenced:        45396 kB
Anonymous:         29876 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                 12 kB
SwapPss:              12 kB
Locked:                0 kB
";

    const STATUS: &str = "\
Name:\tjava
VmPeak:\t 3874320 kB
VmRSS:\t   45396 kB
RssAnon:\t   29876 kB
RssFile:\t   15520 kB
RssShmem:\t       0 kB
VmSwap:\t      12 kB
Threads:\t19
";

    #[test]
    fn rollup_gives_rss_pss_anon_and_file() {
        let t = parse_smaps_rollup(ROLLUP).expect("rollup parses");
        assert_eq!(t.rss, 45396 * 1024);
        assert_eq!(t.pss, Some(41234 * 1024));
        assert_eq!(t.anon, 29876 * 1024);
        assert_eq!(t.file, (45396 - 29876) * 1024);
        assert_eq!(t.swap, 12 * 1024);
    }

    #[test]
    fn status_gives_the_same_totals_without_pss() {
        let t = parse_status(STATUS).expect("status parses");
        assert_eq!(t.rss, 45396 * 1024);
        assert_eq!(t.pss, None);
        assert_eq!(t.anon, 29876 * 1024);
        assert_eq!(t.file, 15520 * 1024);
        assert_eq!(status_threads(STATUS), Some(19));
    }

    #[test]
    fn text_without_rss_is_rejected() {
        assert_eq!(parse_smaps_rollup("garbage\nPss: x kB\n"), None);
        assert_eq!(parse_status(""), None);
    }
}
