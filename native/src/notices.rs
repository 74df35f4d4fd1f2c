//! Lines for the operator that the native core wants said once (a trim policy stepping aside,
//! a malloc setting skipped, a new finding). The Java side takes them after each call and logs
//! them; the core itself never writes to the application's streams.

use std::sync::Mutex;

static NOTICES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Bounded so a caller that never takes them cannot grow the process.
const MAX_PENDING: usize = 256;

pub fn push(line: impl Into<String>) {
    let mut n = NOTICES.lock().unwrap_or_else(|p| p.into_inner());
    if n.len() < MAX_PENDING {
        n.push(line.into());
    }
}

/// Every pending notice, oldest first; empties the queue.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *NOTICES.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn notices_come_out_once_in_order() {
        super::push("a");
        super::push("b");
        let got = super::take();
        assert!(got.ends_with(&["a".to_string(), "b".to_string()]));
        assert!(!super::take().contains(&"a".to_string()));
    }
}
