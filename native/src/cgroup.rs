//! The container's memory limit and usage, from the memory cgroup of this process: cgroup v2
//! (`memory.max`, `memory.current`, `memory.high`, `memory.events`, `memory.stat`) or v1
//! (`memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.oom_control`, `memory.failcnt`,
//! `memory.stat`).
//!
//! Finding the directory follows what the JDK's own container support does: the process's line
//! in `/proc/self/cgroup` (`0::/path` for v2, `N:memory:/path` or `N:...,memory,...:/path` for
//! v1) names a path inside the hierarchy; `/proc/self/mountinfo` says where that hierarchy is
//! mounted and which of its directories the mount shows (its root field, not `/` inside a
//! container without a cgroup namespace). When the computed directory does not exist (a cgroup
//! namespace whose path the kernel printed relative to another root), the mount point itself is
//! the process's cgroup. Where both versions are mounted (the "hybrid" layout), the one that has
//! the memory controller wins: v1 when a v1 hierarchy carries `memory`.
//!
//! The limit is the effective one: the smallest `memory.max` from the process's cgroup up to the
//! mount (v2), or `hierarchical_memory_limit` from `memory.stat` when present (v1). A limit of
//! `max` (v2) or a v1 value near `i64::MAX` rounded to a page means no limit.
//!
//! Parsers take the text; [`CgroupFs`] does the reading from a root directory that tests move.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A v1 limit at or above this is "no limit": the kernel prints `PAGE_COUNTER_MAX` pages, which
/// is `i64::MAX` rounded down to a page (9223372036854771712 with 4 KiB pages), and what is
/// written as -1 reads back the same. Anything above 2^62 bytes cannot be a real limit.
pub const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The memory cgroup as read at one sample. Sizes in bytes; `None` where the file was absent or
/// the version has no such value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupState {
    pub version: Option<CgroupVersion>,
    /// The process's cgroup path, as `/proc/self/cgroup` names it.
    pub path: String,
    /// Effective hard limit; `None` means no limit.
    pub limit: Option<u64>,
    /// v2 `memory.high` (throttling starts there); `None` means none or v1.
    pub high: Option<u64>,
    /// Charged memory now: `memory.current` or `memory.usage_in_bytes`. Includes page cache.
    pub usage: Option<u64>,
    /// Highest usage seen: v2 `memory.peak` (Linux 5.19+), v1 `memory.max_usage_in_bytes`.
    pub peak: Option<u64>,
    /// Anonymous memory charged to the cgroup (`anon` v2, `total_rss`/`rss` v1).
    pub anon: Option<u64>,
    /// Page cache charged to the cgroup (`file` v2, `total_cache`/`cache` v1).
    pub file: Option<u64>,
    /// Page cache the kernel would drop first (`inactive_file`).
    pub inactive_file: Option<u64>,
    /// Processes the OOM killer killed in this cgroup (`oom_kill` of `memory.events` or
    /// `memory.oom_control`).
    pub oom_kills: Option<u64>,
    /// v2 `memory.events` `oom`: times the limit was hit and reclaim failed. v1 has `failcnt`.
    pub oom_events: Option<u64>,
    /// v2 `memory.events` `high`: times usage went over `memory.high`.
    pub high_events: Option<u64>,
    /// v1 `memory.failcnt`: times an allocation hit the limit.
    pub failcnt: Option<u64>,
}

impl CgroupState {
    /// Usage less the inactive page cache the kernel reclaims before it kills anything (the
    /// "working set" container tools show); the usage itself when that is unknown.
    pub fn working_set(&self) -> Option<u64> {
        let usage = self.usage?;
        Some(usage.saturating_sub(self.inactive_file.unwrap_or(0)))
    }

    /// Bytes left before the hard limit, from the working set; `None` without a limit.
    pub fn headroom(&self) -> Option<u64> {
        Some(self.limit?.saturating_sub(self.working_set()?))
    }
}

/// Seconds until `current` reaches `limit` growing at `rate_per_hour` bytes an hour. `Some(0)`
/// when it already has; `None` when it does not grow (or the rate is not a number).
pub fn time_to_limit(current: u64, limit: u64, rate_per_hour: f64) -> Option<u64> {
    if current >= limit {
        return Some(0);
    }
    if !rate_per_hour.is_finite() || rate_per_hour <= 0.0 {
        return None;
    }
    let secs = (limit - current) as f64 / rate_per_hour * 3600.0;
    // Far-off answers saturate; `as` saturates on overflow too, this keeps it explicit.
    Some(if secs >= u64::MAX as f64 { u64::MAX } else { secs.ceil() as u64 })
}

/// One line of `/proc/self/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupLine {
    pub hierarchy: u32,
    /// Empty for the v2 line (`0::/path`); `name=systemd` style entries are kept as printed.
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parses `/proc/self/cgroup`. Lines that do not have three fields are skipped.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupLine> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let hierarchy = f.next()?.trim().parse().ok()?;
            let controllers = f.next()?.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect();
            let path = f.next()?.trim().to_string();
            Some(ProcCgroupLine { hierarchy, controllers, path })
        })
        .collect()
}

/// A cgroup file system in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: CgroupVersion,
    /// The directory of the hierarchy the mount shows (`/` unless bind-mounted from inside).
    pub root: String,
    pub mount_point: String,
    /// v1: the controllers from the super options (`rw,memory` -> `memory`); empty for v2.
    pub controllers: Vec<String>,
}

/// Parses the cgroup and cgroup2 mounts of `/proc/self/mountinfo`:
/// `36 35 0:32 /root /mount rw,relatime shared:1 - cgroup cgroup rw,memory`.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split_whitespace().collect();
            let mut right = right.split_whitespace();
            let fstype = right.next()?;
            let _source = right.next()?;
            let super_opts = right.next().unwrap_or("");
            let version = match fstype {
                "cgroup2" => CgroupVersion::V2,
                "cgroup" => CgroupVersion::V1,
                _ => return None,
            };
            let controllers = match version {
                CgroupVersion::V1 => super_opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(str::to_string)
                    .collect(),
                CgroupVersion::V2 => Vec::new(),
            };
            Some(CgroupMount {
                version,
                root: unescape_mountinfo(left.get(3)?),
                mount_point: unescape_mountinfo(left.get(4)?),
                controllers,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape_mountinfo(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_error(what: &'static str, text: &str) -> Error {
    Error::Parse { what, detail: format!("not a number: {:?}", text.trim()) }
}

/// A v2 limit file (`memory.max`, `memory.high`, `memory.swap.max`): `max` is no limit.
pub fn parse_v2_limit(text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| parse_error("cgroup v2 limit", text))
}

/// A v1 limit file (`memory.limit_in_bytes`): a value at or above [`V1_UNLIMITED_THRESHOLD`]
/// (or -1, which some kernels print) is no limit.
pub fn parse_v1_limit(text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "-1" {
        return Ok(None);
    }
    let v: u64 = t.parse().map_err(|_| parse_error("cgroup v1 limit", text))?;
    Ok((v < V1_UNLIMITED_THRESHOLD).then_some(v))
}

/// A file holding one number (`memory.current`, `memory.usage_in_bytes`, `memory.failcnt`).
pub fn parse_counter(text: &str) -> Result<u64> {
    text.trim().parse().map_err(|_| parse_error("cgroup counter", text))
}

/// A flat keyed file: `key value` per line (`memory.stat`, `memory.events`,
/// `memory.oom_control`). Lines whose value is not a number are skipped.
pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let k = f.next()?;
            let v = f.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// Where the memory controller of this process is, once located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroupDir {
    pub version: CgroupVersion,
    /// The process's cgroup path as `/proc/self/cgroup` names it.
    pub path: String,
    /// The directory holding its `memory.*` files.
    pub dir: PathBuf,
    /// The mount point: the top of the walk for the v2 effective limit.
    pub mount_point: PathBuf,
}

/// Reads cgroup files under a root directory that stands for `/` (tests point it at a tree of
/// captured files).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
}

impl Default for CgroupFs {
    fn default() -> Self {
        CgroupFs { root: PathBuf::from("/") }
    }
}

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CgroupFs { root: root.into() }
    }

    /// An absolute path of the real system, under the root.
    fn under_root(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn read(&self, p: &Path) -> Result<String> {
        crate::proc_fs::read_string_capped(p, crate::proc_fs::SMALL_FILE_CAP)
    }

    fn read_opt(&self, p: &Path) -> Result<Option<String>> {
        match crate::proc_fs::read_string_capped(p, crate::proc_fs::SMALL_FILE_CAP) {
            Ok(s) => Ok(Some(s)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Finds the directory of this process's memory cgroup. `Ok(None)` when the process is in
    /// no memory cgroup this root shows (no memory controller mounted, or not Linux).
    pub fn locate(&self) -> Result<Option<MemoryCgroupDir>> {
        let Some(cgroup_text) = self.read_opt(&self.under_root("/proc/self/cgroup"))? else {
            return Ok(None);
        };
        let lines = parse_proc_cgroup(&cgroup_text);
        let mounts = match self.read_opt(&self.under_root("/proc/self/mountinfo"))? {
            Some(t) => parse_mountinfo(&t),
            None => Vec::new(),
        };

        // v1 first: in a hybrid layout the memory controller sits in the v1 hierarchy and the v2
        // one has no memory files.
        if let Some(line) = lines.iter().find(|l| l.controllers.iter().any(|c| c == "memory")) {
            let mount = mounts
                .iter()
                .find(|m| m.version == CgroupVersion::V1 && m.controllers.iter().any(|c| c == "memory"));
            let (mount_point, mount_root) = match mount {
                Some(m) => (m.mount_point.clone(), m.root.clone()),
                None => ("/sys/fs/cgroup/memory".to_string(), "/".to_string()),
            };
            let mp = self.under_root(&mount_point);
            if let Some(dir) = resolve_dir(&mp, &mount_root, &line.path, "memory.usage_in_bytes") {
                return Ok(Some(MemoryCgroupDir {
                    version: CgroupVersion::V1,
                    path: line.path.clone(),
                    dir,
                    mount_point: mp,
                }));
            }
        }
        if let Some(line) = lines.iter().find(|l| l.hierarchy == 0 && l.controllers.is_empty()) {
            let candidates: Vec<(String, String)> = {
                let v2: Vec<_> = mounts
                    .iter()
                    .filter(|m| m.version == CgroupVersion::V2)
                    .map(|m| (m.mount_point.clone(), m.root.clone()))
                    .collect();
                if v2.is_empty() {
                    vec![
                        ("/sys/fs/cgroup".to_string(), "/".to_string()),
                        ("/sys/fs/cgroup/unified".to_string(), "/".to_string()),
                    ]
                } else {
                    v2
                }
            };
            for (mount_point, mount_root) in candidates {
                let mp = self.under_root(&mount_point);
                if let Some(dir) = resolve_dir(&mp, &mount_root, &line.path, "memory.current") {
                    return Ok(Some(MemoryCgroupDir {
                        version: CgroupVersion::V2,
                        path: line.path.clone(),
                        dir,
                        mount_point: mp,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Reads the memory cgroup of this process. `Ok(None)` when there is none (see
    /// [`Self::locate`]); errors name the file that could not be read or parsed.
    pub fn read_state(&self) -> Result<Option<CgroupState>> {
        let Some(loc) = self.locate()? else { return Ok(None) };
        let state = match loc.version {
            CgroupVersion::V2 => self.read_v2(&loc)?,
            CgroupVersion::V1 => self.read_v1(&loc)?,
        };
        Ok(Some(state))
    }

    fn file_opt<T>(&self, dir: &Path, name: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<T>> {
        let p = dir.join(name);
        match self.read_opt(&p)? {
            Some(text) => parse(&text).map(Some).map_err(|e| with_file(e, &p)),
            None => Ok(None),
        }
    }

    fn read_v2(&self, loc: &MemoryCgroupDir) -> Result<CgroupState> {
        let usage_path = loc.dir.join("memory.current");
        let usage = parse_counter(&self.read(&usage_path)?).map_err(|e| with_file(e, &usage_path))?;
        // Effective limit: the smallest `memory.max` on the way up to the mount point. The root
        // cgroup has no memory.max; a missing file is no limit at that level.
        let mut limit: Option<u64> = None;
        let mut high: Option<u64> = None;
        let mut dir = loc.dir.clone();
        loop {
            let max = self.file_opt(&dir, "memory.max", parse_v2_limit)?.flatten();
            limit = min_opt(limit, max);
            let h = self.file_opt(&dir, "memory.high", parse_v2_limit)?.flatten();
            high = min_opt(high, h);
            if dir == loc.mount_point || !dir.starts_with(&loc.mount_point) {
                break;
            }
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => break,
            }
        }
        let events = self.file_opt(&loc.dir, "memory.events", |t| Ok(parse_keyed(t)))?.unwrap_or_default();
        let stat = self.file_opt(&loc.dir, "memory.stat", |t| Ok(parse_keyed(t)))?.unwrap_or_default();
        Ok(CgroupState {
            version: Some(CgroupVersion::V2),
            path: loc.path.clone(),
            limit,
            high,
            usage: Some(usage),
            peak: self.file_opt(&loc.dir, "memory.peak", parse_counter)?,
            anon: stat.get("anon").copied(),
            file: stat.get("file").copied(),
            inactive_file: stat.get("inactive_file").copied(),
            oom_kills: events.get("oom_kill").copied(),
            oom_events: events.get("oom").copied(),
            high_events: events.get("high").copied(),
            failcnt: None,
        })
    }

    fn read_v1(&self, loc: &MemoryCgroupDir) -> Result<CgroupState> {
        let usage_path = loc.dir.join("memory.usage_in_bytes");
        let usage = parse_counter(&self.read(&usage_path)?).map_err(|e| with_file(e, &usage_path))?;
        let own_limit = self.file_opt(&loc.dir, "memory.limit_in_bytes", parse_v1_limit)?.flatten();
        let stat = self.file_opt(&loc.dir, "memory.stat", |t| Ok(parse_keyed(t)))?.unwrap_or_default();
        let hierarchical = stat.get("hierarchical_memory_limit").copied().filter(|v| *v < V1_UNLIMITED_THRESHOLD);
        let oom = self.file_opt(&loc.dir, "memory.oom_control", |t| Ok(parse_keyed(t)))?.unwrap_or_default();
        // Without hierarchy the `total_*` keys equal the plain ones; prefer them when present.
        let stat_key = |k: &str| stat.get(&format!("total_{k}")).or_else(|| stat.get(k)).copied();
        Ok(CgroupState {
            version: Some(CgroupVersion::V1),
            path: loc.path.clone(),
            limit: min_opt(own_limit, hierarchical),
            high: None,
            usage: Some(usage),
            peak: self.file_opt(&loc.dir, "memory.max_usage_in_bytes", parse_counter)?,
            anon: stat_key("rss"),
            file: stat_key("cache"),
            inactive_file: stat_key("inactive_file"),
            oom_kills: oom.get("oom_kill").copied(),
            oom_events: None,
            high_events: None,
            failcnt: self.file_opt(&loc.dir, "memory.failcnt", parse_counter)?,
        })
    }
}

/// The directory for `path` under a mount of hierarchy directory `mount_root`, if it holds
/// `probe`; else the mount point itself if that holds it (cgroup namespaces, or a container
/// that mounts its own cgroup at the mount point).
fn resolve_dir(mount_point: &Path, mount_root: &str, path: &str, probe: &str) -> Option<PathBuf> {
    let rel = if mount_root == "/" {
        Some(path)
    } else {
        path.strip_prefix(mount_root).filter(|r| r.is_empty() || r.starts_with('/'))
    };
    if let Some(rel) = rel {
        let dir = mount_point.join(rel.trim_start_matches('/'));
        if dir.join(probe).is_file() {
            return Some(dir);
        }
    }
    mount_point.join(probe).is_file().then(|| mount_point.to_path_buf())
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Puts the file name into a parse error, so a bad value says where it came from.
fn with_file(e: Error, p: &Path) -> Error {
    match e {
        Error::Parse { what, detail } => Error::Parse { what, detail: format!("{}: {detail}", p.display()) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on this project's build machine (hybrid layout: v1 memory, v2 without
    // controllers), Linux 6.18.
    const HYBRID_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/d5fda51ceafa67dd8bedfa8b0734c468
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_STAT: &str = "\
cache 1777664
rss 1720320
rss_huge 0
shmem 0
mapped_file 0
dirty 1523712
writeback 0
swap 0
pgpgin 16540
pgpgout 15848
pgfault 39804
pgmajfault 2
inactive_anon 1613824
active_anon 12288
inactive_file 1404928
active_file 372736
unevictable 0
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 1777664
total_rss 1720320
total_rss_huge 0
total_shmem 0
total_inactive_anon 1613824
total_active_anon 12288
total_inactive_file 1404928
total_active_file 372736
total_unevictable 0
";
    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";

    // A container on cgroup v2 with a cgroup namespace (the path is `/`, the mount is the
    // container's cgroup). This machine has no v2 memory controller to capture from: the text
    // follows the kernel's format (Documentation/admin-guide/cgroup-v2.rst, Linux 6.x keys),
    // with a 512 MiB limit and one OOM kill.
    const V2_PROC_CGROUP: &str = "0::/\n";
    const V2_MOUNTINFO: &str = "\
1338 1329 0:29 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
";
    const V2_EVENTS: &str = "low 0\nhigh 0\nmax 1835\noom 3\noom_kill 1\noom_group_kill 0\n";
    const V2_STAT: &str = "\
anon 398458880
file 67096576
kernel 9125888
kernel_stack 1064960
pagetables 2367488
sec_pagetables 0
percpu 1440
sock 0
vmalloc 24576
shmem 0
file_mapped 31244288
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
inactive_anon 398245888
active_anon 20480
inactive_file 40951808
active_file 26144768
unevictable 0
slab_reclaimable 3371968
slab_unreclaimable 1413056
slab 4785024
";

    struct TempTree(PathBuf);

    impl TempTree {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("od-cgroup-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("mkdir temp root");
            TempTree(p)
        }

        fn put(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn parses_proc_cgroup_lines() {
        let l = parse_proc_cgroup(HYBRID_PROC_CGROUP);
        assert_eq!(l.len(), 10);
        let mem = l.iter().find(|l| l.controllers == ["memory"]).expect("memory line");
        assert_eq!(mem.hierarchy, 4);
        assert_eq!(mem.path, "/process_api/d5fda51ceafa67dd8bedfa8b0734c468");
        let v2 = l.last().expect("v2 line");
        assert_eq!((v2.hierarchy, v2.controllers.is_empty(), v2.path.as_str()), (0, true, "/"));
        let joined = parse_proc_cgroup("11:cpu,cpuacct:/docker/abc\n");
        assert_eq!(joined[0].controllers, ["cpu", "cpuacct"]);
        assert!(parse_proc_cgroup("garbage\n\n").is_empty());
    }

    #[test]
    fn parses_mountinfo_cgroup_mounts() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(m.len(), 10, "the tmpfs is not a cgroup mount");
        let mem = m.iter().find(|m| m.controllers == ["memory"]).expect("memory mount");
        assert_eq!(mem.mount_point, "/sys/fs/cgroup/memory");
        assert_eq!(mem.version, CgroupVersion::V1);
        let sd = m.iter().find(|m| m.mount_point.ends_with("systemd")).expect("systemd");
        assert!(sd.controllers.is_empty(), "name= options are not controllers");
        let v2 = parse_mountinfo(V2_MOUNTINFO);
        assert_eq!(v2.len(), 1);
        assert_eq!((v2[0].version, v2[0].mount_point.as_str()), (CgroupVersion::V2, "/sys/fs/cgroup"));
        let esc = parse_mountinfo("1 2 0:3 /a\\040b /mnt/c\\040d rw - cgroup2 cgroup2 rw\n");
        assert_eq!((esc[0].root.as_str(), esc[0].mount_point.as_str()), ("/a b", "/mnt/c d"));
    }

    #[test]
    fn v2_limits_treat_max_as_none() {
        assert_eq!(parse_v2_limit("max\n").expect("max"), None);
        assert_eq!(parse_v2_limit("536870912\n").expect("number"), Some(536_870_912));
        assert!(parse_v2_limit("lots").is_err());
    }

    #[test]
    fn v1_limits_treat_page_counter_max_as_none() {
        assert_eq!(parse_v1_limit("9223372036854771712\n").expect("max"), None);
        assert_eq!(parse_v1_limit("-1").expect("-1"), None);
        assert_eq!(parse_v1_limit("2147483648\n").expect("2 GiB"), Some(2 << 30));
        assert!(parse_v1_limit("").is_err());
    }

    #[test]
    fn keyed_files_parse() {
        let e = parse_keyed(V2_EVENTS);
        assert_eq!(e.get("oom_kill"), Some(&1));
        assert_eq!(e.get("max"), Some(&1835));
        let s = parse_keyed(V1_STAT);
        assert_eq!(s.get("total_rss"), Some(&1_720_320));
        assert_eq!(parse_keyed(V1_OOM_CONTROL).get("oom_kill"), Some(&0));
    }

    #[test]
    fn reads_a_v2_pod_through_the_file_layer() {
        let t = TempTree::new("v2");
        t.put("proc/self/cgroup", V2_PROC_CGROUP);
        t.put("proc/self/mountinfo", V2_MOUNTINFO);
        t.put("sys/fs/cgroup/memory.max", "536870912\n");
        t.put("sys/fs/cgroup/memory.high", "max\n");
        t.put("sys/fs/cgroup/memory.current", "476393472\n");
        t.put("sys/fs/cgroup/memory.peak", "536870912\n");
        t.put("sys/fs/cgroup/memory.events", V2_EVENTS);
        t.put("sys/fs/cgroup/memory.stat", V2_STAT);
        let s = CgroupFs::new(&t.0).read_state().expect("read").expect("a cgroup");
        assert_eq!(s.version, Some(CgroupVersion::V2));
        assert_eq!(s.path, "/");
        assert_eq!(s.limit, Some(512 << 20));
        assert_eq!(s.high, None);
        assert_eq!(s.usage, Some(476_393_472));
        assert_eq!(s.peak, Some(512 << 20));
        assert_eq!(s.anon, Some(398_458_880));
        assert_eq!(s.file, Some(67_096_576));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(s.oom_events, Some(3));
        assert_eq!(s.working_set(), Some(476_393_472 - 40_951_808));
        assert_eq!(s.headroom(), Some((512 << 20) - (476_393_472 - 40_951_808)));
    }

    #[test]
    fn v2_limit_is_the_smallest_on_the_way_up() {
        // No cgroup namespace: the full path, the parent (a systemd slice) holds the limit.
        let t = TempTree::new("v2-nested");
        t.put("proc/self/cgroup", "0::/app.slice/svc.service\n");
        t.put("proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        t.put("sys/fs/cgroup/app.slice/memory.max", "1073741824\n");
        t.put("sys/fs/cgroup/app.slice/svc.service/memory.max", "max\n");
        t.put("sys/fs/cgroup/app.slice/svc.service/memory.high", "805306368\n");
        t.put("sys/fs/cgroup/app.slice/svc.service/memory.current", "1000\n");
        let s = CgroupFs::new(&t.0).read_state().expect("read").expect("a cgroup");
        assert_eq!(s.limit, Some(1 << 30));
        assert_eq!(s.high, Some(768 << 20));
        assert_eq!(s.oom_kills, None, "no memory.events: unknown, not 0");
    }

    #[test]
    fn reads_a_hybrid_v1_layout_through_the_file_layer() {
        let t = TempTree::new("v1");
        let dir = "sys/fs/cgroup/memory/process_api/d5fda51ceafa67dd8bedfa8b0734c468";
        t.put("proc/self/cgroup", HYBRID_PROC_CGROUP);
        t.put("proc/self/mountinfo", HYBRID_MOUNTINFO);
        t.put(&format!("{dir}/memory.limit_in_bytes"), "9223372036854771712\n");
        t.put(&format!("{dir}/memory.usage_in_bytes"), "4792320\n");
        t.put(&format!("{dir}/memory.max_usage_in_bytes"), "5636096\n");
        t.put(&format!("{dir}/memory.failcnt"), "0\n");
        t.put(&format!("{dir}/memory.oom_control"), V1_OOM_CONTROL);
        t.put(&format!("{dir}/memory.stat"), V1_STAT);
        t.put("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
        let s = CgroupFs::new(&t.0).read_state().expect("read").expect("a cgroup");
        assert_eq!(s.version, Some(CgroupVersion::V1));
        assert_eq!(s.limit, None);
        assert_eq!(s.usage, Some(4_792_320));
        assert_eq!(s.peak, Some(5_636_096));
        assert_eq!(s.anon, Some(1_720_320));
        assert_eq!(s.file, Some(1_777_664));
        assert_eq!(s.oom_kills, Some(0));
        assert_eq!(s.failcnt, Some(0));
    }

    #[test]
    fn v2_bind_mounted_subtree_is_found_at_the_mount_point() {
        // No cgroup namespace, but the container runtime mounts only its own subtree: the path
        // is the full one, the mount's root field is that subtree.
        let t = TempTree::new("v2-bind");
        t.put("proc/self/cgroup", "0::/kubepods.slice/pod1/ctr1\n");
        t.put(
            "proc/self/mountinfo",
            "700 690 0:29 /kubepods.slice/pod1/ctr1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n",
        );
        t.put("sys/fs/cgroup/memory.max", "268435456\n");
        t.put("sys/fs/cgroup/memory.current", "1000\n");
        let fs = CgroupFs::new(&t.0);
        let loc = fs.locate().expect("locate").expect("located");
        assert_eq!(loc.dir, t.0.join("sys/fs/cgroup"));
        assert_eq!(fs.read_state().expect("read").expect("state").limit, Some(256 << 20));
    }

    #[test]
    fn v1_hierarchical_limit_applies() {
        let t = TempTree::new("v1-limit");
        t.put("proc/self/cgroup", "5:memory:/docker/abc\n");
        // Docker without a cgroup namespace: the container sees its own cgroup at the mount.
        t.put("proc/self/mountinfo", "40 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n");
        t.put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
        t.put("sys/fs/cgroup/memory/memory.usage_in_bytes", "100\n");
        t.put("sys/fs/cgroup/memory/memory.stat", "rss 10\ncache 5\nhierarchical_memory_limit 2147483648\n");
        let s = CgroupFs::new(&t.0).read_state().expect("read").expect("a cgroup");
        assert_eq!(s.limit, Some(2 << 30));
        assert_eq!(s.anon, Some(10), "plain keys when there are no total_ ones");
    }

    #[test]
    fn no_cgroup_files_is_none_and_bad_numbers_name_the_file() {
        let t = TempTree::new("none");
        assert_eq!(CgroupFs::new(&t.0).read_state().expect("read"), None);
        t.put("proc/self/cgroup", "0::/\n");
        t.put("sys/fs/cgroup/memory.current", "soon\n");
        let e = CgroupFs::new(&t.0).read_state().expect_err("bad counter");
        assert!(e.to_string().contains("memory.current"), "{e}");
    }

    #[test]
    fn reads_this_machine() {
        // Whatever the layout here, reading must not fail. Where a v1 memory hierarchy is
        // mounted and this process is in it (the build machine's hybrid layout), that is what is
        // read, and its usage matches the file read directly.
        let fs = CgroupFs::default();
        let state = fs.read_state().expect("reading this machine's cgroup");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let v1_memory = parse_proc_cgroup(&own).iter().any(|l| l.controllers.iter().any(|c| c == "memory"))
            && Path::new("/sys/fs/cgroup/memory/memory.usage_in_bytes").is_file();
        if v1_memory {
            let s = state.expect("a v1 memory cgroup");
            assert_eq!(s.version, Some(CgroupVersion::V1));
            let loc = fs.locate().expect("locate").expect("located");
            assert!(loc.dir.join("memory.limit_in_bytes").is_file(), "{}", loc.dir.display());
            assert!(s.usage.is_some_and(|u| u > 0));
            assert!(s.oom_kills.is_some());
        }
        if let Some(s) = fs.read_state().expect("again") {
            assert!(s.usage.is_some());
            assert!(s.limit.is_none_or(|l| l > 0));
        }
    }

    #[test]
    fn time_to_limit_cases() {
        const GIB: u64 = 1 << 30;
        assert_eq!(time_to_limit(GIB, 2 * GIB, GIB as f64), Some(3600));
        assert_eq!(time_to_limit(GIB, 2 * GIB, 4.0 * GIB as f64), Some(900));
        assert_eq!(time_to_limit(2 * GIB, 2 * GIB, 1.0), Some(0));
        assert_eq!(time_to_limit(3 * GIB, 2 * GIB, -1.0), Some(0));
        assert_eq!(time_to_limit(GIB, 2 * GIB, 0.0), None);
        assert_eq!(time_to_limit(GIB, 2 * GIB, -5.0), None);
        assert_eq!(time_to_limit(GIB, 2 * GIB, f64::NAN), None);
        assert_eq!(time_to_limit(0, u64::MAX, 1e-300), Some(u64::MAX));
    }
}
