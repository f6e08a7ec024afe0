//! Reads with resourceVersion "0", served from the watch cache: a LIST is the exact state at a
//! resourceVersion at most `stale_reads` behind (and not older than asked), and a watch starts
//! from such a state and then replays every later change.

use std::cell::Cell;
use std::collections::BTreeMap;

use apiserver_fake::{DeleteOptions, EventType, Object, Selector, ServerConfig, WatchStart};

use super::{NS, cm, run_seeds, server_with};

/// A LIST served from the watch cache is the exact state at some resourceVersion no more
/// than `stale_reads` behind, and never older than the minimum asked for; over the seeds it is
/// sometimes stale and sometimes the latest.
#[test]
fn list_from_cache_is_an_exact_past_state_within_the_staleness_bound() {
    let (stale, fresh) = (Cell::new(0), Cell::new(0));
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_stale_reads(5));
        let base = server.resource_version();
        for i in 0..10 {
            server.create(cm(NS, &format!("cm-{i}"))).expect("create");
        }
        server.delete("v1", "ConfigMap", NS, "cm-0", &DeleteOptions::default()).expect("delete");
        let latest = server.resource_version();
        let list = server.list_from_cache("v1", "ConfigMap", Some(NS), 0).expect("list");
        let at = list.resource_version;
        assert!(at + 5 >= latest && at <= latest, "rv {at} not within 5 of {latest}");
        // cm-i was created at base + i + 1; cm-0 was deleted at `latest`.
        let expected: Vec<String> = (0..10)
            .filter(|&i| base + i < at && !(i == 0 && at == latest))
            .map(|i| format!("cm-{i}"))
            .collect();
        let mut names: Vec<String> = list.items.iter().map(|o| o.metadata.name.clone()).collect();
        names.sort_by_key(|n| n[3..].parse::<u32>().unwrap_or(0));
        assert_eq!(names, expected, "list at rv {at}");
        if at == latest {
            fresh.set(fresh.get() + 1);
        } else {
            stale.set(stale.get() + 1);
        }
        let bounded =
            server.list_from_cache("v1", "ConfigMap", Some(NS), latest - 1).expect("list");
        assert!(bounded.resource_version >= latest - 1, "at_least ignored");
    });
    assert!(stale.get() > 0 && fresh.get() > 0, "stale {} fresh {}", stale.get(), fresh.get());
}

/// A watch from resourceVersion "0" starts from a possibly stale snapshot and then
/// replays every later change, so applying its events gives the latest state.
#[test]
fn watch_from_any_starts_stale_and_catches_up() {
    let stale = Cell::new(0);
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_stale_reads(8));
        for i in 0..6 {
            let created = server.create(cm(NS, &format!("cm-{i}"))).expect("create");
            server.update(created.with_label("round", "2")).expect("update");
        }
        let watch = server.watch("v1", "ConfigMap", Some(NS), WatchStart::Any, false).expect("w");
        let mut state: BTreeMap<String, Object> = BTreeMap::new();
        let mut initial = true;
        while let Some(event) = watch.try_next() {
            let name = event.object.metadata.name.clone();
            if initial && event.event_type != EventType::Added {
                initial = false;
            }
            match event.event_type {
                EventType::Added | EventType::Modified => {
                    state.insert(name, (*event.object).clone());
                }
                EventType::Deleted => {
                    state.remove(&name);
                }
                other => panic!("unexpected {other}"),
            }
        }
        let latest = server.list("v1", "ConfigMap", Some(NS), &Selector::everything()).expect("l");
        let latest: BTreeMap<String, Object> =
            latest.items.into_iter().map(|o| (o.metadata.name.clone(), o)).collect();
        assert_eq!(state, latest);
        if !initial {
            stale.set(stale.get() + 1);
        }
    });
    assert!(stale.get() > 0, "no seed started from a stale snapshot");
}
