//! A report and the files rotated out of it, read as one stream in time order.
//!
//! The agent rotates `<report>` by renaming it to `<report>.1` after shifting each `<report>.<n>`
//! to `<report>.<n+1>`, so the oldest lines are in the highest number: given the current file,
//! the set is `<report>.<N>`, ..., `<report>.1`, `<report>`, where `N` is the last of an unbroken
//! run from 1 (a gap means what lies beyond it belongs to no rotation of this file). Each file
//! holds whole lines: rotation happens between samples.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::units::MAX_REPORT_FILES;

use super::Timeline;

/// The rotated set of `current`, oldest first, `current` last; `exists` says whether an entry is
/// there (the entry itself: a dangling link counts, and its read then fails with its name).
pub fn rotated_set(current: &Path, exists: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut older = Vec::new();
    let name = current.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for n in 1..MAX_REPORT_FILES {
        let p = current.with_file_name(format!("{name}.{n}"));
        if !exists(&p) {
            break;
        }
        older.push(p);
    }
    older.reverse();
    older.push(current.to_path_buf());
    older
}

/// Reads `current` and the files rotated out of it into one timeline, line by line so a week of
/// samples never sits in memory as text; returns it with the number of files read.
pub fn read_rotated(current: &Path) -> Result<(Timeline, usize)> {
    // The current file first: a report that is not there is an error even when old rotations are.
    std::fs::symlink_metadata(current).map_err(|e| Error::io(current, e))?;
    let files = rotated_set(current, |p| std::fs::symlink_metadata(p).is_ok());
    let mut t = Timeline::default();
    let mut buf = Vec::new();
    for path in &files {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = std::io::BufReader::new(f);
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            t.push_line(&String::from_utf8_lossy(&buf));
        }
    }
    Ok((t, files.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_set_runs_from_the_oldest_rotation_to_the_current_file() {
        let there: HashSet<PathBuf> = ["/r/a.jsonl.1", "/r/a.jsonl.2", "/r/a.jsonl.3", "/r/a.jsonl.5"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let set = rotated_set(Path::new("/r/a.jsonl"), |p| there.contains(p));
        let names: Vec<_> = set.iter().map(|p| p.display().to_string()).collect();
        // .5 lies beyond the gap at .4: not part of this rotation.
        assert_eq!(names, ["/r/a.jsonl.3", "/r/a.jsonl.2", "/r/a.jsonl.1", "/r/a.jsonl"]);
    }

    #[test]
    fn a_file_never_rotated_is_a_set_of_one() {
        let set = rotated_set(Path::new("r.jsonl"), |_| false);
        assert_eq!(set, [PathBuf::from("r.jsonl")]);
    }

    #[test]
    fn lines_are_read_oldest_file_first() {
        let dir = std::env::temp_dir().join(format!("offheap-doctor-rotated-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let line = |seq: u64| {
            format!("{{\"schema\":1,\"kind\":\"sample\",\"seq\":{seq},\"epoch_ms\":{},\"time\":\"t\"}}\n", 1_000 * seq)
        };
        std::fs::write(dir.join("r.jsonl.2"), line(1) + &line(2)).expect("write");
        std::fs::write(dir.join("r.jsonl.1"), line(3)).expect("write");
        std::fs::write(dir.join("r.jsonl"), line(4) + "not json\n").expect("write");
        let (t, files) = read_rotated(&dir.join("r.jsonl")).expect("read");
        assert_eq!(files, 3);
        assert_eq!(t.sample_count(), 4);
        assert_eq!(t.skipped().unreadable, 1);
        let missing = read_rotated(&dir.join("none.jsonl")).expect_err("missing");
        assert!(missing.to_string().contains("none.jsonl"), "{missing}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
