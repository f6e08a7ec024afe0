//! Tests: workqueue. client-go's work-queue guarantees (`apiserver_fake::workqueue`), each over
//! many seeds of the random strategy, in virtual time.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::workqueue::{QueueConfig, RateLimiter, WorkQueue};
use kdst_tests::{assert_all_complete, at, failed};
use sim_core::{
    Failure, FailureKind, JoinSet, Outcome, SimTime, Simulation, now, random_duration, sleep,
    sleep_until, spawn, yield_now,
};

const SEEDS: u64 = 200;
const MS: Duration = Duration::from_millis(1);
/// How soon after its ready time a blocked worker receives a key: a few polls of virtual time.
const PROMPT: Duration = Duration::from_millis(1);

fn key(text: &str) -> String {
    text.to_string()
}

/// The keys workers got, with the time each got it, in order.
type Got = Rc<RefCell<Vec<(String, SimTime)>>>;

/// Workers drain `queue` until it is shut down, recording each key with the time it was got.
fn spawn_workers(queue: &WorkQueue<String>, workers: u32, hold: Duration) -> (JoinSet<()>, Got) {
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut set = JoinSet::new();
    for worker in 0..workers {
        let (queue, got) = (queue.clone(), got.clone());
        set.spawn(format!("worker-{worker}"), async move {
            while let Some(key) = queue.get().await {
                got.borrow_mut().push((key.clone(), now()));
                sleep(hold).await;
                queue.done(&key);
            }
        });
    }
    (set, got)
}

/// `got`'s keys, in the order they were got.
fn keys(got: &RefCell<Vec<(String, SimTime)>>) -> Vec<String> {
    got.borrow().iter().map(|(key, _)| key.clone()).collect()
}

/// The limit of `outcome`, which must be `LimitReached` with `kind`.
fn limit(outcome: Outcome, kind: FailureKind) -> Failure {
    match outcome {
        Outcome::LimitReached(failure) if failure.kind == kind => failure,
        other => panic!("expected a {kind} limit, got: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// One worker per key

#[derive(Default)]
struct Exclusive {
    /// Gets of a key another worker still held.
    overlaps: Cell<u32>,
    /// The most keys in flight at once.
    most_in_flight: Cell<usize>,
    processed: Cell<u32>,
}

/// Three workers, two producers adding three keys over and over; with `done_early` a worker
/// calls `done` as soon as it gets a key, as if the queue had no `processing` set.
fn exclusive_run(sim: &mut Simulation, seed: u64, done_early: bool) -> Rc<Exclusive> {
    let stats = Rc::new(Exclusive::default());
    let outcome = sim.run(seed, {
        let stats = stats.clone();
        move || {
            let queue = WorkQueue::<String>::new("items");
            // A logical clock: the last add and the last get of each key.
            let clock = Rc::new(Cell::new(0u64));
            let last_add = Rc::new(RefCell::new(BTreeMap::<String, u64>::new()));
            let last_get = Rc::new(RefCell::new(BTreeMap::<String, u64>::new()));
            let in_flight = Rc::new(RefCell::new(BTreeSet::<String>::new()));
            let mut producers = JoinSet::new();
            for producer in 0..2 {
                let (queue, clock, last_add) = (queue.clone(), clock.clone(), last_add.clone());
                producers.spawn(format!("producer-{producer}"), async move {
                    for round in 0..6 {
                        for name in ["a", "b", "c"] {
                            clock.set(clock.get() + 1);
                            last_add.borrow_mut().insert(key(name), clock.get());
                            queue.add(key(name));
                            if (round + producer) % 2 == 0 {
                                yield_now().await;
                            }
                        }
                        sleep(random_duration(Duration::ZERO, 20 * Duration::from_micros(1))).await;
                    }
                });
            }
            let mut workers = JoinSet::new();
            for worker in 0..3 {
                let (queue, stats, in_flight) = (queue.clone(), stats.clone(), in_flight.clone());
                let (clock, last_get) = (clock.clone(), last_get.clone());
                workers.spawn(format!("worker-{worker}"), async move {
                    while let Some(key) = queue.get().await {
                        clock.set(clock.get() + 1);
                        last_get.borrow_mut().insert(key.clone(), clock.get());
                        if done_early {
                            queue.done(&key);
                        } else {
                            assert!(queue.is_processing(&key));
                        }
                        if !in_flight.borrow_mut().insert(key.clone()) {
                            stats.overlaps.set(stats.overlaps.get() + 1);
                        }
                        let held = in_flight.borrow().len();
                        stats.most_in_flight.set(stats.most_in_flight.get().max(held));
                        yield_now().await;
                        yield_now().await;
                        in_flight.borrow_mut().remove(&key);
                        stats.processed.set(stats.processed.get() + 1);
                        if !done_early {
                            queue.done(&key);
                        }
                    }
                });
            }
            spawn("closer", async move {
                producers.join_all().await;
                queue.shut_down();
                workers.join_all().await;
                assert!(queue.is_empty(), "keys left after the workers exited");
                for (key, added) in last_add.borrow().iter() {
                    let got = last_get.borrow().get(key).copied().unwrap_or(0);
                    assert!(got > *added, "{key} added at {added} but last got at {got}: lost");
                }
            });
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    stats
}

#[test]
fn no_key_is_processed_by_two_workers_at_once_and_no_add_is_lost() {
    let mut sim = Simulation::default();
    let mut concurrent = 0;
    for seed in 0..SEEDS {
        let stats = exclusive_run(&mut sim, seed, false);
        assert_eq!(stats.overlaps.get(), 0, "seed {seed}: a key was handed to two workers");
        assert!(stats.processed.get() >= 3, "seed {seed}: {} processed", stats.processed.get());
        assert!(stats.processed.get() < 36, "seed {seed}: adds did not coalesce");
        concurrent += usize::from(stats.most_in_flight.get() > 1);
    }
    assert!(concurrent > 0, "no seed had two workers processing (different keys) at once");
}

#[test]
fn keys_added_together_reach_every_idle_worker_at_once() {
    // Each worker holds its first key for a second: a wake-up lost while workers are between
    // checking the queue and blocking would leave a key queued for that second.
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("wakeups");
        let (mut workers, got) = spawn_workers(&queue, 3, Duration::from_secs(1));
        let added = Rc::new(RefCell::new(BTreeMap::new()));
        let producer = {
            let (queue, added) = (queue.clone(), added.clone());
            spawn("producer", async move {
                for names in [["a", "b"], ["c", "d"]] {
                    for _ in 0..sim_core::random_range(0..4) {
                        yield_now().await;
                    }
                    for name in names {
                        added.borrow_mut().insert(key(name), now());
                        queue.add(key(name));
                    }
                }
            })
        };
        spawn("closer", async move {
            producer.await;
            sleep(Duration::from_secs(5)).await;
            queue.shut_down();
            workers.join_all().await;
            let (got, added) = (got.borrow(), added.borrow());
            for (key, time) in got.iter().take(3) {
                let waited = *time - added[key];
                assert!(waited < PROMPT, "{key} waited {waited:?} with a worker idle: {got:?}");
            }
            assert_eq!(got.len(), 4);
        });
    });
}

#[test]
fn without_the_processing_set_two_workers_hold_one_key_on_some_seeds() {
    let mut sim = Simulation::default();
    let overlapping =
        (0..SEEDS).filter(|&seed| exclusive_run(&mut sim, seed, true).overlaps.get() > 0);
    assert!(overlapping.count() > 0, "the overlap check never fired: it proves nothing");
}

// ---------------------------------------------------------------------------------------------
// Coalescing and re-adds

#[test]
fn adds_of_a_queued_key_coalesce_into_one_get_in_first_add_order() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("coalesce");
        for name in ["a", "b", "a", "c", "b", "a", "a"] {
            queue.add(key(name));
        }
        assert_eq!(queue.len(), 3);
        assert!(queue.is_dirty(&key("a")) && !queue.is_processing(&key("a")));
        let (mut workers, got) = spawn_workers(&queue, 2, MS);
        spawn("closer", async move {
            sleep(Duration::from_secs(1)).await;
            queue.shut_down();
            workers.join_all().await;
            assert_eq!(keys(&got), ["a", "b", "c"]);
        });
    });
}

#[test]
fn a_key_re_added_while_processed_runs_exactly_once_more_after_done() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("readd");
        queue.add(key("k"));
        let (mut workers, got) = spawn_workers(&queue, 3, 10 * MS);
        let readder = queue.clone();
        spawn("readder", async move {
            sleep(5 * MS).await;
            let k = key("k");
            assert!(readder.is_processing(&k), "k is not being processed at 5ms");
            for _ in 0..3 {
                readder.add(k.clone());
                yield_now().await;
            }
            assert!(readder.is_dirty(&k) && readder.is_processing(&k));
            assert_eq!(readder.len(), 0, "a key being processed was queued");
        });
        spawn("closer", async move {
            sleep(Duration::from_secs(1)).await;
            queue.shut_down();
            workers.join_all().await;
            let got = got.borrow();
            assert_eq!(got.len(), 2, "k processed {} times: {got:?}", got.len());
            let (first, second) = (got[0].1, got[1].1);
            assert!(second >= first + 10 * MS, "k got again at {second} before done ({first})");
            assert!(second < first + 10 * MS + PROMPT, "k got again late, at {second}");
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

#[test]
fn rate_limited_requeues_back_off_exponentially_and_forget_resets() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("backoff");
        spawn("controller", async move {
            let (k, other) = (key("k"), key("other"));
            let requeue = async |key: &String, expected: Duration| {
                let start = now();
                queue.add_rate_limited(key.clone());
                assert_eq!((queue.len(), queue.waiting_len()), (0, 1), "not delayed");
                assert_eq!(queue.get().await.as_ref(), Some(key));
                let waited = now() - start;
                assert!(waited >= expected, "{key} waited {waited:?}, less than {expected:?}");
                assert!(waited < expected + PROMPT, "{key} waited {waited:?}, not {expected:?}");
                queue.done(key);
            };
            for failures in 0..6 {
                requeue(&k, 5 * MS * (1 << failures)).await;
                assert_eq!(queue.num_requeues(&k), failures + 1);
            }
            requeue(&other, 5 * MS).await;
            assert_eq!(queue.num_requeues(&other), 1, "keys back off independently");
            queue.forget(&k);
            assert_eq!(queue.num_requeues(&k), 0);
            requeue(&k, 5 * MS).await;
            assert_eq!(queue.num_requeues(&k), 1);
        });
    });
}

#[test]
fn exponential_backoff_is_capped_and_never_overflows() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        spawn("limiter", async {
            let mut capped = RateLimiter::exponential(5 * MS, Duration::from_secs(1));
            let delays: Vec<_> = (0..12).map(|_| capped.when(&7u32).as_millis()).collect();
            assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]);
            let mut controller = RateLimiter::default_controller();
            let last = (0..300).map(|_| controller.when(&key("k"))).last();
            assert_eq!(last, Some(Duration::from_secs(1000)));
            assert_eq!(controller.num_requeues(&key("k")), 300);
            let mut none = RateLimiter::none();
            assert!((0..70).all(|_| none.when(&key("k")).is_zero()));
            assert_eq!(none.num_requeues(&key("k")), 70, "none() still counts requeues");
            yield_now().await;
        });
    });
}

#[test]
fn the_default_limiter_s_bucket_allows_a_burst_of_100_then_10_per_second() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<u32>::new("bucket");
        let got = Rc::new(RefCell::new(Vec::new()));
        let worker = {
            let (queue, got) = (queue.clone(), got.clone());
            spawn("worker", async move {
                while let Some(key) = queue.get().await {
                    got.borrow_mut().push((key, now()));
                    queue.done(&key);
                }
            })
        };
        spawn("controller", async move {
            sleep(random_duration(Duration::ZERO, MS)).await;
            let start = now();
            for key in 0..150 {
                queue.add_rate_limited(key);
            }
            assert_eq!(queue.waiting_len(), 150);
            sleep(Duration::from_secs(6)).await;
            queue.shut_down();
            worker.await;
            let got = got.borrow();
            assert_eq!(
                got.iter().map(|&(key, _)| key).collect::<Vec<_>>(),
                (0..150).collect::<Vec<_>>()
            );
            for &(key, time) in got.iter() {
                // The first 100 take the burst (the exponential 5ms wins), then 100ms per token.
                let expected = if key < 100 { 5 * MS } else { 100 * MS * (key - 99) };
                let waited = time - start;
                assert!(waited >= expected, "key {key} waited {waited:?} < {expected:?}");
                assert!(waited < expected + 2 * PROMPT, "key {key} waited {waited:?}");
            }
        });
    });
}

#[test]
fn the_bucket_refills_in_virtual_time() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        spawn("limiter", async {
            let mut limiter = RateLimiter::bucket(10.0, 100);
            let delays: Vec<_> = (0..150u32).map(|key| limiter.when(&key)).collect();
            assert!(delays[..100].iter().all(Duration::is_zero), "the burst was not free");
            assert_eq!(delays[100], 100 * MS);
            assert_eq!(delays[149], 5000 * MS);
            sleep(Duration::from_secs(1)).await;
            // 50 tokens owed, 10 refilled: the next waits for the 41st.
            let next = limiter.when(&150);
            assert!(next <= 4100 * MS && next > 4099 * MS, "{next:?}");
            assert_eq!(limiter.num_requeues(&0), 0, "a bucket counts no requeues");
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Delayed adds

#[test]
fn a_delayed_key_is_ready_right_after_its_delay_and_not_before() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let outcome = sim.run(seed, || {
            let queue = WorkQueue::<String>::new("delays");
            let (mut workers, got) = spawn_workers(&queue, 2, MS);
            spawn("controller", async move {
                sleep(random_duration(Duration::ZERO, 10 * MS)).await;
                let start = now();
                queue.add_after(key("k"), 50 * MS);
                assert_eq!((queue.len(), queue.waiting_len()), (0, 1));
                sleep_until(start + (50 * MS - Duration::from_micros(1))).await;
                assert!(!queue.is_dirty(&key("k")) && !queue.is_processing(&key("k")), "early");
                assert_eq!(queue.len(), 0);
                sleep(Duration::from_secs(1)).await;
                queue.shut_down();
                workers.join_all().await;
                let got = got.borrow();
                assert_eq!(got.len(), 1);
                let waited = got[0].1 - start;
                assert!(waited >= 50 * MS && waited < 50 * MS + PROMPT, "waited {waited:?}");
            });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let render = sim.trace().render();
        assert!(render.contains("spawn delays/waiting-loop"), "seed {seed}:\n{render}");
        assert!(render.contains("delays: add k after 50ms"), "seed {seed}:\n{render}");
    }
}

#[test]
fn a_key_delayed_twice_keeps_the_earlier_deadline_and_runs_once() {
    for (first, second) in [(100, 30), (30, 100)] {
        assert_all_complete(&mut Simulation::default(), SEEDS, || {
            let queue = WorkQueue::<String>::new("twice");
            let (mut workers, got) = spawn_workers(&queue, 2, MS);
            spawn("controller", async move {
                queue.add_after(key("k"), first * MS);
                queue.add_after(key("k"), second * MS);
                assert_eq!(queue.waiting_len(), 1, "one waiting entry per key");
                sleep(Duration::from_secs(1)).await;
                queue.shut_down();
                workers.join_all().await;
                let got = got.borrow();
                assert_eq!(got.len(), 1, "{got:?}");
                assert!(got[0].1 >= at(30 * MS) && got[0].1 < at(30 * MS + 2 * PROMPT), "{got:?}");
            });
        });
    }
}

#[test]
fn delayed_keys_become_ready_by_deadline_then_by_order_of_add() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("order");
        let (mut workers, got) = spawn_workers(&queue, 1, Duration::ZERO);
        spawn("controller", async move {
            for (name, delay) in [("x", 30), ("c", 10), ("a", 10), ("z", 20), ("b", 10)] {
                queue.add_after(key(name), delay * MS);
            }
            queue.add_after(key("now"), Duration::ZERO);
            assert_eq!((queue.len(), queue.waiting_len()), (1, 5), "a zero delay adds at once");
            sleep(Duration::from_secs(1)).await;
            queue.shut_down();
            workers.join_all().await;
            assert_eq!(keys(&got), ["now", "c", "a", "b", "z", "x"]);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[test]
fn shut_down_releases_blocked_getters_and_ignores_later_adds() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("stopping");
        let released = Rc::new(Cell::new(0));
        for worker in 0..3 {
            let (queue, released) = (queue.clone(), released.clone());
            spawn(format!("worker-{worker}"), async move {
                assert_eq!(queue.get().await, None);
                assert!(now() >= at(10 * MS), "released before the shutdown");
                released.set(released.get() + 1);
            });
        }
        spawn("closer", async move {
            sleep(10 * MS).await;
            queue.shut_down();
            assert!(queue.is_shutting_down());
            queue.add(key("late"));
            queue.add_after(key("later"), MS);
            queue.add_rate_limited(key("limited"));
            assert_eq!((queue.len(), queue.waiting_len()), (0, 0), "an add after shutdown");
            assert!(!queue.is_dirty(&key("late")));
            assert_eq!(queue.get().await, None);
            sleep(MS).await;
            assert_eq!(released.get(), 3, "a getter is still blocked");
        });
    });
}

#[test]
fn after_shut_down_queued_keys_are_still_handed_out_and_waiting_keys_dropped() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("leftovers");
        queue.add(key("a"));
        queue.add(key("b"));
        queue.add_after(key("delayed"), 10 * MS);
        let (mut workers, got) = spawn_workers(&queue, 2, 20 * MS);
        spawn("closer", async move {
            yield_now().await;
            queue.shut_down();
            workers.join_all().await;
            let mut got = keys(&got);
            got.sort();
            assert_eq!(got, ["a", "b"]);
        });
    });
}

#[test]
fn shut_down_with_drain_waits_for_the_keys_being_processed() {
    assert_all_complete(&mut Simulation::default(), SEEDS, || {
        let queue = WorkQueue::<String>::new("drain");
        queue.add(key("k"));
        let (_workers, _got) = spawn_workers(&queue, 2, 50 * MS);
        spawn("drainer", async move {
            sleep(10 * MS).await;
            assert!(queue.is_processing(&key("k")));
            queue.shut_down_with_drain().await;
            assert!(!queue.is_processing(&key("k")), "drain returned while k was processed");
            assert!(now() >= at(50 * MS), "drain returned at {}", now());
        });
    });
}

#[test]
fn a_worker_blocked_on_an_empty_queue_shows_in_the_deadlock_report() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let outcome = sim.run(seed, || {
            let queue = WorkQueue::<String>::new("idle");
            spawn("worker", async move {
                queue.get().await;
            });
        });
        let failure = failed(outcome, FailureKind::Deadlock);
        let expected = "task 0 (worker): waiting to be notified by Notify \"work queue idle\"";
        assert!(failure.details.contains(expected), "seed {seed}: {failure}");
    }
}

// ---------------------------------------------------------------------------------------------
// Length limit

#[test]
fn a_queue_past_length_max_ends_the_run_as_a_resource_limit() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let outcome = sim.run(seed, || {
            let config = QueueConfig::default().with_length_max(10);
            let queue = WorkQueue::<u32>::with_config("bounded", config);
            spawn("producer", async move {
                for key in 0..5 {
                    queue.add(key);
                    queue.add(key);
                    queue.add_after(key + 100, Duration::from_secs(1));
                    yield_now().await;
                }
                assert_eq!((queue.len(), queue.waiting_len()), (5, 5), "the queue is full");
                queue.add_after(100, Duration::from_secs(2));
                queue.add(4);
                queue.add(10);
                unreachable!("the 11th key was accepted");
            });
        });
        let failure = limit(outcome, FailureKind::ResourceLimit);
        assert_eq!(
            failure.message, "work queue \"bounded\" holds more than 10 keys",
            "seed {seed}"
        );
        assert_eq!(failure.task_name.as_deref(), Some("producer"));
        assert!(failure.details.contains("QueueConfig::length_max"), "{failure}");
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism

/// Controllers' shape: producers, workers that fail some keys and requeue them rate-limited,
/// periodic resyncs with `add_after`, then a draining shutdown.
fn mixed_workload() {
    let queue = WorkQueue::<String>::new("orders");
    for producer in 0..2 {
        let queue = queue.clone();
        spawn(format!("producer-{producer}"), async move {
            for round in 0..5 {
                queue.add(format!("order-{}", (round + producer) % 4));
                sleep(random_duration(Duration::ZERO, 3 * MS)).await;
                queue.add_after(format!("order-{round}"), random_duration(MS, 20 * MS));
            }
        });
    }
    for worker in 0..2 {
        let queue = queue.clone();
        sim_core::spawn_daemon(format!("worker-{worker}"), async move {
            while let Some(key) = queue.get().await {
                sleep(random_duration(Duration::ZERO, 2 * MS)).await;
                if sim_core::random_bool(0.3) && queue.num_requeues(&key) < 3 {
                    queue.add_rate_limited(key.clone());
                } else {
                    queue.forget(&key);
                }
                queue.done(&key);
            }
        });
    }
    spawn("closer", async move {
        sleep(Duration::from_millis(200)).await;
        queue.shut_down_with_drain().await;
    });
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let mut sim = Simulation::default();
    let mut hashes = BTreeSet::new();
    for seed in 0..SEEDS {
        assert_eq!(sim.run(seed, mixed_workload), Outcome::Completed, "seed {seed}");
        let (hash, render) = (sim.trace().hash(), sim.trace().render());
        assert!(render.contains("orders: get order-"), "seed {seed}:\n{render}");
        assert_eq!(sim.run(seed, mixed_workload), Outcome::Completed, "seed {seed}");
        assert_eq!(sim.trace().hash(), hash, "seed {seed}: the trace changed");
        assert_eq!(sim.trace().render(), render, "seed {seed}");
        hashes.insert(hash);
    }
    assert!(hashes.len() > SEEDS as usize / 2, "only {} distinct runs", hashes.len());
}
