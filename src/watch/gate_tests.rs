//! Gate rules with injected stats and explicit instants (the gate reads no clock, so
//! no sleeping and no paused runtime is needed).

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const STABLE: Duration = Duration::from_secs(5);

fn key(rel: &str) -> Key {
    Key {
        root: 0,
        rel: PathBuf::from(rel),
    }
}

fn fp(size: u64, mtime_ns: i64) -> Fingerprint {
    Fingerprint {
        size,
        mtime_ns,
        inode: 7,
        device: 1,
    }
}

/// Emitted after a watcher hint or a directory scan.
fn stable(fingerprint: Fingerprint) -> Outcome {
    Outcome::Stable {
        fingerprint,
        scanned: false,
    }
}

/// Emitted for a full scan.
fn scanned(fingerprint: Fingerprint) -> Outcome {
    Outcome::Stable {
        fingerprint,
        scanned: true,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Stats every due key with `stat` at `at`; returns the outcomes.
fn tick(gate: &mut Gate, at: Instant, stat: Stat) -> Vec<(Key, Outcome)> {
    let mut out = Vec::new();
    for k in gate.take_due(at, usize::MAX) {
        if let Some(o) = gate.observe(&k, stat, at) {
            out.push((k, o));
        }
    }
    out
}

#[test]
fn an_old_file_found_by_a_scan_is_stable_at_once() {
    let mut gate = Gate::new(STABLE);
    let now = Instant::now();
    let out = gate.found(key("a"), fp(3, 1), STABLE, true, now);
    assert_eq!(out, Some(scanned(fp(3, 1))));
    assert!(gate.is_empty());
    assert_eq!(gate.scan_waiting(0), 0);
}

#[test]
fn a_young_file_waits_until_its_mtime_is_stable_for_long_enough() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    assert_eq!(gate.found(key("a"), fp(3, 1), ms(1000), true, t0), None);
    assert_eq!(gate.scan_waiting(0), 1);
    // Due when the mtime is `stable_for` old: 4 s after t0.
    assert_eq!(gate.next_due(), Some(t0 + ms(4000)));
    assert!(tick(&mut gate, t0 + ms(3999), Stat::File(fp(3, 1))).is_empty());
    let out = tick(&mut gate, t0 + ms(4000), Stat::File(fp(3, 1)));
    assert_eq!(out, vec![(key("a"), scanned(fp(3, 1)))]);
    assert_eq!(gate.scan_waiting(0), 0);
}

#[test]
fn a_file_written_slowly_is_emitted_once_with_its_final_fingerprint() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Changed, t0);
    let mut at = t0;
    // Grows every 2 s for 20 s: every stat differs, nothing is emitted.
    for i in 1..=10 {
        at = t0 + Duration::from_secs(2 * i);
        gate.hint(key("f"), Hint::Changed, at);
        assert!(tick(&mut gate, at, Stat::File(fp(i, i as i64))).is_empty());
    }
    // Then it stops changing: emitted `stable_for` after the last change.
    let last = fp(10, 10);
    let mut emitted = Vec::new();
    for step in 1..=80 {
        let t = at + ms(100 * step);
        emitted.extend(tick(&mut gate, t, Stat::File(last)));
    }
    assert_eq!(emitted, vec![(key("f"), stable(last))]);
    assert!(gate.is_empty());
}

#[test]
fn a_change_hint_restarts_the_quiet_period_even_if_the_stat_looks_equal() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    assert_eq!(gate.found(key("a"), fp(1, 1), ms(0), false, t0), None);
    gate.hint(key("a"), Hint::Changed, t0 + ms(4000));
    assert!(tick(&mut gate, t0 + ms(5000), Stat::File(fp(1, 1))).is_empty());
    assert_eq!(gate.next_due(), Some(t0 + ms(9000)));
    let out = tick(&mut gate, t0 + ms(9000), Stat::File(fp(1, 1)));
    assert_eq!(out.len(), 1);
}

#[test]
fn close_after_write_is_confirmed_by_a_second_stat_a_probe_later() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Changed, t0);
    gate.hint(key("f"), Hint::Closed, t0);
    assert_eq!(gate.next_due(), Some(t0), "a close is stat'ed at once");
    assert!(tick(&mut gate, t0, Stat::File(fp(9, 9))).is_empty());
    let probe = gate.probe();
    assert_eq!(probe, ms(500));
    let out = tick(&mut gate, t0 + probe, Stat::File(fp(9, 9)));
    assert_eq!(out, vec![(key("f"), stable(fp(9, 9)))]);
}

#[test]
fn close_with_a_stat_equal_to_the_last_one_seen_is_stable_at_once() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    assert_eq!(gate.found(key("f"), fp(2, 2), ms(0), false, t0), None);
    gate.hint(key("f"), Hint::Closed, t0 + ms(100));
    let out = tick(&mut gate, t0 + ms(100), Stat::File(fp(2, 2)));
    assert_eq!(out, vec![(key("f"), stable(fp(2, 2)))]);
}

#[test]
fn a_write_after_the_close_cancels_the_fast_path() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Closed, t0);
    assert!(tick(&mut gate, t0, Stat::File(fp(1, 1))).is_empty());
    gate.hint(key("f"), Hint::Changed, t0 + ms(10));
    let probe = gate.probe();
    assert!(tick(&mut gate, t0 + probe, Stat::File(fp(1, 1))).is_empty());
    assert_eq!(gate.next_due(), Some(t0 + ms(10) + STABLE));
}

#[test]
fn a_changed_stat_after_the_close_is_confirmed_again() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Closed, t0);
    let probe = gate.probe();
    assert!(tick(&mut gate, t0, Stat::File(fp(1, 1))).is_empty());
    assert!(tick(&mut gate, t0 + probe, Stat::File(fp(2, 2))).is_empty());
    let out = tick(&mut gate, t0 + probe * 2, Stat::File(fp(2, 2)));
    assert_eq!(out, vec![(key("f"), stable(fp(2, 2)))]);
}

#[test]
fn a_settling_file_that_disappears_is_gone() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Changed, t0);
    let out = tick(&mut gate, t0 + ms(500), Stat::Missing);
    assert_eq!(out, vec![(key("f"), Outcome::Gone)]);
    assert!(gate.is_empty());
}

#[test]
fn an_arrival_is_a_file_a_directory_or_nothing() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    let arrived = |file_ok, may_be_dir| Hint::Arrived {
        file_ok,
        may_be_dir,
    };
    gate.hint(key("dir"), arrived(false, true), t0);
    gate.hint(key("rejected.txt"), arrived(false, true), t0);
    gate.hint(key("link"), arrived(true, true), t0);
    gate.hint(key("gone-dir"), arrived(false, true), t0);
    let at = t0 + ms(500);
    let mut out = Vec::new();
    for k in gate.take_due(at, 10) {
        let stat = match k.rel.to_str() {
            Some("dir") => Stat::Dir,
            Some("rejected.txt") => Stat::File(fp(1, 1)),
            Some("link") => Stat::Other,
            _ => Stat::Missing,
        };
        out.extend(gate.observe(&k, stat, at).map(|o| (k, o)));
    }
    assert_eq!(out, vec![(key("dir"), Outcome::ScanDir)]);
    assert!(gate.is_empty());
}

#[test]
fn a_scan_finding_a_tracked_file_counts_as_a_stat_and_is_waited_for() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Changed, t0);
    // The scan sees an old mtime, but a change was reported: no shortcut.
    assert_eq!(gate.found(key("f"), fp(1, 1), STABLE * 10, true, t0), None);
    assert_eq!(gate.scan_waiting(0), 1);
    assert!(gate.remove(&key("f")));
    assert_eq!(gate.scan_waiting(0), 0);
    assert!(!gate.remove(&key("f")));
}

#[test]
fn a_file_a_full_scan_found_while_it_settled_is_emitted_once_as_scanned() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    gate.hint(key("f"), Hint::Changed, t0);
    gate.hint(key("g"), Hint::Closed, t0);
    assert_eq!(gate.found(key("f"), fp(1, 1), ms(0), true, t0), None);
    assert!(tick(&mut gate, t0, Stat::File(fp(1, 1))).is_empty());
    let out = tick(&mut gate, t0 + STABLE, Stat::File(fp(1, 1)));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.contains(&(key("f"), scanned(fp(1, 1)))));
    assert!(
        out.contains(&(key("g"), stable(fp(1, 1)))),
        "a hint alone is not a scan"
    );
    assert!(gate.is_empty());
}

#[test]
fn take_due_returns_keys_in_due_order_and_at_most_max() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    for (i, name) in ["c", "a", "b"].iter().enumerate() {
        gate.hint(key(name), Hint::Changed, t0 + ms(i as u64));
    }
    let at = t0 + Duration::from_secs(1);
    let first = gate.take_due(at, 2);
    assert_eq!(first, vec![key("c"), key("a")]);
    assert_eq!(gate.take_due(at, 2), vec![key("b")]);
    assert_eq!(gate.next_due(), None, "taken keys wait for their stat");
    for k in &first {
        gate.observe(k, Stat::File(fp(1, 1)), at);
    }
    assert_eq!(gate.len(), 3);
    gate.forget_root(0);
    assert!(gate.is_empty());
    assert_eq!(gate.next_due(), None);
}

#[test]
fn metadata_hints_bring_the_next_stat_forward_but_keep_the_close() {
    let mut gate = Gate::new(STABLE);
    let t0 = Instant::now();
    assert_eq!(gate.found(key("f"), fp(1, 1), ms(0), false, t0), None);
    gate.hint(key("f"), Hint::Metadata, t0 + ms(100));
    assert_eq!(gate.next_due(), Some(t0 + ms(600)));
}

#[test]
fn the_probe_is_a_tenth_of_stable_for_within_bounds() {
    assert_eq!(probe_delay(ms(200)), ms(20));
    assert_eq!(probe_delay(ms(50)), ms(10));
    assert_eq!(probe_delay(Duration::from_secs(60)), ms(500));
}
