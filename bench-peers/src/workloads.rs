//! The workloads, written once per tool in each tool's own idiom.
//!
//! kdst's are async tasks on [`sim_core`]; shuttle's and loom's are the same source (the
//! [`peer_workloads`] macro) compiled against each crate's `thread` and `sync::atomic` modules.
//! shuttle's async flavour of W1 is written separately in [`shuttle_async`].
//!
//! # Steps
//!
//! A step is one uninterrupted stretch of one task between two scheduling points: a task that
//! passes `p` scheduling points runs `p + 1` steps. That is exactly what kdst's trace records
//! (one poll = one step, [`sim_core::Trace::len`]), so kdst's count is the trace's. shuttle and
//! loom have no equal public counter (shuttle's scheduler also counts the main thread's spawns
//! and joins, loom none at all), so:
//!
//! - W1 counts nominally: `tasks × (yields + 1)` per execution, which is kdst's trace length too
//!   (checked at start-up), and nothing instruments the timed loops;
//! - W2 and W3 count in the workload: [`step`] once when a task starts and once after each of its
//!   scheduling points (an explicit yield, or a shuttle/loom atomic operation, each of which is a
//!   scheduling point in those tools).

use std::sync::atomic::{AtomicU64, Ordering};

/// Steps counted by the shuttle and loom workloads of W2 and W3 (see the module docs).
static STEPS: AtomicU64 = AtomicU64::new(0);

/// Counts one step of a peer workload.
#[inline]
pub fn step() {
    STEPS.fetch_add(1, Ordering::Relaxed);
}

/// Resets the peer step counter, returning its value.
pub fn take_steps() -> u64 {
    STEPS.swap(0, Ordering::Relaxed)
}

/// The panic message of W2's crash (Go's text).
pub const MAP_CRASH: &str = "concurrent map writes";

/// The panic message of W3's failure.
pub const RECREATED: &str = "the deleted key was recreated before the deleter's check";

/// Keys each W2 worker inserts.
pub const W2_KEYS: u32 = 3;

/// W2 workers.
pub const W2_WORKERS: u32 = 3;

/// kdst's workloads.
pub mod kdst {
    use std::cell::Cell;
    use std::rc::Rc;

    use sim_core::{GoMap, spawn, yield_now};

    use super::{RECREATED, W2_KEYS, W2_WORKERS};

    const NAMES: [&str; 8] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];

    /// W1: `tasks` tasks (at most 8) each calling `yield_now` `yields` times.
    pub fn yields(tasks: usize, yields: usize) {
        for name in &NAMES[..tasks] {
            spawn(*name, async move {
                for _ in 0..yields {
                    yield_now().await;
                }
            });
        }
    }

    /// W2: three workers each insert three keys into one [`GoMap`].
    pub fn go_map() {
        let map = GoMap::new("m");
        for worker in 0..W2_WORKERS {
            let map = map.clone();
            spawn(NAMES[worker as usize], async move {
                for key in 0..W2_KEYS {
                    map.insert(worker * W2_KEYS + key, worker).await;
                }
            });
        }
    }

    /// W3: A deletes the key, works `work` units, then checks it is still absent; B works
    /// `work` units, then recreates the key if it is missing.
    ///
    /// Each access to the shared key is preceded by a `yield_now`, mirroring shuttle's and loom's
    /// atomics, each of which is a scheduling point: the three tools see the same scheduling
    /// points.
    pub fn recreate(work: usize) {
        let present = Rc::new(Cell::new(true));
        let key = present.clone();
        spawn("deleter", async move {
            yield_now().await;
            key.set(false);
            for _ in 0..work {
                yield_now().await;
            }
            yield_now().await;
            assert!(!key.get(), "{RECREATED}");
        });
        spawn("recreator", async move {
            for _ in 0..work {
                yield_now().await;
            }
            yield_now().await;
            if !present.get() {
                yield_now().await;
                present.set(true);
            }
        });
    }
}

/// The shuttle and loom workloads, from one source: `$krate` is `shuttle` or `loom`.
macro_rules! peer_workloads {
    ($module:ident, $krate:ident, $doc:literal) => {
        #[doc = $doc]
        pub mod $module {
            use std::collections::BTreeMap;
            use std::sync::atomic::Ordering::SeqCst;
            use std::sync::{Arc, Mutex};

            use $krate::sync::atomic::AtomicBool;
            use $krate::thread;

            use super::{MAP_CRASH, RECREATED, W2_KEYS, W2_WORKERS, step};

            /// W1: `tasks` threads each calling `yield_now` `yields` times; the main thread
            /// joins them.
            pub fn yields(tasks: usize, yields: usize) {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        thread::spawn(move || {
                            for _ in 0..yields {
                                thread::yield_now();
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().expect("a W1 thread panicked");
                }
            }

            /// A map with Go's writing-flag check: set the flag (a writer that finds it set
            /// panics with Go's text), a scheduling point, the insert, clear the flag.
            struct GoLikeMap {
                writing: AtomicBool,
                data: Mutex<BTreeMap<u32, u32>>,
            }

            impl GoLikeMap {
                fn insert(&self, key: u32, value: u32) {
                    let busy = self.writing.swap(true, SeqCst);
                    step();
                    assert!(!busy, "{MAP_CRASH}");
                    thread::yield_now();
                    step();
                    self.data.lock().expect("uncontended").insert(key, value);
                    self.writing.store(false, SeqCst);
                    step();
                }
            }

            /// W2: three threads each insert three keys into one [`GoLikeMap`].
            pub fn go_map() {
                let map = Arc::new(GoLikeMap {
                    writing: AtomicBool::new(false),
                    data: Mutex::new(BTreeMap::new()),
                });
                let handles: Vec<_> = (0..W2_WORKERS)
                    .map(|worker| {
                        let map = map.clone();
                        thread::spawn(move || {
                            step();
                            for key in 0..W2_KEYS {
                                map.insert(worker * W2_KEYS + key, worker);
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().expect("a W2 thread panicked");
                }
            }

            /// W3: A deletes the key, works `work` units (yields), then checks it is still
            /// absent; B works `work` units, then recreates the key if it is missing.
            pub fn recreate(work: usize) {
                let present = Arc::new(AtomicBool::new(true));
                let key = present.clone();
                let deleter = thread::spawn(move || {
                    step();
                    key.store(false, SeqCst);
                    step();
                    for _ in 0..work {
                        thread::yield_now();
                        step();
                    }
                    let recreated = key.load(SeqCst);
                    step();
                    assert!(!recreated, "{RECREATED}");
                });
                let recreator = thread::spawn(move || {
                    step();
                    for _ in 0..work {
                        thread::yield_now();
                        step();
                    }
                    let missing = !present.load(SeqCst);
                    step();
                    if missing {
                        present.store(true, SeqCst);
                        step();
                    }
                });
                deleter.join().expect("the W3 deleter panicked");
                recreator.join().expect("the W3 recreator panicked");
            }
        }
    };
}

peer_workloads!(shuttle, shuttle, "shuttle's workloads (threads).");
peer_workloads!(loom, loom, "loom's workloads (threads).");

/// shuttle's async flavour of W1: futures on shuttle's executor.
pub mod shuttle_async {
    use shuttle::future;

    /// W1: `tasks` futures each calling `yield_now` `yields` times; the main thread blocks on
    /// joining them.
    pub fn yields(tasks: usize, yields: usize) {
        future::block_on(async move {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    future::spawn(async move {
                        for _ in 0..yields {
                            future::yield_now().await;
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("a W1 future failed");
            }
        });
    }
}
