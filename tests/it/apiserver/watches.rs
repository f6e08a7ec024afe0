//! Watches: events in strictly increasing resourceVersion order, one resourceVersion for all
//! kinds, a watch from a resourceVersion replays exactly the later changes (410 Expired when it is
//! older than the history), namespace filters, and BOOKMARKs only for watches that ask.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    DeleteOptions, EventType, Object, Reason, Selector, ServerConfig, WatchEvent, WatchStart,
};
use serde_json::json;
use sim_core::{sleep, spawn, yield_now};

use super::{
    NS, WIDGETS, assert_error, assert_strictly_increasing, cm, delete, drain, history_after,
    namespace, removed, run_seeds, server, server_with, spawn_writers, summary,
};

/// Events on one watch arrive in strictly increasing RV order under concurrent writers.
#[test]
fn watch_events_arrive_in_strictly_increasing_rv_order_under_concurrent_writers() {
    run_seeds(|| {
        let server = server();
        server.create(cm(NS, "before")).expect("create");
        let start = server.resource_version();
        let from = server.watch("v1", "ConfigMap", None, WatchStart::From(start), false).unwrap();
        let writers = spawn_writers(&server, &[NS, NS, NS, NS], 3);
        let expected_count = 4 * (3 * 2 + 2);
        let consumer_server = server.clone();
        let consumer = spawn("consumer", async move {
            let mut seen = Vec::new();
            while seen.len() < expected_count {
                seen.push(summary(&from.next().await.expect("open")));
            }
            let rvs: Vec<u64> = seen.iter().map(|s| s.2).collect();
            assert_strictly_increasing(&rvs, "watch from rv");
            assert_eq!(seen, history_after(&consumer_server, "ConfigMap", start));
        });
        let late = server.clone();
        spawn("late-watcher", async move {
            yield_now().await;
            yield_now().await;
            let list = late.list("v1", "ConfigMap", None, &Selector::everything()).unwrap();
            let watch = late.watch("v1", "ConfigMap", None, WatchStart::Now, false).unwrap();
            for writer in writers {
                writer.await;
            }
            consumer.await;
            let events = drain(&watch);
            let (initial, changes) = events.split_at(list.items.len());
            let snapshot: Vec<Object> = initial.iter().map(|e| (*e.object).clone()).collect();
            assert!(initial.iter().all(|e| e.event_type == EventType::Added));
            assert_eq!(snapshot, list.items, "the initial ADDED events are the list, by key");
            let rvs: Vec<u64> = changes.iter().map(WatchEvent::resource_version).collect();
            assert_strictly_increasing(&rvs, "changes after a snapshot");
            assert!(rvs.iter().all(|&rv| rv > list.resource_version));
            let changes: Vec<_> = changes.iter().map(summary).collect();
            assert_eq!(changes, history_after(&late, "ConfigMap", list.resource_version));
        });
    });
}

/// WatchStart::From(rv) replays exactly the changes after rv, then follows new ones.
#[test]
fn watch_from_rv_replays_exactly_the_changes_after_it() {
    run_seeds(|| {
        let server = server();
        let writers = spawn_writers(&server, &[NS, NS, NS], 2);
        let marker = server.clone();
        spawn("marker", async move {
            let skip = sim_core::random_range(0..6);
            for _ in 0..skip {
                yield_now().await;
            }
            let mark = marker.resource_version();
            let live =
                marker.watch("v1", "ConfigMap", None, WatchStart::From(mark), false).unwrap();
            for writer in writers {
                writer.await;
            }
            let expected = history_after(&marker, "ConfigMap", mark);
            let live: Vec<_> = drain(&live).iter().map(summary).collect();
            assert_eq!(live, expected);
            // Opening the same watch after the fact replays the same changes from history.
            let replay = marker.watch("v1", "ConfigMap", None, WatchStart::From(mark), false);
            let replay: Vec<_> = drain(&replay.unwrap()).iter().map(summary).collect();
            assert_eq!(replay, expected);
            // A watch from the current RV replays nothing.
            let now = marker.resource_version();
            let empty = marker.watch("v1", "ConfigMap", None, WatchStart::From(now), false);
            assert!(empty.unwrap().try_next().is_none());
        });
    });
}

/// A watch from an RV older than the retained history gets one ERROR 410 Expired.
#[test]
fn watch_from_before_the_history_gets_410_expired() {
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_history_max(5));
        // RVs 1..=3 are the system namespaces; two tasks write RVs 4..=13.
        let writers: Vec<_> = (0..2)
            .map(|task| {
                let server = server.clone();
                spawn(format!("writer-{task}"), async move {
                    for j in 0..5 {
                        server.create(cm(NS, &format!("c{task}-{j}"))).expect("create");
                        yield_now().await;
                    }
                })
            })
            .collect();
        spawn("watcher", async move {
            for writer in writers {
                writer.await;
            }
            assert_eq!(server.resource_version(), 13);
            let old = server.watch("v1", "ConfigMap", None, WatchStart::From(7), false).unwrap();
            let event = old.next().await.expect("an ERROR event");
            assert_eq!(event.event_type, EventType::Error);
            let error = event.error.expect("the error");
            assert_error(&error, 410, Reason::Expired, "too old resource version: 7 (8)");
            assert!(error.is_expired());
            assert!(old.next().await.is_none(), "the stream ends after ERROR");

            let edge = server.watch("v1", "ConfigMap", None, WatchStart::From(8), false).unwrap();
            let rvs: Vec<u64> = drain(&edge).iter().map(WatchEvent::resource_version).collect();
            assert_eq!(rvs, [9, 10, 11, 12, 13]);
            assert!(!edge.is_closed());
        });
    });
}

/// A namespace-filtered watch sees only its namespace (snapshot and changes).
#[test]
fn namespace_filtered_watches_see_only_their_namespace() {
    run_seeds(|| {
        let server = server();
        for ns in ["a", "b"] {
            server.create(namespace(ns)).expect("create");
            server.create(cm(ns, "seed")).expect("create");
        }
        let watch = |ns| server.watch("v1", "ConfigMap", ns, WatchStart::Now, false).unwrap();
        let (in_a, in_b, all) = (watch(Some("a")), watch(Some("b")), watch(None));
        let writers = spawn_writers(&server, &["a", "b", "a"], 2);
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            let (a, b, all) = (drain(&in_a), drain(&in_b), drain(&all));
            assert!(a.iter().all(|e| e.object.metadata.namespace == "a"));
            assert!(b.iter().all(|e| e.object.metadata.namespace == "b"));
            assert_eq!((a.len(), b.len()), (1 + 2 * 5, 1 + 5));
            let mut merged: Vec<_> = a.iter().chain(&b).map(summary).collect();
            merged.sort_by_key(|s| (s.2, s.1.clone()));
            let mut every: Vec<_> = all.iter().map(summary).collect();
            every.sort_by_key(|s| (s.2, s.1.clone()));
            assert_eq!(merged, every);
        });
    });
}

/// BOOKMARK events go only to watches that asked for them, with the current RV.
#[test]
fn bookmarks_go_only_to_watches_that_asked() {
    run_seeds(|| {
        let server = server();
        let start = WatchStart::From(server.resource_version());
        let asked = server.watch("v1", "ConfigMap", None, start, true).unwrap();
        let silent = server.watch("v1", "ConfigMap", None, start, false).unwrap();
        let periodic = server.watch("v1", "Secret", None, WatchStart::Now, true).unwrap();
        server.start_bookmarks(Duration::from_secs(60));
        spawn("writer", async move {
            server.create(cm(NS, "a")).expect("create");
            yield_now().await;
            server.send_bookmarks();
            let rv = server.resource_version();
            let types = |w: &apiserver_fake::Watch| {
                drain(w).iter().map(|e| (e.event_type, e.resource_version())).collect::<Vec<_>>()
            };
            assert_eq!(types(&asked), [(EventType::Added, rv), (EventType::Bookmark, rv)]);
            assert_eq!(types(&silent), [(EventType::Added, rv)]);
            assert_eq!(types(&periodic), [(EventType::Bookmark, rv)]);
            sleep(Duration::from_secs(150)).await;
            assert_eq!(types(&periodic), [(EventType::Bookmark, rv), (EventType::Bookmark, rv)]);
            assert!(types(&silent).is_empty());
        });
    });
}

/// One global resourceVersion, strictly increasing across kinds.
#[test]
fn resource_version_is_global_and_strictly_increasing_across_kinds() {
    run_seeds(|| {
        let server = server();
        let first = server.resource_version() + 1;
        let log: Rc<RefCell<Vec<u64>>> = Rc::default();
        let kinds = [("v1", "ConfigMap"), ("v1", "Secret"), (WIDGETS, "Widget")];
        let writers: Vec<_> = kinds
            .into_iter()
            .map(|(api_version, kind)| {
                let (server, log) = (server.clone(), log.clone());
                spawn(kind, async move {
                    for j in 0..3 {
                        let object = Object::new(api_version, kind, NS, &format!("x{j}"))
                            .with_spec(json!({ "size": j }));
                        let created = server.create(object).expect("create");
                        log.borrow_mut().push(created.resource_version());
                        yield_now().await;
                        let updated = server.update(created.with_label("j", "1")).expect("update");
                        log.borrow_mut().push(updated.resource_version());
                        yield_now().await;
                        let gone = removed(delete(&server, &updated, &DeleteOptions::default()));
                        log.borrow_mut().push(gone.resource_version());
                        yield_now().await;
                    }
                })
            })
            .collect();
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            let log = log.borrow();
            let expected: Vec<u64> = (first..first + 27).collect();
            assert_eq!(*log, expected, "one counter for every kind, one step per write");
            let history: Vec<u64> =
                server.history().iter().map(|c| c.event.resource_version()).collect();
            assert_eq!(history, (1..first + 27).collect::<Vec<_>>());
        });
    });
}
